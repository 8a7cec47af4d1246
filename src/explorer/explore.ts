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
import { type ChoiceSource, type ExecResult, runExecution } from './execution.ts';
import { OptimalDporSource } from './optimal.ts';
import { Pct, pctHitProbability } from './pct.ts';
import type { Program } from './program.ts';
import { RandomWalk } from './random.ts';
import { encodeToken, type ReplayToken } from './token.ts';

export type Strategy = 'dfs' | 'optimal' | 'dpor' | 'sleep' | 'naive' | 'random' | 'pct' | 'portfolio';
export type Verdict = 'safe' | 'bug' | 'unknown';
export type StopReason = 'max-executions' | 'timeout' | 'step-limit';

export interface ExploreOptions {
  readonly strategy?: Strategy;
  /** Default 1,000,000. */
  readonly maxExecutions?: number;
  /** Stop when `now()` passes this value (milliseconds). */
  readonly deadline?: number;
  readonly now?: () => number;
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
  /** Called about every 256 executions. */
  readonly onProgress?: (p: Progress) => void;
}

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
    if (!src.advance() || outOfTime(s)) return null;
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
      if (spent >= budget || !src.advance() || outOfTime(s)) break;
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

export function explore(program: Program, opts: ExploreOptions = {}): ExploreResult {
  const strategy = opts.strategy ?? 'dfs';
  const maxExecutions = opts.maxExecutions ?? 1_000_000;
  const stopOnFinding = opts.stopOnFinding ?? true;
  const budget = opts.searchBudget ?? 50_000;
  const s: Searcher = {
    program,
    opts,
    clock: opts.now ?? now,
    graph: new LockGraph(),
    executions: 0,
    extra: 0,
    extraSteps: 0,
    stopped: null,
  };
  const stats: ExploreStats = {
    executions: 0,
    steps: 0,
    redundant: 0,
    fallbacks: 0,
    extraExecutions: 0,
    extraSteps: 0,
    complete: false,
    codes: [],
    pct: [],
  };
  const codes = new Set<FindingCode>();
  let found: ExecResult | null = null;

  const randomised = strategy === 'random' || strategy === 'pct' || strategy === 'portfolio';
  const optimal = strategy === 'dfs' || strategy === 'optimal' ? new OptimalDporSource() : null;
  const dfs = randomised
    ? null
    : (optimal ?? (strategy === 'dpor' ? new DporSource() : new SleepSetDfs(strategy === 'sleep')));
  const seed = opts.seed ?? 1;
  const pctRuns = [0, 0, 0, 0];
  /** Steps the longest execution so far took: PCT draws its change points below it. */
  let k = 1;
  for (;;) {
    if (stats.executions >= maxExecutions) {
      s.stopped = 'max-executions';
      break;
    }
    let src: ChoiceSource;
    if (dfs) {
      src = dfs;
    } else {
      // The portfolio alternates random walk and PCT of depth 1, 2, 3 (as Coyote does by default).
      const i = stats.executions;
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
    if (r.status === 'step-limit' && !s.stopped) s.stopped = 'step-limit';
    for (const f of r.findings) codes.add(f.code);
    if (r.findings.length > 0 && !found) found = r;
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
    if ((stats.executions & 255) === 0)
      opts.onProgress?.({ executions: stats.executions, steps: stats.steps, phase: 'explore' });
  }

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
  for (let d = 1; d <= 3; d++) {
    const runs = pctRuns[d] ?? 0;
    if (!runs) continue;
    const perRun = pctHitProbability(program.threads.length, k, d);
    stats.pct.push({ depth: d, runs, threads: program.threads.length, k, perRun, miss: (1 - perRun) ** runs });
  }
  if (optimal) stats.fallbacks = optimal.fallbacks;
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
  };
}
