/**
 * `check --workers N`: a search that does not finish within the small-first
 * cap is split into work units explored by N worker threads. The output is
 * the same for any N (the workers count and the timing field aside); a
 * timeout still stops the run (unknown, never safe); a bad N is bad input;
 * a search decided within the cap is not split (no workers line).
 *
 * The catalogue's scenarios all finish within the cap, so these runs lower it
 * (DMABUF_CHECK_SMALL_FIRST) to split them.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { type CliRun, runCli } from '../helpers.ts';

/**
 * A safe one, a use-after-free, a lock-order inversion (deadlock), one with
 * timed waits, and one the split is trusted with (no timed wait, no
 * state-dependent declaration: ww_mutex backoff).
 */
const FILES = [
  'scenarios/udmabuf-dma-static-and-cpu-access.yaml',
  'scenarios/kvm-unlocked-no-retry-vs-ttm-move.yaml',
  'scenarios/ww-abba-without-context.yaml',
  'scenarios/vfio-revoke-importer-unmaps-in-worker.yaml',
  'scenarios/ww-abba-with-context.yaml',
];
const SPLIT = { DMABUF_CHECK_SMALL_FIRST: '2' };

/** The output with the fields that may differ between N: the timing, and the workers count. */
function clean(s: string): string {
  return s
    .replace(/"ms": [\d.]+/g, '"ms": 0')
    .replace(/"workers": \d+/g, '"workers": 0')
    .replace(/^ {2}workers: \d+, /gm, '  workers: 0, ');
}

interface Result {
  name: string;
  verdict: string;
  met: boolean;
  findings: { code: string; token: string }[];
  counterexample: unknown;
  stats: {
    complete: boolean;
    stopped: string | null;
    executions: number;
    workers?: number;
    units?: number;
    split_fallback?: string;
    pct: unknown;
  };
}
const results = (r: CliRun): Result[] => (JSON.parse(r.stdout) as { results: Result[] }).results;

