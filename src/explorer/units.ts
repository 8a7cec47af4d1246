/**
 * Work units: the exhaustive search split into pieces that can run anywhere
 * (worker threads, other machines) and be combined into the same result
 * whatever ran them.
 *
 * The first levels of the tree are explored with sleep-set DFS: at each node
 * every runnable thread not asleep is a branch, and the branches explored
 * before a sibling sleep in it while independent of what runs (Godefroid). A
 * unit is the schedule prefix to one node at the split depth and that node's
 * sleep set; optimal DPOR (explorer/optimal.ts) explores everything below it,
 * reversing only the races whose reversal point is below the split (the ones
 * above are covered by the top levels' branching: a sequence starting with a
 * thread asleep there is covered by an explored sibling, any other by that
 * thread's own branch). Every maximal trace is thus explored by exactly one
 * unit, up to sleep-set blocking at the top levels. The split depends only on
 * the program, never on how many workers there are.
 */
import { LockGraph } from '../checkers/lockdep.ts';
import { stillAsleep } from './dfs.ts';
import { type ChoiceSource, type ExecState, runExecution } from './execution.ts';
import {
  type ChunkResult,
  chunkCount,
  chunkEnds,
  combineChunks,
  combineUnits,
  type ExploreOptions,
  type ExploreResult,
  explore,
  exploreChunk,
  exploreUnit,
  RANDOM_CHUNK,
  type UnitResult,
} from './explore.ts';
import type { OptimalDporSource } from './optimal.ts';
import type { Program } from './program.ts';

export {
  type ChunkResult,
  chunkCount,
  chunkEnds,
  combineChunks,
  combineUnits,
  exploreChunk,
  exploreUnit,
  firstFindingUnit,
  type UnitResult,
} from './explore.ts';

/** A piece of the exhaustive search: the schedule to its root, and the sleep set there. */
export interface WorkUnit {
  readonly prefix: readonly number[];
  readonly sleep: number;
}

/** Split until there are at least this many units, or this deep. */
const MIN_UNITS = 64;
const MAX_DEPTH = 24;

/** Follows a prefix, then records the node's branches and their sleep sets, and stops. */
class SplitProbe implements ChoiceSource {
  reached = false;
  readonly children: { c: number; sleep: number }[] = [];

  constructor(
    private readonly prefix: readonly number[],
    private readonly sleep: number,
  ) {}

  choose(x: ExecState, enabled: number): number {
    const d = x.depth;
    if (d < this.prefix.length) return this.prefix[d] as number;
    this.reached = true;
    let cands = enabled & ~this.sleep;
    let explored = 0;
    while (cands) {
      const c = 31 - Math.clz32(cands & -cands);
      cands &= cands - 1;
      this.children.push({ c, sleep: stillAsleep(x.threads, this.sleep | explored, c) });
      explored |= 1 << c;
    }
    return -1;
  }
}

/** The work units of a program, in the order their results combine. */
export function splitUnits(program: Program, opts: { readonly maxSteps?: number } = {}): WorkUnit[] {
  let units: { prefix: number[]; sleep: number; leaf: boolean }[] = [{ prefix: [], sleep: 0, leaf: false }];
  for (let depth = 0; depth < MAX_DEPTH && units.length < MIN_UNITS; depth++) {
    const next: typeof units = [];
    let grew = false;
    for (const u of units) {
      if (u.leaf) {
        next.push(u);
        continue;
      }
      const probe = new SplitProbe(u.prefix, u.sleep);
      runExecution(program, probe, {
        lockGraph: new LockGraph(),
        ...(opts.maxSteps !== undefined ? { maxSteps: opts.maxSteps } : {}),
      });
      if (!probe.reached) {
        // The execution ends before this depth: the unit is one execution.
        next.push({ ...u, leaf: true });
        continue;
      }
      // No branch: every runnable thread asleep, a redundant prefix (dropped).
      for (const ch of probe.children) next.push({ prefix: [...u.prefix, ch.c], sleep: ch.sleep, leaf: false });
      grew = true;
    }
    units = next;
    if (!grew) break;
  }
  return units.map((u) => ({ prefix: u.prefix, sleep: u.sleep }));
}

/**
 * The whole search first runs alone, in-process, up to this many executions;
 * only a search that does not finish (nor find a bug) within them is split.
 * A rule on the program and the options alone, never on the workers.
 */
export const SMALL_FIRST = 2_000;

/**
 * Why the units were explored with sleep sets instead of optimal DPOR: a
 * timed wait, or a step whose declaration depends on state (see
 * {@link concludeSplit}).
 */
