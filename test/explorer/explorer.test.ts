/**
 * The explorer: sleep-set reduction loses nothing against plain DFS, limits
 * give `unknown`, minimisation, random walk, determinism, tokens.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { explore } from '../../src/explorer/explore.ts';
import { decodeToken, encodeToken, TokenError } from '../../src/explorer/token.ts';
import { compile } from '../../src/scenario/compile.ts';
import { CATALOGUE, check, loadFile } from '../helpers.ts';

const program = (name: string) => compile(loadFile(path.join(CATALOGUE, `${name}.yaml`)));

/** Catalogue scenarios small enough to enumerate every interleaving in a test. */
const SMALL = [
  'cpu-mmap-vs-ttm-move',
  'cpu-mmap-vs-vfio-revoke',
  'kvm-invalidate-takes-resv',
  'kvm-locked-drop-resv-before-install',
  'kvm-locked-hold-resv-vs-ttm-move',
  'kvm-static-attach-vs-ttm-move',
  'rogue-mmap-hold-resv',
  'rogue-mmap-vs-ttm-move',
  'system-heap-kvm-no-retry',
  'ttm-move-vs-dma-dynamic-ignores-invalidate',
  'ttm-move-vs-dma-dynamic',
  'ttm-move-vs-dma-static',
];

describe('reduction (DPOR with sleep sets, and sleep sets alone)', () => {
  for (const name of SMALL) {
    it(`${name}: reaches the same finding codes as plain DFS over every interleaving, in no more executions`, () => {
      const p = program(name);
      const naive = explore(p, { strategy: 'naive', stopOnFinding: false, minimise: false });
      expect(naive.stats.complete).toBe(true);
      for (const strategy of ['dfs', 'sleep'] as const) {
        const reduced = explore(p, { strategy, stopOnFinding: false, minimise: false });
        expect(reduced.stats.complete).toBe(true);
        expect(reduced.stats.codes).toEqual(naive.stats.codes);
        expect(reduced.stats.executions).toBeLessThanOrEqual(naive.stats.executions);
      }
    });
  }

  it('DPOR runs far fewer executions than sleep sets alone, almost none of them redundant', () => {
    const p = program('kvm-unlocked-retry-vs-ttm-move');
    const dpor = explore(p, { stopOnFinding: false, minimise: false });
    const sleep = explore(p, { strategy: 'sleep', stopOnFinding: false, minimise: false });
    expect(dpor.stats.executions * 3).toBeLessThan(sleep.stats.executions);
    expect(dpor.stats.redundant * 10).toBeLessThanOrEqual(dpor.stats.executions);
  });

  it('cuts executions by an order of magnitude on a two-thread KVM scenario', () => {
    const p = program('kvm-locked-hold-resv-vs-ttm-move');
    const reduced = explore(p, { stopOnFinding: false, minimise: false });
    const naive = explore(p, { strategy: 'naive', stopOnFinding: false, minimise: false });
    expect(naive.stats.executions).toBeGreaterThan(10 * reduced.stats.executions);
  });
});

describe('limits', () => {
  it('a safe scenario cut short by --max-executions is unknown, never safe', () => {
    const r = explore(program('kvm-unlocked-retry-vs-ttm-move'), { maxExecutions: 5 });
    expect(r.verdict).toBe('unknown');
    expect(r.stopped).toBe('max-executions');
    expect(r.stats.complete).toBe(false);
  });

  it('a deadline in the past stops at once with unknown', () => {
    let now = 0;
    const r = explore(program('kvm-unlocked-retry-vs-ttm-move'), { deadline: 1, now: () => (now += 10) });
    expect(r.verdict).toBe('unknown');
    expect(r.stopped).toBe('timeout');
  });

  it('the random strategy never claims safe', () => {
    const r = explore(program('kvm-unlocked-retry-vs-ttm-move'), { strategy: 'random', maxExecutions: 50 });
    expect(r.verdict).toBe('unknown');
  });
});

