/**
 * The explorer: runs a program over its interleavings and returns a verdict.
 *
 * - `dfs` (default; also `optimal`): exhaustive depth-first search with
 *   optimal dynamic partial-order reduction (wakeup trees, explorer/optimal.ts):
 *   one execution per Mazurkiewicz trace. Finishing with no finding proves the
 *   scenario safe (up to the model).
 * - `dpor`: the classic DPOR of Flanagan and Godefroid with sleep sets
 *   (explorer/dpor.ts), for the benchmark only (not on the command line): it
 *   misses traces where a declaration depends on state and at deadlocks
 *   (test/explorer/mazurkiewicz.test.ts pins both).
 * - `sleep`: exhaustive depth-first search with sleep sets only (explorer/dfs.ts),
 *   for comparison.
 * - `random`: seeded random walk, for scenarios too big to finish; it can
 *   find bugs but never proves safety (a run without finding is `unknown`).
 * - `naive`: depth-first search without reduction, every interleaving (for
 *   comparison: the benchmark and the exactness tests use it).
 *
 * On the first execution with a finding the search stops; the counterexample
 * is then minimised: preemption-bounded searches with bounds 0, 1, … find one
 * with the fewest preemptions. When a specific finding code is wanted (the
 * scenario's `expect.finding`) and the first counterexample does not show it,
 * the search goes on for an execution that does, so the report can confirm or
 * refute the expectation.
 */
import type { Finding, FindingCode } from '../checkers/finding.ts';
import { LockGraph } from '../checkers/lockdep.ts';
import type { KernelConfig, StepObserver } from '../kernel/kernel.ts';
import { PreemptionBoundedDfs } from './bounded.ts';
import { SleepSetDfs } from './dfs.ts';
import { DporSource } from './dpor.ts';
import { type ChoiceSource, type ExecResult, type Runaway, runExecution } from './execution.ts';
import { OptimalDporSource } from './optimal.ts';
import { Pct, pctHitProbability } from './pct.ts';
import type { Program } from './program.ts';
import { RandomWalk } from './random.ts';
import { Replay } from './replay.ts';
import { StateCachingDfs } from './stateful.ts';
import { symmetryGroups } from './symmetry.ts';
import { decodeToken, encodeToken, type ReplayToken } from './token.ts';
import type { WorkUnit } from './units.ts';

export type Strategy = 'dfs' | 'optimal' | 'dpor' | 'sleep' | 'state' | 'naive' | 'random' | 'pct' | 'portfolio';
export type Verdict = 'safe' | 'bug' | 'unknown';
export type StopReason = 'max-executions' | 'timeout' | 'step-limit' | 'driver-error' | 'stall' | 'interrupted';

export interface ExploreOptions {
  readonly strategy?: Strategy;
  /** Default 1,000,000. */
  readonly maxExecutions?: number;
  /** Stop when `now()` passes this value (milliseconds). */
  readonly deadline?: number;
  readonly now?: () => number;
  /**
   * Polled between executions (every 64) and between work units: true stops
   * the search (`interrupted`, verdict unknown unless a finding came first).
   * Not passed to worker threads: their pool is stopped by its owner.
   */
  readonly cancelled?: () => boolean;
  /** Seed of the random strategy. Default 1. */
  readonly seed?: number;
  /** Default true: stop at the first execution with a finding. */
  readonly stopOnFinding?: boolean;
  /** Default true: minimise the counterexample's preemptions. */
  readonly minimise?: boolean;
  /** Budget (executions) of each minimisation or targeted search. Default 50,000. */
  readonly searchBudget?: number;
  /** A finding code to look for if the first counterexample does not show it. */
  readonly want?: FindingCode | null;
  readonly config?: KernelConfig;
  readonly maxSteps?: number;
  /** Called after every execution of the main search (tests compare strategies with it). */
  readonly onExecution?: (r: ExecResult) => void;
  /** Observes every step of every execution of the main search (the Mazurkiewicz trace counter uses it). */
  readonly observer?: StepObserver;
  /** Strategy `state`: identify states up to renaming interchangeable threads (default true). */
  readonly symmetry?: boolean;
  /** Called about every 256 executions. */
  readonly onProgress?: (p: Progress) => void;
  /** With `dfs`: explore only this work unit (explorer/units.ts). */
  readonly unit?: WorkUnit;
  /** Receives the exploration's lockdep graph (work units hand their dependencies on). */
  readonly onGraph?: (g: LockGraph) => void;
  /** Receives the optimal DPOR source of a `dfs` search (a work unit reads whether it saw a timed wait). */
  readonly onOptimal?: (src: OptimalDporSource) => void;
  /**
   * Randomised strategies: explore only this chunk of execution indices
   * ({@link RANDOM_CHUNK} each, the last one ending at `maxExecutions`), on a
   * lockdep graph of its own, without minimising (see {@link exploreChunk}).
   */
  readonly chunk?: number;
}