export type SplitFallback = 'timed' | 'state-dependent';

/** Where the work units of {@link exploreParallel} run (worker threads, other machines, or here). */
export interface UnitRunner {
  /**
   * Explores the work units with these options (`maxExecutions` is each
   * unit's share); results in unit order. A unit after one that
   * {@link unitEnds} may be left out (null).
   */
  units(units: readonly WorkUnit[], opts: ExploreOptions): Promise<(UnitResult | null)[]>;
  /**
   * Explores the chunks `from` … `to - 1` of a randomised search; results in
   * chunk order. A chunk after one that {@link chunkEnds} may be left out (null).
   */
  chunks(from: number, to: number, opts: ExploreOptions): Promise<(ChunkResult | null)[]>;
  /** The workers it used for `count` units (for the report). */
  workers(count: number): number;
  /**
   * A split is likely (the search did not decide quickly): start the workers
   * now, so they boot while the first executions run here. Timing only.
   */
  prepare?(): void;
  /** The search is over: stop workers started by `prepare` and never used. */
  dispose?(): void;
}

/** Whether no unit after this one is needed: a finding that stops the search, or a step the split is not trusted with (it is dropped). */
export function unitEnds(r: UnitResult, opts: ExploreOptions = {}): boolean {
  return (r.found !== null && (opts.stopOnFinding ?? true)) || r.timed || r.stateDep;
}

/** What {@link exploreParallel} returns: the result, and how the search was split (absent when it was not). */
export interface ParallelResult {
  readonly result: ExploreResult;
  /** The workers used and the work units: absent when the search finished within {@link SMALL_FIRST} executions. */
  readonly split?: {
    readonly workers: number;
    readonly units: number;
    /** Set when the units used sleep sets, and why (see {@link concludeSplit}). */
    readonly fallback?: SplitFallback;
  };
}

/** Units and chunks explored here, one after the other (one worker: no thread needed). */
/** With `cancelled`: lets the event loop run (timers, signal handlers), then asks it. */
async function stopRequested(opts: ExploreOptions): Promise<boolean> {
  if (!opts.cancelled) return false;
  await new Promise((resolve) => setTimeout(resolve, 0));
  return opts.cancelled();
}

export function inProcessRunner(program: Program): UnitRunner {
  return {
    async units(units, opts) {
      const results: (UnitResult | null)[] = units.map(() => null);
      for (const [i, u] of units.entries()) {
        // A macrotask between units: a signal handler (or the page) can ask to stop.
        if (await stopRequested(opts)) break;
        const r = exploreUnit(program, u, opts);
        results[i] = r;
        if (unitEnds(r, opts)) break;
      }
      return results;
    },
    async chunks(from, to, opts) {
      const results: (ChunkResult | null)[] = [];
      for (let c = from; c < to; c++) results.push(null);
      for (let c = from; c < to; c++) {
        if (await stopRequested(opts)) break;
        const r = exploreChunk(program, c, opts);
        results[c - from] = r;
        if (chunkEnds(r, opts)) break;
      }
      return results;
    },
    workers: (count) => Math.min(1, count),
  };
}

/**
 * The split search's result from its units' (in unit order). When a unit
 * that counts (one up to the first that {@link unitEnds}) met a timed wait
 * or a state-dependent declaration, optimal DPOR's units are not trusted and
 * the units are explored again with sleep sets (`fallback`): the top levels
 * and the units are then one sleep-set DFS, which reaches every trace (the
 * brute force checks `sleep`; test/explorer/units.test.ts checks the units
 * against the whole search). A timed wait times out only when
 * every other thread is blocked, which no race records; a declaration that
 * depends on state (a fence signal that runs callbacks) can make a thread
 * asleep at a unit's root dependent later, and the top levels' sleep sets do
 * not apply optimal DPOR's guards for it. In both cases the units were
 * measured to miss traces the whole search reaches (13 of 92 on
 * vfio-revoke-importer-unmaps-in-worker; 373 of 4,738 on kvm-retry×ttm
 * 2×1×1); units explored by sleep-set DFS missed none there.
 */
export function concludeSplit(
  program: Program,
  units: readonly WorkUnit[],
  results: readonly (UnitResult | null)[],
  opts: ExploreOptions,
  workers: number,
  fallback: SplitFallback | null = null,
): ParallelResult {
  return {
    result: combineUnits(program, units, results, opts),
    split: { workers, units: units.length, ...(fallback ? { fallback } : {}) },
  };
}

