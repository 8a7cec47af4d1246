/**
 * `npm run bench`: checks the bundled catalogue and prints, per scenario,
 * the executions and steps of the check, executions/s and steps/s, and how
 * many executions every interleaving needs with DPOR, with sleep sets only,
 * and with no reduction at all. Figures vary with the machine; compare the
 * ratios within one run.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkScenario } from '../src/check.ts';
import { explore } from '../src/explorer/explore.ts';
import { compile } from '../src/scenario/compile.ts';
import { loadScenario } from '../src/scenario/load-yaml.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DIR = path.join(ROOT, 'scenarios');
const NAIVE_CAP = Number(process.env.BENCH_NAIVE_CAP ?? 200_000);
const MIN_MS = Number(process.env.BENCH_MIN_MS ?? 300);

interface Row {
  scenario: string;
  verdict: string;
  executions: number;
  steps: number;
  'exec/s': number;
  'steps/s': number;
  'all (dpor)': number;
  'all (sleep sets)': number;
  'all (naive)': string;
  reduction: string;
}

const rows: Row[] = [];
for (const f of readdirSync(DIR)
  .filter((x) => x.endsWith('.yaml'))
  .sort()) {
  const spec = loadScenario(readFileSync(path.join(DIR, f), 'utf8'), f);
  // The check as `npm start` runs it, repeated until MIN_MS have passed.
  let runs = 0;
  let ms = 0;
  let r = checkScenario(spec, f);
  const t0 = performance.now();
  do {
    r = checkScenario(spec, f);
    runs++;
    ms = performance.now() - t0;
  } while (ms < MIN_MS);
  const execs = r.stats.executions + r.stats.extraExecutions;
  const steps = r.stats.steps + r.stats.extraSteps;
  // Every interleaving, with and without reduction (no stop at the first finding).
  const program = compile(spec);
  const reduced = explore(program, { stopOnFinding: false, minimise: false });
  const sleep = explore(program, {
    strategy: 'sleep',
    stopOnFinding: false,
    minimise: false,
    maxExecutions: NAIVE_CAP,
  });
  const naive = explore(program, {
    strategy: 'naive',
    stopOnFinding: false,
    minimise: false,
    maxExecutions: NAIVE_CAP,
  });
  const naiveCount = naive.stats.complete ? String(naive.stats.executions) : `>${NAIVE_CAP}`;
  rows.push({
    scenario: spec.name,
    verdict: r.verdict,
    executions: execs,
    steps,
    'exec/s': Math.round((execs * runs) / (ms / 1000)),
    'steps/s': Math.round((steps * runs) / (ms / 1000)),
    'all (dpor)': reduced.stats.executions,
    'all (sleep sets)': sleep.stats.executions,
    'all (naive)': naiveCount,
    reduction: `${naive.stats.complete ? '' : '>'}${(naive.stats.executions / reduced.stats.executions).toFixed(1)}x`,
  });
  process.stderr.write(`.`);
}
process.stderr.write('\n');
console.table(rows);
console.log(
  'executions/steps: what the check runs (first counterexample + minimisation for bugs; everything for safe);',
  'all (dpor) / all (sleep sets) / all (naive): executions to cover every interleaving with DPOR and sleep sets (the default) / with sleep sets only / with no reduction; reduction = naive / dpor.',
);
