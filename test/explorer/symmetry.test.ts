/**
 * The pieces of the state-caching search with symmetry (explorer/stateful.ts,
 * explorer/symmetry.ts): the fingerprint table, the canonical renaming, the
 * groups a scenario's threads form, and what the command line says. Its
 * soundness against the brute force is in mazurkiewicz.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { explore } from '../../src/explorer/explore.ts';
import { FingerprintTable } from '../../src/explorer/stateful.ts';
import { Canonicaliser, groupsOfEqual, PrefixEvents } from '../../src/explorer/symmetry.ts';
import { compile } from '../../src/scenario/compile.ts';
import { loadScenario } from '../../src/scenario/load-yaml.ts';
import { runCli } from '../helpers.ts';

describe('FingerprintTable', () => {
  it('keeps every key with its last value across growth, and knows absent keys', () => {
    const t = new FingerprintTable(2);
    for (let i = 1; i <= 5000; i++) t.set(Math.imul(i, 2654435761) >>> 0, (i ^ 0x5bd1e995) >>> 0, i);
    t.set(Math.imul(7, 2654435761) >>> 0, (7 ^ 0x5bd1e995) >>> 0, -7);
    expect(t.size).toBe(5000);
    for (let i = 1; i <= 5000; i++)
      expect(t.get(Math.imul(i, 2654435761) >>> 0, (i ^ 0x5bd1e995) >>> 0)).toBe(i === 7 ? -7 : i);
    expect(t.get(1, 1)).toBeUndefined();
    expect(t.get(2654435761, 0x12345678)).toBeUndefined();
  });
});

/** A prefix from (thread, clock) pairs; seq is counted per thread. */
function prefix(events: [number, number[]][]): PrefixEvents {
  const p = new PrefixEvents();
  const seq = new Map<number, number>();
  events.forEach(([t, vc], d) => {
    const s = (seq.get(t) ?? 0) + 1;
    seq.set(t, s);
    p.set(d, t, s, Int32Array.from(vc));
  });
  return p;
}

function fp(c: Canonicaliser, p: PrefixEvents, jiffies = 0): string {
  const out = new Uint32Array(2);
  c.fingerprint(p, p.length, jiffies, out);
  return `${out[0]}:${out[1]}`;
}

describe('Canonicaliser', () => {
  // Threads 0 and 1 interchangeable, thread 2 not. Thread 0 writes x, then thread 1 reads it.
  const a = prefix([
    [0, [1, 0, 0]],
    [1, [1, 1, 0]],
    [2, [0, 0, 1]],
  ]);
  // The same with threads 0 and 1 renamed.
  const b = prefix([
    [1, [0, 1, 0]],
    [0, [1, 1, 0]],
    [2, [0, 0, 1]],
  ]);
  // Thread 2 and thread 0 renamed: not interchangeable.
  const c = prefix([
    [2, [0, 0, 1]],
    [1, [0, 1, 1]],
    [0, [1, 0, 0]],
  ]);

  it('renamings of interchangeable threads get one fingerprint; others do not', () => {
    const sym = new Canonicaliser(3, [[0, 1]]);
    expect(fp(sym, a)).toBe(fp(sym, b));
    expect(fp(sym, a)).not.toBe(fp(sym, c));
    const plain = new Canonicaliser(3, []);
    expect(fp(plain, a)).not.toBe(fp(plain, b));
  });

  it('the order of independent steps does not matter; the clock does', () => {
    const plain = new Canonicaliser(3, []);
    const reordered = prefix([
      [2, [0, 0, 1]],
      [0, [1, 0, 0]],
      [1, [1, 1, 0]],
    ]);
    expect(fp(plain, reordered)).toBe(fp(plain, a));
    expect(fp(plain, a, 5)).not.toBe(fp(plain, a, 0));
  });

  it('sleep sets cross the renaming both ways', () => {
    const sym = new Canonicaliser(3, [[0, 1]]);
    fp(sym, b);
    for (const mask of [0, 1, 2, 3, 4, 5, 7]) expect(sym.fromCanonical(sym.toCanonical(mask))).toBe(mask);
  });
});

const TWO_READERS = `name: two-readers
buffers:
  bar: { exporter: vfio-pci }
importers:
  cpu: { driver: cpu-mmap, buffer: bar }
threads:
  reader0: [{ cpu.access: { page: 0 } }]
  reader1: [{ cpu.access: { page: 0 } }]
  revoker: [bar.revoke]
expect:
  verdict: safe
`;

describe('interchangeable threads of a scenario', () => {
  it('threads with the same op list form a group', () => {
    expect(groupsOfEqual(['a', 'b', 'a', 'c', 'b', 'a'])).toEqual([
      [0, 2, 5],
      [1, 4],
    ]);
    expect(compile(loadScenario(TWO_READERS, 'two.yaml')).symmetry).toEqual([[0, 1]]);
  });

  it('the state search with symmetry: same verdict, fewer executions and states than without', () => {
    const p = compile(loadScenario(TWO_READERS, 'two.yaml'));
    const sym = explore(p, { strategy: 'state' });
    const plain = explore(p, { strategy: 'state', symmetry: false });
    const dfs = explore(p, { strategy: 'dfs' });
    expect([sym.verdict, plain.verdict]).toEqual([dfs.verdict, dfs.verdict]);
    expect(sym.stats.symmetry).toEqual([['reader0', 'reader1']]);
    expect(plain.stats.symmetry).toEqual([]);
    expect(sym.stats.executions).toBeLessThan(plain.stats.executions);
    expect(sym.stats.states).toBeLessThan(plain.stats.states as number);
  });

  it('the command line says when symmetry was used, in text and JSON', () => {
    const r = runCli(['scenarios/kvm-unlocked-retry-vs-ttm-move.yaml', '--strategy', 'state']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^ {2}states: \d+; symmetry: none used/m);
  });
});