describe('check --workers', () => {
  const runs: Record<string, CliRun> = {};
  beforeAll(() => {
    runs.plain = runCli([...FILES, '--json']);
    for (const n of [1, 2]) {
      runs[`json${n}`] = runCli([...FILES, '--json', '--workers', String(n)], undefined, SPLIT);
      runs[`text${n}`] = runCli([...FILES, '--workers', String(n)], undefined, SPLIT);
      runs[`random${n}`] = runCli(
        [
          FILES[0] as string,
          FILES[1] as string,
          '--json',
          '--workers',
          String(n),
          '--strategy',
          'portfolio',
          '--max-executions',
          '3000',
        ],
        undefined,
        { DMABUF_CHECK_SMALL_FIRST: '1' },
      );
      runs[`pct${n}`] = runCli(
        [FILES[0] as string, '--json', '--workers', String(n), '--strategy', 'pct', '--max-executions', '1500'],
        undefined,
        { DMABUF_CHECK_SMALL_FIRST: '1' },
      );
    }
  }, 120_000);

  it('the same output for 1 and 2 workers, text and JSON', () => {
    for (const k of ['json1', 'json2', 'text1', 'text2']) expect((runs[k] as CliRun).code, runs[k]?.stderr).toBe(0);
    expect(clean((runs.json2 as CliRun).stdout)).toBe(clean((runs.json1 as CliRun).stdout));
    expect(clean((runs.text2 as CliRun).stdout)).toBe(clean((runs.text1 as CliRun).stdout));
    expect((runs.text2 as CliRun).stderr).toBe((runs.text1 as CliRun).stderr);
  });

  it('the verdicts of the in-process search, the workers and units used, the timed-wait fallback', () => {
    const plain = results(runs.plain as CliRun);
    for (const n of [1, 2]) {
      const split = results(runs[`json${n}`] as CliRun);
      expect(split.map((r) => [r.name, r.verdict, r.met, r.stats.complete])).toEqual(
        plain.map((r) => [r.name, r.verdict, r.met, r.stats.complete]),
      );
      for (const [i, r] of split.entries()) {
        expect(r.findings.map((f) => f.code)).toEqual(plain[i]?.findings.map((f) => f.code));
        if (r.verdict === 'bug' && r.stats.workers === undefined) continue; // found within the cap
        expect(r.stats.units).toBeGreaterThanOrEqual(1);
        expect(r.stats.workers).toBe(Math.min(n, r.stats.units as number));
      }
      expect(split.find((r) => r.name.includes('unmaps-in-worker'))?.stats.split_fallback).toBe('timed');
      expect(split.find((r) => r.name.includes('udmabuf'))?.stats.split_fallback).toBe('state-dependent');
      const trusted = split.find((r) => r.name === 'ww-abba-with-context');
      expect(trusted?.stats.split_fallback).toBeUndefined();
      expect(trusted?.stats.units).toBeGreaterThan(1);
    }
    // Small enough for the default cap: no split, no workers line.
    expect(plain.every((r) => r.stats.workers === undefined)).toBe(true);
    expect((runs.text2 as CliRun).stdout).toMatch(/^ {2}workers: [12], units: \d+$/m);
    expect((runs.text2 as CliRun).stdout).toMatch(
      /^ {2}workers: [12], units: \d+ \(timed waits: sleep sets in the units\)$/m,
    );
    expect((runs.text2 as CliRun).stdout).toMatch(
      /^ {2}workers: [12], units: \d+ \(state-dependent steps: sleep sets in the units\)$/m,
    );
    expect((runs.plain as CliRun).stdout).not.toMatch(/workers:/);
  });

  it('randomised strategies: byte-identical results for 1 and 2 workers, the chunks of the sequential search', () => {
    for (const k of ['random', 'pct']) {
      const a = runs[`${k}1`] as CliRun;
      const b = runs[`${k}2`] as CliRun;
      expect(a.code, a.stderr).not.toBe(3);
      expect(clean(b.stdout)).toBe(clean(a.stdout));
    }
    const [safe, bug] = results(runs.random2 as CliRun);
    expect(bug?.verdict).toBe('bug');
    expect(safe?.verdict).toBe('unknown');
    const [pct] = results(runs.pct2 as CliRun);
    expect(pct?.stats.executions).toBe(1500);
    expect(pct?.stats.units).toBe(6);
    // The in-process run (a cap it decides within: no split) gives the same executions and stats.
    const inProcess = runCli([FILES[0] as string, '--json', '--strategy', 'pct', '--max-executions', '1500']);
    const [p] = results(inProcess);
    expect(p?.stats.workers).toBeUndefined();
    expect({ ...p?.stats, ms: 0 }).toEqual({ ...pct?.stats, ms: 0, workers: undefined, units: undefined });
  });

  it('a counterexample found by the workers replays', () => {
    const r = results(runs.json2 as CliRun).find((x) => x.name === 'kvm-unlocked-no-retry-vs-ttm-move');
    const token = r?.findings[0]?.token as string;
    const replay = runCli(['replay', FILES[1] as string, '--token', token]);
    expect(replay.code, replay.stderr).toBe(0);
    expect(replay.stdout).toMatch(/use-after-free/);
  });

  it('a timeout still stops the run: unknown, never safe', () => {
    const r = runCli([FILES[0] as string, '--json', '--workers', '2', '--timeout', '0.001'], undefined, SPLIT);
    const [x] = results(r);
    expect(x?.verdict).toBe('unknown');
    expect(x?.stats.stopped).toBe('timeout');
    expect(r.code).toBe(1);
  });

  it('a bad number of workers is bad input; --count and other strategies run in-process', () => {
    for (const bad of ['0', '1.5', 'two', 'abc']) {
      const r = runCli([FILES[2] as string, '--workers', bad]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/--workers must be a positive integer/);
      expect(r.stdout).toBe('');
    }
    const count = runCli([FILES[2] as string, '--workers', '2', '--count'], undefined, SPLIT);
    expect(count.code, count.stderr).toBe(0);
    expect(count.stdout).not.toMatch(/workers:/);
    const sleep = runCli([FILES[2] as string, '--workers', '2', '--strategy', 'sleep', '--json'], undefined, SPLIT);
    expect(sleep.code, sleep.stderr).toBe(0);
    expect(results(sleep)[0]?.stats.workers).toBeUndefined();
  });

  it('a bad scenario is bad input, not an internal error', () => {
    const r = runCli(['scenarios/does-not-exist.yaml', '--workers', '2']);
    expect(r.code).toBe(2);
  });
});
