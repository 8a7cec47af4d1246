/**
 * Symmetry reduction: executions of the state-caching search (`state`) with
 * and without symmetry, and of the default search (optimal DPOR), on families
 * whose N threads are interchangeable (the same op list on the same objects):
 * - N CPU mmap readers of one vfio-pci BAR vs one revoke;
 * - N vCPUs of one VM faulting one page (get_pfn unlocked, with the retry) vs
 *   one TTM move (the kvm-retry×ttm family at N×1×1).
 * Each run is capped by time; a capped count is a lower bound (`> n`).
 */
import { explore, type Strategy } from '../src/explorer/explore.ts';
import type { Program } from '../src/explorer/program.ts';
import { compile } from '../src/scenario/compile.ts';
import { loadScenario } from '../src/scenario/load-yaml.ts';
import { kvmRetryTtm } from './families.ts';

export interface SymmetryCell {
  readonly executions: number;
  readonly states: number | null;
  readonly complete: boolean;
  readonly ms: number;
}

export interface SymmetryRow {
  readonly family: string;
  readonly n: number;
  readonly sym: SymmetryCell;
  readonly state: SymmetryCell;
  readonly dfs: SymmetryCell;
}

function mmapReaders(n: number): string {
  let y = `name: bench-sym-mmap-${n}\nbuffers:\n  bar: { exporter: vfio-pci }\nimporters:\n  cpu: { driver: cpu-mmap, buffer: bar }\nthreads:\n`;
  for (let i = 0; i < n; i++) y += `  reader${i}: [{ cpu.access: { page: 0 } }]\n`;
  return `${y}  revoker: [bar.revoke]\n`;
}

export const SYMMETRY_FAMILIES: readonly { readonly id: string; readonly title: string; yaml(n: number): string }[] = [
  { id: 'mmap-readers×revoke', title: 'N CPU mmap readers of one vfio-pci BAR vs a revoke', yaml: mmapReaders },
  {
    id: 'kvm-vcpus×ttm',
    title: 'N vCPUs of one VM (one access each, with the retry) vs one TTM move',
    yaml: (n) => kvmRetryTtm.yaml([n, 1, 1]),
  },
];

function cell(p: Program, strategy: Strategy, symmetry: boolean, capMs: number): SymmetryCell {
  const t0 = performance.now();
  const r = explore(p, {
    strategy,
    symmetry,
    stopOnFinding: false,
    minimise: false,
    deadline: t0 + capMs,
    maxExecutions: 10_000_000,
  });
  return {
    executions: r.stats.executions,
    states: r.stats.states ?? null,
    complete: r.stats.complete && r.stopped === null,
    ms: performance.now() - t0,
  };
}

/** Sizes 1 … maxN of each family; a family stops growing once every strategy was capped. */
export function measureSymmetry(maxN: number, capMs: number): SymmetryRow[] {
  const rows: SymmetryRow[] = [];
  for (const f of SYMMETRY_FAMILIES) {
    for (let n = 1; n <= maxN; n++) {
      const p = compile(loadScenario(f.yaml(n), `${f.id}-${n}.yaml`));
      const row: SymmetryRow = {
        family: f.id,
        n,
        sym: cell(p, 'state', true, capMs),
        state: cell(p, 'state', false, capMs),
        dfs: cell(p, 'dfs', false, capMs),
      };
      rows.push(row);
      if (!row.sym.complete && !row.state.complete && !row.dfs.complete) break;
    }
  }
  return rows;
}