/**
 * Executions per chunk of a randomised search. Each chunk starts afresh: its
 * own lockdep graph, PCT's step bound k back to 1; execution i is seeded by
 * (seed, i). So the chunks can run anywhere, in any order, and combine into
 * the same result as the sequential search, which runs them in order.
 */
export const RANDOM_CHUNK = 256;

export interface Progress {
  readonly executions: number;
  readonly steps: number;
  readonly phase: 'explore' | 'minimise' | 'search';
}

export interface Counterexample {
  readonly token: ReplayToken;
  readonly schedule: readonly number[];
  readonly findings: readonly Finding[];
  readonly preemptions: number;
  readonly switches: number;
  readonly steps: number;
}

export interface ExploreStats {
  /** Executions run by the main search (abandoned redundant ones included). */
  executions: number;
  /** Steps run by the main search. */
  steps: number;
  /** Executions abandoned because every runnable thread was asleep. */
  redundant: number;
  /**
   * Optimal DPOR only: wakeup branches found blocked when their turn came
   * (explorer/optimal.ts); each was replaced by classic DPOR's branches.
   */
  fallbacks: number;
  /**
   * Strategy `state` only: states stored, and the groups of interchangeable
   * threads (names) it identified states up to renaming of (empty: none).
   */
  states?: number;
  symmetry?: string[][];
  /** Executions spent minimising and in targeted searches. */
  extraExecutions: number;
  /** Steps of those executions. */
  extraSteps: number;
  /** The main search covered every interleaving (up to reduction). */
  complete: boolean;
  /** Every finding code seen (with stopOnFinding false: over all executions). */
  codes: FindingCode[];
  /** PCT runs by depth and the guarantee they give (strategies pct and portfolio). */
  pct: PctGuarantee[];
}

/** What the PCT executions of one depth guarantee ([Burckhardt et al. 2010]). */
export interface PctGuarantee {
  readonly depth: number;
  readonly runs: number;
  /** Threads and the step bound k the change points were drawn below. */
  readonly threads: number;
  readonly k: number;
  /** Probability that one run hits a given bug of this depth: at least 1 / (n · k^(d-1)). */
  readonly perRun: number;
  /** Upper bound on the probability that every run missed such a bug. */
  readonly miss: number;
}

export interface ExploreResult {
  readonly verdict: Verdict;
  /** The shortest counterexample found (null when no finding). */
  readonly counterexample: Counterexample | null;
  /** A counterexample for the wanted code, when the first one lacked it. */
  readonly wanted: Counterexample | null;
  readonly stats: ExploreStats;
  readonly stopped: StopReason | null;
  /** The first thread that ran away (threw, or ran into the step bound): the search stopped there. */
  readonly runaway: Runaway | null;
}

const now = () => globalThis.performance.now();

function counterexample(program: Program, r: ExecResult): Counterexample {
  return {
    token: encodeToken(program.hash, r.schedule),
    schedule: r.schedule,
    findings: r.findings,
    preemptions: r.preemptions,
    switches: r.switches,
    steps: r.steps,
  };
}

type Pred = (r: ExecResult) => boolean;
const anyFinding: Pred = (r) => r.findings.length > 0;
const hasCode =
  (code: FindingCode): Pred =>
  (r) =>
    r.findings.some((f) => f.code === code);

interface Searcher {
  readonly graph: LockGraph;
  executions: number;
  readonly program: Program;
  readonly opts: ExploreOptions;
  readonly clock: () => number;
  extra: number;
  extraSteps: number;
  stopped: StopReason | null;
  runaway: Runaway | null;
}