/**
 * Why the optimal-DPOR units' results cannot be combined (a unit that counts
 * met a timed wait or a state-dependent declaration), or null when they can.
 */
export function untrusted(results: readonly (UnitResult | null)[], opts: ExploreOptions): SplitFallback | null {
  const end = results.findIndex((r) => r !== null && unitEnds(r, opts));
  const r = end >= 0 ? (results[end] as UnitResult) : null;
  return r?.timed ? 'timed' : r?.stateDep ? 'state-dependent' : null;
}

/**
 * The search of `explore(program, opts)` (strategy `dfs`, or a randomised
 * one), split into work units explored by `runner`. First the whole search
 * runs here with {@link SMALL_FIRST} executions; if it decides (finishes,
 * finds a bug, or a limit stops it), that is the result, unsplit. Otherwise:
 * - exhaustive (`dfs`): the units of {@link splitUnits}, each bounded by
 *   `maxExecutions` on its own, explored by optimal DPOR or, where that is not
 *   trusted, by sleep sets, and combined by {@link concludeSplit};
 * - randomised: the chunks after the first ones (already run here), combined
 *   with them by {@link combineChunks}: exactly the executions of the
 *   sequential search.
 * The result depends on the program and the options only, never on the runner.
 */
export async function exploreParallel(
  program: Program,
  opts: ExploreOptions,
  runner: UnitRunner,
  smallFirst = SMALL_FIRST,
): Promise<ParallelResult> {
  try {
    return await splitSearch(program, opts, runner, smallFirst);
  } finally {
    runner.dispose?.();
  }
}

async function splitSearch(
  program: Program,
  opts: ExploreOptions,
  runner: UnitRunner,
  smallFirst: number,
): Promise<ParallelResult> {
  const strategy = opts.strategy ?? 'dfs';
  const max = opts.maxExecutions ?? 1_000_000;
  if (strategy === 'random' || strategy === 'pct' || strategy === 'portfolio') {
    const total = chunkCount(opts);
    const first = Math.min(total, Math.max(1, Math.ceil(smallFirst / RANDOM_CHUNK)));
    const pre: ChunkResult[] = [];
    for (let c = 0; c < first; c++) {
      const r = exploreChunk(program, c, opts);
      pre.push(r);
      if (chunkEnds(r, opts)) return { result: combineChunks(program, pre, opts) };
      if (c === 0 && first < total) runner.prepare?.();
    }
    if (first >= total) return { result: combineChunks(program, pre, opts) };
    const rest = await runner.chunks(first, total, opts);
    return {
      result: combineChunks(program, [...pre, ...rest], opts),
      split: { workers: runner.workers(total - first), units: total },
    };
  }
  if (strategy !== 'dfs' && strategy !== 'optimal') return { result: explore(program, opts) };
  let src: OptimalDporSource | null = null;
  const whole = explore(program, {
    ...opts,
    maxExecutions: Math.min(max, smallFirst),
    onOptimal: (o) => {
      src = o;
    },
    onProgress: (p) => {
      // Undecided after a few hundred executions: let the workers boot meanwhile.
      if (max > smallFirst && p.phase === 'explore' && p.executions >= 256) runner.prepare?.();
      opts.onProgress?.(p);
    },
  });
  if (whole.stopped !== 'max-executions' || max <= smallFirst) return { result: whole };
  // Already a step optimal DPOR's units are not trusted with: the units use sleep sets (see concludeSplit).
  const seen = src as OptimalDporSource | null;
  let fallback: SplitFallback | null = seen?.sawTimed ? 'timed' : seen?.sawStateDep ? 'state-dependent' : null;
  const units = splitUnits(program, opts.maxSteps !== undefined ? { maxSteps: opts.maxSteps } : {});
  // Each unit is bounded by maxExecutions itself: a share (M / units) would stop the
  // biggest unit of a search the whole one finishes within M (the split weaker than
  // none); so the units together may run more than M. The same for any N.
  const bySleepSets: ExploreOptions = { ...opts, strategy: 'sleep' };
  let results = await runner.units(units, fallback ? bySleepSets : opts);
  if (!fallback) {
    fallback = untrusted(results, opts);
    if (fallback) results = await runner.units(units, bySleepSets);
  }
  const split = concludeSplit(program, units, results, opts, runner.workers(units.length), fallback);
  // Stopped before the units decided: the executions done are at least those of the first run.
  if (opts.cancelled?.() && !split.result.stats.complete && split.result.stats.executions < whole.stats.executions) {
    split.result.stats.executions = whole.stats.executions;
    split.result.stats.steps = whole.stats.steps;
  }
  return split;
}
