/**
 * The catalogue table (the benchmark's first section): checks every bundled
 * scenario as `npm start` does and prints, per scenario, the executions and
 * steps of the check, executions/s and steps/s (per CPU second, warm: each
 * check is repeated until `minMs` have passed), and how many executions
 * covering every interleaving takes with the default search, with sleep sets
 * only, and with no reduction at all (capped at `naiveCap`; 0: not run).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { checkScenario } from '../src/check.ts';
import { explore } from '../src/explorer/explore.ts';
import { compile } from '../src/scenario/compile.ts';
import { loadScenario } from '../src/scenario/load-yaml.ts';
import { int, type Row, rate, ratio } from './table.ts';

export interface CatalogueRow {
  readonly scenario: string;
  readonly verdict: string;
  readonly executions: number;
  readonly steps: number;
  /** Per CPU second, over the repeated checks. */
  readonly execsPerS: number;
  readonly stepsPerS: number;
  /** Mean scheduled steps per execution of the check (setup and teardown included). */
  readonly stepsPerExecution: number;
  /** -1: not run. */
  readonly allDefault: number;
  readonly allSleep: number;
  readonly allSleepComplete: boolean;
  readonly allNaive: number;
  readonly allNaiveComplete: boolean;
}

const cpuNow = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

export function catalogue(dir: string, naiveCap: number, minMs: number, progress: (s: string) => void): CatalogueRow[] {
  const rows: CatalogueRow[] = [];
  for (const f of readdirSync(dir)
    .filter((x) => x.endsWith('.yaml'))
    .sort()) {
    const spec = loadScenario(readFileSync(path.join(dir, f), 'utf8'), f);
    let r = checkScenario(spec, f); // warm-up
    let runs = 0;
    const t0 = performance.now();
    const c0 = cpuNow();
    do {
      r = checkScenario(spec, f);
      runs++;
    } while (performance.now() - t0 < minMs);
    const cpu = Math.max(cpuNow() - c0, 1e-3);
    const execs = r.stats.executions + r.stats.extraExecutions;
    const steps = r.stats.steps + r.stats.extraSteps;
    const program = compile(spec);
    const all = (strategy: 'dfs' | 'sleep' | 'naive', cap?: number) =>
      explore(program, {
        strategy,
        stopOnFinding: false,
        minimise: false,
        ...(cap !== undefined ? { maxExecutions: cap } : {}),
      }).stats;
    const skipped = { executions: -1, complete: false };
    const reduced = naiveCap > 0 ? all('dfs') : skipped;
    const sleep = naiveCap > 0 ? all('sleep', naiveCap) : skipped;
    const naive = naiveCap > 0 ? all('naive', naiveCap) : skipped;
    rows.push({
      scenario: spec.name,
      verdict: r.verdict,
      executions: execs,
      steps,
      execsPerS: ((execs * runs) / cpu) * 1000,
      stepsPerS: ((steps * runs) / cpu) * 1000,
      stepsPerExecution: steps / Math.max(execs, 1),
      allDefault: reduced.executions,
      allSleep: sleep.executions,
      allSleepComplete: sleep.complete,
      allNaive: naive.executions,
      allNaiveComplete: naive.complete,
    });
    progress('.');
  }
  progress('\n');
  return rows;
}

export function catalogueRows(rows: readonly CatalogueRow[]): Row[] {
  const n = (x: number, complete: boolean) => (x < 0 ? '–' : `${complete ? '' : '> '}${int(x)}`);
  return rows.map((r) => ({
    scenario: r.scenario,
    verdict: r.verdict,
    executions: int(r.executions),
    steps: int(r.steps),
    'steps/exec': r.stepsPerExecution.toFixed(0),
    'exec/s': rate(r.execsPerS),
    'steps/s': rate(r.stepsPerS),
    'all (default)': n(r.allDefault, true),
    'all (sleep sets)': n(r.allSleep, r.allSleepComplete),
    'all (naive)': n(r.allNaive, r.allNaiveComplete),
    reduction:
      r.allNaive < 0 ? '–' : `${r.allNaiveComplete ? '' : '> '}${ratio(r.allNaive / Math.max(r.allDefault, 1))}`,
  }));
}