function outOfTime(s: Searcher): boolean {
  if (s.opts.deadline !== undefined && s.clock() > s.opts.deadline) {
    s.stopped = 'timeout';
    return true;
  }
  return false;
}

/** Depth-first search (DPOR) for the first execution satisfying `pred`. */
function searchFirst(s: Searcher, pred: Pred, budget: number): ExecResult | null {
  // The sound exhaustive search (classic DPOR misses traces).
  const src = new OptimalDporSource();
  for (let i = 0; i < budget; i++) {
    const r = run(s, src);
    s.extra++;
    s.extraSteps += r.steps;
    if (pred(r)) return r;
    // A runaway execution did not finish its source's bookkeeping: stop here.
    if (r.runaway || !src.advance() || outOfTime(s)) return null;
    if (i % 256 === 255) s.opts.onProgress?.({ executions: s.extra, steps: 0, phase: 'search' });
  }
  return null;
}

/**
 * Orders counterexamples: fewer preemptions, then fewer context switches,
 * then fewer steps, then the schedule (lexicographically), so that of equally
 * short ones the same is kept whichever the search met first.
 */
function shorter(a: ExecResult, b: ExecResult): boolean {
  if (a.preemptions !== b.preemptions) return a.preemptions < b.preemptions;
  if (a.switches !== b.switches) return a.switches < b.switches;
  if (a.schedule.length !== b.schedule.length) return a.schedule.length < b.schedule.length;
  for (let i = 0; i < a.schedule.length; i++) {
    if (a.schedule[i] !== b.schedule[i]) return (a.schedule[i] as number) < (b.schedule[i] as number);
  }
  return false;
}

/**
 * The shortest execution satisfying `pred` (within budget): preemption
 * bounds 0, 1, … (iterative context bounding); the first bound with a hit is
 * explored to its end, keeping the execution with the fewest context
 * switches, then the fewest steps.
 */
function minimise(s: Searcher, found: ExecResult, pred: Pred, budget: number): ExecResult {
  let best = found;
  // No context switch at all: nothing to gain.
  if (found.switches === 0) return found;
  for (let bound = 0; bound <= best.preemptions; bound++) {
    const src = new PreemptionBoundedDfs(bound);
    let spent = 0;
    let hit = false;
    for (;;) {
      const r = run(s, src);
      s.extra++;
      s.extraSteps += r.steps;
      spent++;
      if (pred(r) && r.status !== 'abandoned') {
        hit = true;
        if (shorter(r, best)) best = r;
      }
      if (r.runaway || spent >= budget || !src.advance() || outOfTime(s)) break;
      if (spent % 256 === 0) s.opts.onProgress?.({ executions: s.extra, steps: 0, phase: 'minimise' });
    }
    if (hit || s.stopped) break;
  }
  return best;
}

/** Runs one execution: every execution of an exploration shares lockdep's graph, as one kernel run would. */
function run(s: Searcher, src: ChoiceSource, observer?: StepObserver): ExecResult {
  const o = s.opts;
  return runExecution(s.program, src, {
    ...(o.config ? { config: o.config } : {}),
    ...(observer ? { observer } : {}),
    ...(o.maxSteps !== undefined ? { maxSteps: o.maxSteps } : {}),
    lockGraph: s.graph,
    execution: s.executions++,
  });
}

/** A searcher for one exploration (or one combination of units): its own lockdep graph. */
function newSearcher(program: Program, opts: ExploreOptions): Searcher {
  return {
    program,
    opts,
    clock: opts.now ?? now,
    graph: new LockGraph(),
    executions: 0,
    extra: 0,
    extraSteps: 0,
    stopped: null,
    runaway: null,
  };
}

function emptyStats(complete: boolean): ExploreStats {
  return {
    executions: 0,
    steps: 0,
    redundant: 0,
    fallbacks: 0,
    extraExecutions: 0,
    extraSteps: 0,
    complete,
    codes: [],
    pct: [],
  };
}