describe('counterexamples', () => {
  it('minimisation never gives more preemptions than the first counterexample found', () => {
    for (const name of ['kvm-unlocked-no-retry-vs-ttm-move', 'ttm-move-vs-dma-dynamic-ignores-invalidate']) {
      const first = explore(program(name), { minimise: false });
      const min = explore(program(name));
      expect(min.counterexample?.preemptions).toBeLessThanOrEqual(first.counterexample?.preemptions ?? 0);
    }
  });

  it('a use-after-free between get_pfn and install needs exactly one preemption', () => {
    const r = explore(program('kvm-unlocked-no-retry-vs-ttm-move'));
    expect(r.counterexample?.preemptions).toBe(1);
  });

  it('random walk finds the get_pfn race and is reproducible from its seed', () => {
    const a = explore(program('kvm-unlocked-no-retry-vs-ttm-move'), {
      strategy: 'random',
      seed: 7,
      maxExecutions: 2000,
    });
    const b = explore(program('kvm-unlocked-no-retry-vs-ttm-move'), {
      strategy: 'random',
      seed: 7,
      maxExecutions: 2000,
    });
    expect(a.verdict).toBe('bug');
    expect(a.counterexample?.token).toBe(b.counterexample?.token);
    expect(a.stats.executions).toBe(b.stats.executions);
  });

  it('looks further for the expected finding when the first counterexample lacks it', () => {
    const spec = loadFile(path.join(CATALOGUE, 'vfio-revoke-kvm-no-zap.yaml'));
    const r = check(spec);
    expect(r.counterexample?.findings.map((f) => f.code)).not.toContain('access-after-revoke');
    expect(r.wanted?.findings.map((f) => f.code)).toContain('access-after-revoke');
    expect(r.met).toBe(true);
  });

  it('is deterministic: the same scenario gives the same counterexample and counts', () => {
    const a = explore(program('rogue-mmap-vs-ttm-move'));
    const b = explore(program('rogue-mmap-vs-ttm-move'));
    expect(a.counterexample?.token).toBe(b.counterexample?.token);
    expect(a.stats).toEqual(b.stats);
  });
});

describe('replay tokens', () => {
  it('round-trip through their compact form', () => {
    const schedule = [0, 0, 0, 1, 1, 0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 29];
    const tok = encodeToken('0123abcd', schedule);
    expect(tok).toBe('dc1.0123abcd.a3b2ac11D');
    expect(decodeToken(tok)).toEqual({ hash: '0123abcd', schedule });
  });

  it('reject malformed input with a clear message', () => {
    expect(() => decodeToken('hello')).toThrow(TokenError);
    expect(() => decodeToken('dc1.0123abcd.a3!b')).toThrow(/not a replay token/);
    expect(() => decodeToken('dc1.0123abcd.3a')).toThrow(/malformed/);
    expect(() => decodeToken('dc1.0123abcd.a99999999999')).toThrow(/run length/);
  });
});

describe('randomised search: PCT and the portfolio', () => {
  it('PCT finds the get_pfn race and reports its bug-depth guarantee', () => {
    const r = explore(program('kvm-unlocked-no-retry-vs-ttm-move'), {
      strategy: 'pct',
      stopOnFinding: false,
      minimise: false,
      maxExecutions: 300,
    });
    expect(r.stats.codes).toContain('use-after-free');
    expect(r.verdict).toBe('bug');
    const d2 = r.stats.pct.find((g) => g.depth === 2);
    expect(d2?.runs).toBe(100);
    expect(d2?.perRun).toBeCloseTo(1 / (2 * (d2?.k ?? 1)));
    expect(d2?.miss).toBeCloseTo((1 - (d2?.perRun ?? 0)) ** 100);
  });

  it('the portfolio alternates random walk and PCT, reproducibly, and never claims safe', () => {
    const a = explore(program('rogue-mmap-vs-ttm-move'), { strategy: 'portfolio', seed: 3, maxExecutions: 500 });
    const b = explore(program('rogue-mmap-vs-ttm-move'), { strategy: 'portfolio', seed: 3, maxExecutions: 500 });
    expect(a.verdict).toBe('bug');
    expect(a.counterexample?.token).toBe(b.counterexample?.token);
    const safe = explore(program('kvm-unlocked-retry-vs-ttm-move'), { strategy: 'portfolio', maxExecutions: 40 });
    expect(safe.verdict).toBe('unknown');
    expect(safe.stats.pct.reduce((n, g) => n + g.runs, 0)).toBe(20);
  });
});
