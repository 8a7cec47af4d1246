/**
 * `check --count`: every interleaving explored (no stop at the first finding,
 * no minimisation), the Mazurkiewicz traces counted, in the text output and
 * in `--json`. The counts are checked against each other (every exhaustive
 * strategy covers the same traces) and against the brute-force counter run
 * in-process, and an incomplete count says so and is never safe.
 */
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { enumerateTraces } from '../../src/explorer/mazurkiewicz.ts';
import { compile } from '../../src/scenario/compile.ts';
import { CATALOGUE, type CliRun, loadFile, runCli } from '../helpers.ts';

/** Small enough for every strategy, the brute force included; one has a bug, one a deadlock. */
const SMALL = ['ttm-move-vs-dma-static', 'kvm-invalidate-takes-resv', 'ww-abba-without-context'];
const files = SMALL.map((n) => path.join('scenarios', `${n}.yaml`));

interface Count {
  executions: number;
  traces: number;
  redundant: number;
  sleep_blocked: number;
  equivalent: number;
  complete: boolean;
}
interface Result {
  name: string;
  verdict: string;
  stats: { executions: number; complete: boolean; redundant: number };
  count?: Count;
}

const results = (r: CliRun): Result[] => (JSON.parse(r.stdout) as { results: Result[] }).results;
const byName = (r: CliRun) => new Map(results(r).map((x) => [x.name, x]));
const COUNT_LINE =
  /^count (\S+): (\d+) executions explored, (\d+) Mazurkiewicz traces, (\d+) redundant \(sleep-set blocked (\d+), equivalent to an earlier one (\d+)\); (.*)$/gm;

describe('check --count', () => {
  const runs: Record<string, CliRun> = {};
  beforeAll(() => {
    for (const s of ['dfs', 'sleep', 'naive']) runs[s] = runCli([...files, '--count', '--json', '--strategy', s]);
    runs.text = runCli([...files, '--count']);
    runs.plain = runCli([...files, '--json']);
    runs.cut = runCli(['scenarios/kvm-unlocked-retry-vs-ttm-move.yaml', '--count', '--max-executions', '3']);
    runs.cutJson = runCli([
      'scenarios/kvm-unlocked-retry-vs-ttm-move.yaml',
      '--count',
      '--max-executions',
      '3',
      '--json',
    ]);
  });

  it('--json: a count per scenario, consistent with the stats', () => {
    for (const s of ['dfs', 'sleep', 'naive']) {
      const run = runs[s] as CliRun;
      expect(run.code, run.stderr).toBe(0);
      for (const r of results(run)) {
        const n = r.count as Count;
        expect(n, `${s} ${r.name}`).toBeDefined();
        expect(n.complete).toBe(true);
        expect(r.stats.complete).toBe(true);
        expect(n.executions).toBe(r.stats.executions);
        expect(n.sleep_blocked).toBe(r.stats.redundant);
        expect(n.redundant).toBe(n.sleep_blocked + n.equivalent);
        expect(n.executions).toBe(n.traces + n.redundant);
      }
    }
  });

  it('every exhaustive strategy counts the brute force’s traces; sleep sets run one execution per trace', () => {
    const dfs = byName(runs.dfs as CliRun);
    const sleep = byName(runs.sleep as CliRun);
    const naive = byName(runs.naive as CliRun);
    for (const name of SMALL) {
      const bf = enumerateTraces(compile(loadFile(path.join(CATALOGUE, `${name}.yaml`))));
      expect(bf.complete).toBe(true);
      expect(bf.violations).toEqual([]);
      for (const m of [dfs, sleep, naive]) expect(m.get(name)?.count?.traces, name).toBe(bf.traces.size);
      // Every interleaving, nothing abandoned: the naive search runs the brute force's executions.
      expect(naive.get(name)?.count?.executions).toBe(bf.executions);
      expect(naive.get(name)?.count?.sleep_blocked).toBe(0);
      expect(sleep.get(name)?.count?.equivalent).toBe(0);
    }
  });

  it('does not stop at the first finding: a bug scenario is explored to the end', () => {
    const counted = byName(runs.dfs as CliRun).get('ww-abba-without-context') as Result;
    const plain = byName(runs.plain as CliRun).get('ww-abba-without-context') as Result;
    expect(counted.verdict).toBe('bug');
    expect(plain.verdict).toBe('bug');
    expect(plain.stats.complete).toBe(false);
    expect(plain.count).toBeUndefined();
    expect(counted.stats.complete).toBe(true);
  });

  it('prints one count line per scenario, with the --json numbers', () => {
    const text = runs.text as CliRun;
    expect(text.code, text.stderr).toBe(0);
    const lines = [...text.stdout.matchAll(COUNT_LINE)];
    expect(lines.map((m) => m[1])).toEqual(SMALL);
    const json = byName(runs.dfs as CliRun);
    for (const m of lines) {
      const n = json.get(m[1] as string)?.count as Count;
      expect(m.slice(2, 7).map(Number)).toEqual([n.executions, n.traces, n.redundant, n.sleep_blocked, n.equivalent]);
      expect(m[7]).toBe('complete');
    }
    expect((runs.plain as CliRun).stdout).not.toMatch(/^count /m);
  });

  it('an exploration cut short says the count is incomplete, and the verdict is unknown', () => {
    const cut = runs.cut as CliRun;
    expect(cut.code).toBe(1);
    const [m] = [...cut.stdout.matchAll(COUNT_LINE)];
    expect(m?.[7]).toMatch(/^incomplete \(stopped: max-executions\)/);
    expect(cut.stdout).toMatch(/unknown, expected safe/);
    const [r] = results(runs.cutJson as CliRun);
    expect(r?.verdict).toBe('unknown');
    expect(r?.count?.complete).toBe(false);
    expect(r?.count?.executions).toBe(3);
  });
});