export function explore(program: Program, opts: ExploreOptions = {}): ExploreResult {
  const strategy = opts.strategy ?? 'dfs';
  const maxExecutions = opts.maxExecutions ?? 1_000_000;
  const stopOnFinding = opts.stopOnFinding ?? true;
  const s = newSearcher(program, opts);
  const stats = emptyStats(false);
  const codes = new Set<FindingCode>();
  let found: ExecResult | null = null;

  const randomised = strategy === 'random' || strategy === 'pct' || strategy === 'portfolio';
  // A randomised search is its chunks, run in order and combined (the same whether run here or elsewhere).
  if (randomised && opts.chunk === undefined) return exploreChunked(program, opts);
  const optimal = strategy === 'dfs' || strategy === 'optimal' ? new OptimalDporSource(opts.unit) : null;
  if (optimal) opts.onOptimal?.(optimal);
  opts.onGraph?.(s.graph);
  const groups = strategy === 'state' && (opts.symmetry ?? true) ? symmetryGroups(program) : [];
  const stateful = strategy === 'state' ? new StateCachingDfs({ groups }) : null;
  const dfs = randomised
    ? null
    : (optimal ??
      stateful ??
      (strategy === 'dpor' ? new DporSource() : new SleepSetDfs(strategy === 'sleep', opts.unit)));
  const seed = opts.seed ?? 1;
  const pctRuns = [0, 0, 0, 0];
  /** Steps the longest execution so far (in this chunk) took: PCT draws its change points below it. */
  let k = 1;
  /** A chunk's first execution index, and its end. */
  const start = opts.chunk !== undefined ? opts.chunk * RANDOM_CHUNK : 0;
  const end = opts.chunk !== undefined ? Math.min(start + RANDOM_CHUNK, maxExecutions) : maxExecutions;
  s.executions = start;
  for (;;) {
    if (start + stats.executions >= end) {
      // A chunk before the last one just ends.
      if (end >= maxExecutions) s.stopped = 'max-executions';
      break;
    }
    let src: ChoiceSource;
    if (dfs) {
      src = dfs;
    } else {
      // The portfolio alternates random walk and PCT of depth 1, 2, 3 (as Coyote does by default).
      const i = start + stats.executions;
      const usePct = strategy === 'pct' || (strategy === 'portfolio' && i % 2 === 1);
      if (usePct) {
        const d = 1 + ((strategy === 'pct' ? i : i >> 1) % 3);
        pctRuns[d] = (pctRuns[d] ?? 0) + 1;
        src = new Pct(seed, i, program.threads.length, k, d);
      } else {
        src = new RandomWalk(seed, i);
      }
    }
    const r = run(s, src, opts.observer);
    if (r.schedule.length > k) k = r.schedule.length;
    stats.executions++;
    stats.steps += r.steps;
    opts.onExecution?.(r);
    if (r.status === 'abandoned') stats.redundant++;
    for (const f of r.findings) codes.add(f.code);
    if (r.findings.length > 0 && !found) found = r;
    // A thread that threw or ran into the step bound ends the search: every
    // further execution would run the same op (the verdict is unknown unless
    // a finding came first).
    if (r.runaway) {
      s.runaway = r.runaway;
      s.stopped = r.runaway.kind;
      break;
    }
    if (found && stopOnFinding) break;
    if (r.status === 'setup-failed') {
      stats.complete = true;
      break;
    }
    if (dfs && !dfs.advance()) {
      stats.complete = s.stopped !== 'step-limit';
      break;
    }
    if (outOfTime(s)) break;
    if ((stats.executions & 63) === 0 && opts.cancelled?.()) {
      s.stopped = 'interrupted';
      break;
    }
    if ((stats.executions & 255) === 0)
      opts.onProgress?.({ executions: start + stats.executions, steps: stats.steps, phase: 'explore' });
  }

  for (let d = 1; d <= 3; d++) {
    const runs = pctRuns[d] ?? 0;
    if (!runs) continue;
    const perRun = pctHitProbability(program.threads.length, k, d);
    stats.pct.push({ depth: d, runs, threads: program.threads.length, k, perRun, miss: (1 - perRun) ** runs });
  }
  if (optimal) stats.fallbacks = optimal.fallbacks;
  if (stateful) {
    stats.states = stateful.states;
    stats.symmetry = groups.map((g) => g.map((t) => program.threads[t] as string));
  }
  return conclude(s, stats, found, codes);
}

