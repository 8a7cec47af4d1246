/**
 * The explorer configurations the benchmark compares: the default search and
 * one column group per other strategy or option. Adding a column is one line
 * in {@link CANDIDATES}; a candidate the explorer does not accept (yet) is
 * dropped by {@link acceptedVariants}, so the list may name options other
 * engineers are still adding (`workers`, …).
 */
import { type ExploreOptions, type ExploreResult, explore } from '../src/explorer/explore.ts';
import { compile } from '../src/scenario/compile.ts';
import { dynImportersMoves, familySpec, kvmRetryTtm } from './families.ts';

export interface Variant {
  /** Column prefix: `dpor`, `sleep`, … */
  readonly id: string;
  readonly label: string;
  /** Merged into the explore options (loosely typed: the option may not exist yet). */
  readonly opts: Readonly<Record<string, unknown>>;
  /**
   * For an option (not a strategy): whether a probe run shows the explorer
   * honoured it. Strategies are probed against an unknown strategy name instead.
   */
  readonly honoured?: (r: ExploreResult) => boolean;
}

/** The default search (`explore(program)` / `dmabuf-check FILE`). */
export const DEFAULT_VARIANT: Variant = { id: 'default', label: 'default (dfs)', opts: {} };

/** One line per compared configuration. */
export const CANDIDATES: readonly Variant[] = [
  { id: 'dpor', label: 'classic DPOR + sleep sets', opts: { strategy: 'dpor' } },
  { id: 'sleep', label: 'DFS + sleep sets', opts: { strategy: 'sleep' } },
  { id: 'optimal', label: 'optimal DPOR', opts: { strategy: 'optimal' } },
  {
    id: 'sym',
    label: 'default + symmetry',
    opts: { symmetry: true },
    honoured: (r) => ((r.stats as { symmetry?: unknown[] }).symmetry?.length ?? 0) > 0,
  },
  {
    id: 'w2',
    label: 'default, 2 workers',
    opts: { workers: 2 },
    honoured: (r) => (r.stats as { workers?: number }).workers === 2,
  },
];

export function exploreOptions(v: Variant, base: ExploreOptions): ExploreOptions {
  return { ...base, ...(v.opts as ExploreOptions) };
}

interface Probe {
  readonly executions: number;
  readonly steps: number;
  readonly verdict: string;
}

function probe(opts: Record<string, unknown>, sizes: readonly (readonly [typeof kvmRetryTtm, number[]])[]): Probe[] {
  return sizes.map(([f, p]) => {
    const r = explore(compile(familySpec(f, p)), {
      ...(opts as ExploreOptions),
      stopOnFinding: false,
      minimise: false,
      maxExecutions: 400,
    });
    return { executions: r.stats.executions, steps: r.stats.steps, verdict: r.verdict };
  });
}

const same = (a: Probe[], b: Probe[]) => JSON.stringify(a) === JSON.stringify(b);

export interface Accepted {
  readonly variants: readonly Variant[];
  /** Candidates left out, and why. */
  readonly dropped: readonly { readonly id: string; readonly why: string }[];
}

/**
 * The candidates this explorer accepts. A strategy is accepted when it
 * neither throws nor behaves like an unknown strategy name (which the
 * explorer may treat as plain DFS), and dropped as an alias when it runs
 * exactly what the default runs; an option when `honoured` says so on a
 * program with two interchangeable vCPUs.
 */
export function acceptedVariants(candidates: readonly Variant[] = CANDIDATES): Accepted {
  // kvm-retry 1×1×1: a dozen executions with reduction, ~100,000 without; dyn 2×1 has more races.
  const probes = [
    [kvmRetryTtm, [1, 1, 1]],
    [dynImportersMoves, [2, 1]],
  ] as const satisfies readonly (readonly [typeof kvmRetryTtm, number[]])[];
  const variants: Variant[] = [];
  const dropped: { id: string; why: string }[] = [];
  const base = probe({}, probes);
  let unknown: Probe[] | null = null;
  try {
    unknown = probe({ strategy: '__no_such_strategy__' }, probes);
  } catch {
    unknown = null;
  }
  for (const v of candidates) {
    try {
      if (v.honoured) {
        const r = explore(compile(familySpec(kvmRetryTtm, [2, 1, 1])), {
          ...(v.opts as ExploreOptions),
          stopOnFinding: false,
          minimise: false,
          maxExecutions: 20,
        });
        if (v.honoured(r)) variants.push(v);
        else dropped.push({ id: v.id, why: 'option not honoured by this explorer' });
        continue;
      }
      const got = probe(v.opts, probes);
      if (unknown && same(got, unknown)) dropped.push({ id: v.id, why: 'strategy not known to this explorer' });
      else if (same(got, base)) dropped.push({ id: v.id, why: 'runs exactly what the default runs (an alias)' });
      else variants.push(v);
    } catch (e) {
      dropped.push({ id: v.id, why: `rejected: ${(e as Error).message.split('\n')[0]}` });
    }
  }
  return { variants, dropped };
}
