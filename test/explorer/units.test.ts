/**
 * Work units (src/explorer/units.ts): the exhaustive search split into
 * schedule prefixes, and a randomised search split into chunks of execution
 * indices.
 *
 * - Exhaustive: over every catalogue scenario, the units explored one after
 *   the other reach exactly the Mazurkiewicz traces of the whole search, or
 *   the split falls back to the whole search (a timed wait: its timeout
 *   depends on every other thread being blocked, which no race records); the
 *   verdict is the whole search's. Every catalogue scenario's whole search
 *   takes under a thousand executions, so none is skipped.
 * - Randomised: the chunks, run in any order and combined, give exactly the
 *   sequential search (same executions, same result).
 * - exploreParallel: the same result whatever order the units finish in.
 */
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { kvmRetryTtm } from '../../bench/families.ts';
import { type ExploreOptions, type ExploreResult, explore, type Strategy } from '../../src/explorer/explore.ts';
import { countTraces, enumerateTraces, TraceCounter } from '../../src/explorer/mazurkiewicz.ts';
import type { Program } from '../../src/explorer/program.ts';
import {
  type ChunkResult,
  chunkCount,
  combineChunks,
  concludeSplit,
  exploreChunk,
  exploreParallel,
  exploreUnit,
  inProcessRunner,
  splitUnits,
  type UnitRunner,
  untrusted,
  type WorkUnit,
} from '../../src/explorer/units.ts';
import { compile } from '../../src/scenario/compile.ts';
import { loadScenario } from '../../src/scenario/load-yaml.ts';
import { catalogueFiles, loadFile, ROOT } from '../helpers.ts';
import { genProgram, programArb, showProgram } from './gen-program.ts';

const programs = catalogueFiles().map((f) => ({ name: path.relative(ROOT, f), program: compile(loadFile(f)) }));

/** The result without what may legitimately differ: nothing (ExploreResult has no timing). */
const json = (r: ExploreResult) => JSON.stringify(r);

/**
 * The units explored one after the other with a trace counter, as
 * exploreParallel does: optimal DPOR's units, or sleep sets when those are
 * not trusted (`fallback`).
 */
function exploreUnitsCounted(program: Program, units: readonly WorkUnit[], opts: ExploreOptions) {
  const run = (o: ExploreOptions) => {
    const counter = new TraceCounter(program.threads.length);
    const results = units.map((u) =>
      exploreUnit(program, u, { ...o, observer: counter.observer, onExecution: (r) => counter.record(r) }),
    );
    return { counter, results };
  };
  const first = run(opts);
  const fallback = untrusted(first.results, opts);
  return { ...(fallback ? run({ ...opts, strategy: 'sleep' }) : first), fallback };
}

describe('the exhaustive split: the whole search’s traces, or the fallback (timed wait, state-dependent step)', () => {
  for (const { name, program } of programs) {
    it(name, () => {
      const whole = countTraces(program);
      const units = splitUnits(program);
      expect(units.length).toBeGreaterThanOrEqual(1);
      const opts: ExploreOptions = { stopOnFinding: false };
      const { counter, results, fallback } = exploreUnitsCounted(program, units, opts);
      const split = concludeSplit(program, units, results, opts, 1, fallback);
      const same = [...counter.traces.keys()].sort().join('\n') === [...whole.counter.traces.keys()].sort().join('\n');
      expect(same, `${counter.traces.size} traces against ${whole.counter.traces.size} (${fallback})`).toBe(true);
      expect(split.result.verdict).toBe(whole.result.verdict);
      expect(split.result.verdict).toBe(explore(program).verdict);
    });
  }
  it('the scenario whose units miss traces falls back', () => {
    const p = programs.find((x) => x.name.includes('vfio-revoke-importer-unmaps-in-worker'));
    expect(p).toBeDefined();
    const { program } = p as { program: Program };
    const units = splitUnits(program);
    const results = units.map((u) => exploreUnit(program, u, { stopOnFinding: false }));
    expect(results.some((r) => r.timed)).toBe(true);
    expect(untrusted(results, { stopOnFinding: false })).toBe('timed');
  });
});

describe('the split with state-dependent declarations', () => {
  it('kvm-retry×ttm 2×1×1: optimal DPOR’s units miss traces (hence the fallback); with sleep sets they do not', () => {
    const program = compile(loadScenario(kvmRetryTtm.yaml([2, 1, 1]), 'kvm-retry-ttm-2x1x1.yaml'));
    const whole = countTraces(program);
    const units = splitUnits(program);
    const counter = new TraceCounter(program.threads.length);
    const opts: ExploreOptions = { stopOnFinding: false };
    const results = units.map((u) =>
      exploreUnit(program, u, { ...opts, observer: counter.observer, onExecution: (r) => counter.record(r) }),
    );
    // Why the split is not trusted here: traces of the whole search no unit reached.
    const missing = [...whole.counter.traces.keys()].filter((t) => !counter.traces.has(t));
    expect(missing.length).toBeGreaterThan(0);
    expect(results.some((r) => r.stateDep)).toBe(true);
    expect(untrusted(results, opts)).toBe('state-dependent');
    // Explored with sleep sets instead, the units reach every trace, and the verdict is the whole search's.
    const bySleep = new TraceCounter(program.threads.length);
    const again = units.map((u) =>
      exploreUnit(program, u, {
        ...opts,
        strategy: 'sleep',
        observer: bySleep.observer,
        onExecution: (r) => bySleep.record(r),
      }),
    );
    expect([...whole.counter.traces.keys()].filter((t) => !bySleep.traces.has(t))).toEqual([]);
    const split = concludeSplit(program, units, again, opts, 2, 'state-dependent');
    expect(split.split?.fallback).toBe('state-dependent');
    expect(split.result.verdict).toBe(explore(program, opts).verdict);
  });
});