/** After the search: minimise the counterexample, look for a wanted code, the verdict. */
function conclude(s: Searcher, stats: ExploreStats, found: ExecResult | null, codes: Set<FindingCode>): ExploreResult {
  const { program, opts } = s;
  const budget = opts.searchBudget ?? 50_000;
  let cex: ExecResult | null = found;
  if (found && (opts.minimise ?? true) && found.status !== 'setup-failed') {
    cex = minimise(s, found, anyFinding, budget);
  }
  let wanted: ExecResult | null = null;
  const want = opts.want ?? null;
  if (cex && want && !cex.findings.some((f) => f.code === want) && cex.status !== 'setup-failed') {
    const hit = searchFirst(s, hasCode(want), budget);
    if (hit) {
      wanted = (opts.minimise ?? true) ? minimise(s, hit, hasCode(want), budget) : hit;
      for (const f of wanted.findings) codes.add(f.code);
    }
  }
  stats.extraExecutions = s.extra;
  stats.extraSteps = s.extraSteps;
  stats.codes = [...codes].sort();
  const verdict: Verdict = found ? 'bug' : stats.complete && !s.stopped ? 'safe' : 'unknown';
  return {
    verdict,
    counterexample: cex ? counterexample(program, cex) : null,
    wanted: wanted ? counterexample(program, wanted) : null,
    stats,
    stopped: verdict === 'bug' ? null : s.stopped,
    runaway: s.runaway,
  };
}

/** What a part of a search (a work unit, a chunk) found: structured-clone safe, it crosses worker threads. */
interface PartResult {
  readonly executions: number;
  readonly steps: number;
  readonly redundant: number;
  readonly complete: boolean;
  readonly stopped: StopReason | null;
  /** The first runaway thread of the part's executions (the part stopped there). */
  readonly runaway: Runaway | null;
  readonly codes: readonly FindingCode[];
  /** The first execution with a finding: its schedule, and the executions its lock-order findings need. */
  readonly found: { readonly schedule: readonly number[]; readonly requires: readonly string[] } | null;
}

/** What one work unit's exploration found. */
export interface UnitResult extends PartResult {
  readonly fallbacks: number;
  /** Lockdep dependencies this unit's executions recorded, in order, with the execution that shows each. */
  readonly edges: readonly { readonly from: string; readonly to: string; readonly token: string }[];
  /**
   * A timed wait ran or was pending in some execution: its timeout depends on
   * every other thread being blocked, which no race records, so the unit's
   * exploration may miss traces the whole search reaches (see units.ts).
   */
  readonly timed: boolean;
  /** A step whose declaration depends on state ran or was pending (see OptimalDporSource.sawStateDep). */
  readonly stateDep: boolean;
}

/**
 * Explores one work unit (optimal DPOR from its prefix and sleep set), on a
 * lockdep graph of its own, without minimising: {@link combineUnits} does
 * that on the results of all units, in unit order.
 */
export function exploreUnit(program: Program, unit: WorkUnit, opts: ExploreOptions = {}): UnitResult {
  let found: ExecResult | null = null;
  const graphs: LockGraph[] = [];
  let src: OptimalDporSource | null = null;
  // Optimal DPOR from the unit's root, or sleep-set DFS when the split is not trusted with it (units.ts).
  const r = explore(program, {
    ...opts,
    strategy: opts.strategy === 'sleep' ? 'sleep' : 'dfs',
    unit,
    onOptimal: (o) => {
      src = o;
    },
    minimise: false,
    want: null,
    onGraph: (g) => graphs.push(g),
    onExecution: (e) => {
      if (!found && e.findings.length > 0) found = e;
      opts.onExecution?.(e);
    },
  });
  const f = found as ExecResult | null;
  const requires = lockOrderRequires(f);
  const edges: { from: string; to: string; token: string }[] = [];
  for (const d of graphs[0]?.list ?? []) if (d.token) edges.push({ from: d.from, to: d.to, token: d.token });
  return {
    executions: r.stats.executions,
    steps: r.stats.steps,
    redundant: r.stats.redundant,
    fallbacks: r.stats.fallbacks,
    complete: r.stats.complete,
    stopped: r.stopped,
    runaway: r.runaway,
    codes: r.stats.codes,
    found: f ? { schedule: [...f.schedule], requires } : null,
    edges,
    timed: (src as OptimalDporSource | null)?.sawTimed ?? false,
    stateDep: (src as OptimalDporSource | null)?.sawStateDep ?? false,
  };
}

/** The index of the first unit whose result has a finding, or -1. */
export function firstFindingUnit(results: readonly (UnitResult | null)[]): number {
  return results.findIndex((r) => r?.found != null);
}

/**
 * Combines the units' results, given in unit order, into what {@link explore}
 * returns; the same for any number of workers. With a finding, the units up
 * to the first one with a finding count, and its first execution with a
 * finding is minimised (on a graph that holds the executions its lock-order
 * findings need). Without one, the units' lock dependencies are merged in
 * unit order: a cycle that no unit saw alone (its edges come from several
 * units) is a lock-order finding, found by replaying the execution that
 * closes it after the others.
 */
export function combineUnits(
  program: Program,
  units: readonly WorkUnit[],
  results: readonly (UnitResult | null)[],
  opts: ExploreOptions = {},
): ExploreResult {
  const s = newSearcher(program, opts);
  const first = firstFindingUnit(results);
  const upto = first >= 0 ? first + 1 : results.length;
  const stats = emptyStats(results.length === units.length);
  const codes = new Set<FindingCode>();
  for (let i = 0; i < upto; i++) {
    const r = results[i];
    if (!r) {
      stats.complete = false;
      continue;
    }
    stats.executions += r.executions;
    stats.steps += r.steps;
    stats.redundant += r.redundant;
    stats.fallbacks += r.fallbacks;
    if (!r.complete) stats.complete = false;
    if (r.stopped && !s.stopped) s.stopped = r.stopped;
    if (r.runaway && !s.runaway) {
      s.runaway = r.runaway;
      s.stopped = r.runaway.kind;
    }
    for (const c of r.codes) codes.add(c);
  }
  const replay = (schedule: readonly number[], partial = false) => run(s, new Replay(schedule, partial));
  let found: ExecResult | null = null;
  const f = first >= 0 ? (results[first] as UnitResult).found : null;
  if (f) {
    for (const t of f.requires) replay(decodeToken(t).schedule, true);
    found = replay(f.schedule);
  } else if (stats.complete && !s.stopped) {
    found = crossUnitCycle(results as readonly UnitResult[], replay);
    if (found) for (const x of found.findings) codes.add(x.code);
  }
  return conclude(s, stats, found, codes);
}

/** Merges the units' lock dependencies in order; an edge that closes a cycle is replayed after the others. */
function crossUnitCycle(
  results: readonly UnitResult[],
  replay: (schedule: readonly number[], partial?: boolean) => ExecResult,
): ExecResult | null {
  const merged = new LockGraph();
  for (const r of results) {
    for (const e of r.edges) {
      const back = merged.has(e.from, e.to) ? null : merged.path(e.to, e.from);
      merged.add({ from: e.from, to: e.to, seen: null, execution: 0, token: e.token });
      if (!back) continue;
      for (const d of back) if (d.token && d.token !== e.token) replay(decodeToken(d.token).schedule, true);
      const hit = replay(decodeToken(e.token).schedule, true);
      if (hit.findings.some((x) => x.code === 'lock-order')) return hit;
    }
  }
  return null;
}

/** The executions (tokens) a finding's lock-order reports need replayed first. */
function lockOrderRequires(f: ExecResult | null): string[] {
  const requires = new Set<string>();
  for (const x of f?.findings ?? []) if (x.code === 'lock-order') for (const t of x.requires) requires.add(t);
  return [...requires];
}

/**
 * What one chunk of a randomised search found. `complete`: the search ended
 * in this chunk without a limit (setup failed: there is nothing to explore).
 */
export interface ChunkResult extends PartResult {
  readonly chunk: number;
  /** PCT runs by depth (index 1–3) and the chunk's step bound k. */
  readonly pctRuns: readonly number[];
  readonly k: number;
}

/** How many chunks a randomised search with these options has. */
export function chunkCount(opts: ExploreOptions = {}): number {
  return Math.ceil((opts.maxExecutions ?? 1_000_000) / RANDOM_CHUNK);
}