describe('randomised chunks: the sequential search, whatever order they run in', () => {
  const picks = programs.filter((p) =>
    /udmabuf-dma-static-and-cpu-access|kvm-unlocked-no-retry|ww-abba-without-context|vfio-revoke-kvm-no-zap/.test(
      p.name,
    ),
  );
  for (const strategy of ['random', 'pct', 'portfolio'] as Strategy[]) {
    for (const { name, program } of picks) {
      for (const stopOnFinding of [true, false]) {
        it(`${strategy}, ${name}${stopOnFinding ? '' : ', every execution'}`, () => {
          // 700: two full chunks and a partial one.
          const opts: ExploreOptions = { strategy, maxExecutions: 700, seed: 7, stopOnFinding };
          const seq: string[] = [];
          const whole = explore(program, { ...opts, onExecution: (r) => seq.push(r.schedule.join('')) });
          const n = chunkCount(opts);
          expect(n).toBe(3);
          const byChunk: string[][] = [];
          const results: ChunkResult[] = [];
          // Last chunk first: no chunk depends on another.
          for (let c = n - 1; c >= 0; c--) {
            const mine: string[] = [];
            results[c] = exploreChunk(program, c, { ...opts, onExecution: (r) => mine.push(r.schedule.join('')) });
            byChunk[c] = mine;
          }
          const combined = combineChunks(program, results, opts);
          expect(json(combined)).toBe(json(whole));
          if (!stopOnFinding) expect(byChunk.flat()).toEqual(seq);
          else expect(byChunk.flat().slice(0, seq.length)).toEqual(seq);
        });
      }
    }
  }
});

/** Runs the units and chunks last first (as if the later ones finished first), every one of them. */
const backwards = (program: Program): UnitRunner => ({
  async units(units, opts) {
    const r = units.map(() => null as ReturnType<typeof exploreUnit> | null);
    for (let i = units.length - 1; i >= 0; i--) r[i] = exploreUnit(program, units[i] as (typeof units)[number], opts);
    return r;
  },
  async chunks(from, to, opts) {
    const r: (ChunkResult | null)[] = [];
    for (let c = to - 1; c >= from; c--) r[c - from] = exploreChunk(program, c, opts);
    return r;
  },
  workers: (count) => Math.min(2, count),
});

describe('exploreParallel: the same result for any runner', () => {
  const picks = programs.filter((p) =>
    /udmabuf-dma-static-and-cpu-access|vfio-close-vs-kvm-fault|ww-backoff-wrong-lock|vfio-revoke-importer-unmaps-in-worker/.test(
      p.name,
    ),
  );
  for (const { name, program } of picks) {
    for (const strategy of ['dfs', 'portfolio'] as Strategy[]) {
      it(`${strategy}, ${name}`, async () => {
        const opts: ExploreOptions = { strategy, ...(strategy === 'dfs' ? {} : { maxExecutions: 1500 }) };
        // A small-first cap of 20 executions: these scenarios are split.
        const a = await exploreParallel(program, opts, inProcessRunner(program), 20);
        const b = await exploreParallel(program, opts, backwards(program), 20);
        expect(json(b.result)).toBe(json(a.result));
        expect(b.split?.units).toBe(a.split?.units);
        expect(b.split?.fallback).toBe(a.split?.fallback);
        const plain = explore(program, opts);
        expect(a.result.verdict).toBe(plain.verdict);
        if (strategy !== 'dfs') expect(json(a.result)).toBe(json(plain));
        // Decided within the cap: no split, the plain search's result.
        const small = await exploreParallel(program, opts, backwards(program));
        if (!small.split) expect(json(small.result)).toBe(json(plain));
      });
    }
  }
});

describe('the split on generated programs (fast-check), against the brute force', () => {
  it('the units, as exploreParallel explores them, reach exactly the brute force’s traces', () => {
    let compared = 0;
    let bySleep = 0;
    fc.assert(
      fc.property(programArb, (ops) => {
        const program = genProgram(ops);
        const bf = enumerateTraces(program, { maxExecutions: 1500 });
        if (!bf.complete) return;
        compared++;
        const units = splitUnits(program);
        const r = exploreUnitsCounted(program, units, { stopOnFinding: false });
        if (r.fallback) bySleep++;
        const label = showProgram(ops);
        expect(
          [...bf.traces.keys()].filter((t) => !r.counter.traces.has(t)),
          label,
        ).toEqual([]);
        expect(
          [...r.counter.traces.keys()].filter((t) => !bf.traces.has(t)),
          label,
        ).toEqual([]);
      }),
      { seed: 20_261_125, numRuns: 200 },
    );
    expect(compared).toBeGreaterThanOrEqual(150);
    // Both kinds of unit were exercised.
    expect(bySleep).toBeGreaterThan(0);
    expect(bySleep).toBeLessThan(compared);
  });
});