/** Whether no chunk after this one counts (a finding that stops the search, setup failed, or a timeout). */
export function chunkEnds(r: ChunkResult, opts: ExploreOptions = {}): boolean {
  return (
    (r.found !== null && (opts.stopOnFinding ?? true)) || r.complete || r.stopped === 'timeout' || r.runaway !== null
  );
}

/**
 * Explores chunk `chunk` of a randomised search (executions chunk·256 … on,
 * each seeded by (seed, index)), on a lockdep graph of its own, PCT's step
 * bound starting at 1, without minimising: {@link combineChunks} does that.
 */
export function exploreChunk(program: Program, chunk: number, opts: ExploreOptions = {}): ChunkResult {
  let found: ExecResult | null = null;
  const r = explore(program, {
    ...opts,
    chunk,
    minimise: false,
    want: null,
    onExecution: (e) => {
      if (!found && e.findings.length > 0) found = e;
      opts.onExecution?.(e);
    },
  });
  const f = found as ExecResult | null;
  const pctRuns = [0, 0, 0, 0];
  let k = 1;
  for (const g of r.stats.pct) {
    pctRuns[g.depth] = g.runs;
    k = g.k;
  }
  return {
    chunk,
    executions: r.stats.executions,
    steps: r.stats.steps,
    redundant: r.stats.redundant,
    complete: r.stats.complete,
    stopped: r.stopped,
    runaway: r.runaway,
    codes: r.stats.codes,
    found: f ? { schedule: [...f.schedule], requires: lockOrderRequires(f) } : null,
    pctRuns,
    k,
  };
}

/** A randomised search: its chunks in order, combined. */
function exploreChunked(program: Program, opts: ExploreOptions): ExploreResult {
  const results: ChunkResult[] = [];
  const n = chunkCount(opts);
  for (let c = 0; c < n; c++) {
    const r = exploreChunk(program, c, opts);
    results.push(r);
    if (chunkEnds(r, opts)) break;
  }
  return combineChunks(program, results, opts);
}

/**
 * Combines the chunks' results, given in chunk order from chunk 0 (null for
 * one not run), into what {@link explore} returns: the chunks up to the first
 * that ends the search count; the first finding (the lowest execution index)
 * is replayed on a fresh lockdep graph (after the executions its lock-order
 * findings need) and minimised. The same whether the chunks ran here, in
 * order, or elsewhere.
 */
export function combineChunks(
  program: Program,
  results: readonly (ChunkResult | null)[],
  opts: ExploreOptions = {},
): ExploreResult {
  const s = newSearcher(program, opts);
  const stats = emptyStats(false);
  const codes = new Set<FindingCode>();
  const pctRuns = [0, 0, 0, 0];
  let k = 1;
  let first: ChunkResult | null = null;
  for (const r of results) {
    if (!r) break;
    stats.executions += r.executions;
    stats.steps += r.steps;
    stats.redundant += r.redundant;
    for (const c of r.codes) codes.add(c);
    for (let d = 1; d <= 3; d++) pctRuns[d] = (pctRuns[d] ?? 0) + (r.pctRuns[d] ?? 0);
    if (r.k > k) k = r.k;
    if (r.found && !first) first = r;
    // The last chunk's stop (max-executions, timeout) wins, as in one sequential loop.
    if (r.stopped && (r.stopped !== 'step-limit' || !s.stopped)) s.stopped = r.stopped;
    if (r.runaway && !s.runaway) {
      s.runaway = r.runaway;
      s.stopped = r.runaway.kind;
    }
    if (r.complete) stats.complete = true;
    if (chunkEnds(r, opts)) break;
  }
  for (let d = 1; d <= 3; d++) {
    const runs = pctRuns[d] ?? 0;
    if (!runs) continue;
    const perRun = pctHitProbability(program.threads.length, k, d);
    stats.pct.push({ depth: d, runs, threads: program.threads.length, k, perRun, miss: (1 - perRun) ** runs });
  }
  let found: ExecResult | null = null;
  const f = first?.found;
  if (f) {
    for (const t of f.requires) run(s, new Replay(decodeToken(t).schedule, true));
    found = run(s, new Replay(f.schedule));
  }
  return conclude(s, stats, found, codes);
}
