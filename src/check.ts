/**
 * Checking a scenario: explore it and compare the verdict with what the
 * scenario expects. Browser-safe; the command line and the library API both
 * use it.
 */
import type { Finding } from './checkers/finding.ts';
import type { Runaway } from './explorer/execution.ts';
import {
  type Counterexample,
  type ExploreOptions,
  type ExploreResult,
  explore,
  type StopReason,
  type Strategy,
  type Verdict,
} from './explorer/explore.ts';
import { countTraces, type TraceCount } from './explorer/mazurkiewicz.ts';
import type { Program } from './explorer/program.ts';
import type { ReplayToken } from './explorer/token.ts';
import { compile } from './scenario/compile.ts';
import type { ExpectSpec, ScenarioSpec } from './scenario/spec.ts';

/** A finding as reported: with the token that replays the execution it was found in. */
export type ReportedFinding = Finding & { readonly token: ReplayToken };

export interface CheckStats {
  readonly executions: number;
  readonly steps: number;
  readonly complete: boolean;
  readonly ms: number;
  readonly redundant: number;
  readonly extraExecutions: number;
  readonly extraSteps: number;
  /** With the command line's `--workers N`: the worker threads and the work units the search was split into. */
  readonly workers?: number;
  readonly units?: number;
  /**
   * The split met a step optimal DPOR's units are not trusted with (`timed`:
   * a timed wait; `state-dependent`: a declaration that depends on state), so
   * the units were explored with sleep sets.
   */
  readonly splitFallback?: 'timed' | 'state-dependent';
  /**
   * Strategy `state`: states stored, and the groups of interchangeable threads
   * whose renamings were identified (empty when symmetry was not used).
   */
  readonly states?: number;
  readonly symmetry?: readonly (readonly string[])[];
}

export interface CheckResult {
  readonly file: string;
  readonly name: string;
  readonly verdict: Verdict;
  readonly expected: ExpectSpec | null;
  readonly met: boolean;
  /** The counterexample's findings in order, then a wanted code's if it was missing. */
  readonly findings: readonly ReportedFinding[];
  readonly counterexample: Counterexample | null;
  readonly wanted: Counterexample | null;
  readonly stats: CheckStats;
  readonly stopped: StopReason | null;
  /** The thread that ran away (its op threw, or ran into the step bound): not a finding, the verdict is unknown. */
  readonly runaway: Runaway | null;
  readonly strategy: Strategy;
  /** With `count`: the Mazurkiewicz traces among the executions (src/explorer/mazurkiewicz.ts). */
  readonly count?: TraceCount;
}

export interface CheckOptions {
  readonly maxExecutions?: number;
  readonly timeoutMs?: number;
  readonly seed?: number;
  readonly strategy?: Strategy;
  readonly onProgress?: ExploreOptions['onProgress'];
  readonly now?: () => number;
  /**
   * Count the Mazurkiewicz traces: explore every interleaving the strategy
   * runs (no stop at the first finding, no minimisation) and fingerprint
   * each execution.
   */
  readonly count?: boolean;
}

/** Whether a result meets the expectation (none means: must be safe). */
export function meets(verdict: Verdict, findings: readonly Finding[], expected: ExpectSpec | null): boolean {
  if (!expected) return verdict === 'safe';
  if (verdict !== expected.verdict) return false;
  return !expected.finding || findings.some((f) => f.code === expected.finding);
}

function reported(cex: Counterexample | null): ReportedFinding[] {
  return cex ? cex.findings.map((f) => ({ ...f, token: cex.token })) : [];
}

/** What a check explores, with which options (shared by {@link checkScenario} and src/check-async.ts). */
export interface CheckPlan {
  readonly program: Program;
  readonly exploreOpts: ExploreOptions;
  readonly strategy: Strategy;
  readonly now: () => number;
  readonly t0: number;
}

export function checkPlan(spec: ScenarioSpec, opts: CheckOptions = {}): CheckPlan {
  const now = opts.now ?? (() => globalThis.performance.now());
  const t0 = now();
  const strategy = opts.strategy ?? spec.explore.strategy ?? 'dfs';
  const program = compile(spec);
  const exploreOpts: ExploreOptions = {
    strategy,
    maxExecutions: opts.maxExecutions ?? spec.explore.max_executions ?? 1_000_000,
    ...(opts.timeoutMs !== undefined ? { deadline: t0 + opts.timeoutMs } : {}),
    seed: opts.seed ?? spec.explore.seed ?? 1,
    want: spec.expect?.verdict === 'bug' ? (spec.expect.finding ?? null) : null,
    now,
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
  };
  return { program, exploreOpts, strategy, now, t0 };
}

/** The check's result from the exploration's; `extra` adds to the stats. */
export function checkResult(
  spec: ScenarioSpec,
  file: string,
  plan: CheckPlan,
  r: ExploreResult,
  count: TraceCount | null,
  extra: Pick<CheckStats, 'workers' | 'units' | 'splitFallback'> = {},
): CheckResult {
  const { now, t0, strategy } = plan;
  const findings = reported(r.counterexample);
  for (const f of reported(r.wanted)) if (!findings.some((g) => g.code === f.code)) findings.push(f);
  return {
    file,
    name: spec.name,
    verdict: r.verdict,
    expected: spec.expect,
    met: meets(r.verdict, findings, spec.expect),
    findings,
    counterexample: r.counterexample,
    wanted: r.wanted,
    stats: {
      executions: r.stats.executions,
      steps: r.stats.steps,
      complete: r.stats.complete,
      ms: Math.round(now() - t0),
      redundant: r.stats.redundant,
      extraExecutions: r.stats.extraExecutions,
      extraSteps: r.stats.extraSteps,
      ...(r.stats.states !== undefined ? { states: r.stats.states, symmetry: r.stats.symmetry ?? [] } : {}),
      ...extra,
    },
    stopped: r.stopped,
    runaway: r.runaway,
    strategy,
    ...(count ? { count } : {}),
  };
}

export function checkScenario(spec: ScenarioSpec, file: string, opts: CheckOptions = {}): CheckResult {
  const plan = checkPlan(spec, opts);
  const counted = opts.count ? countTraces(plan.program, plan.exploreOpts) : null;
  const r = counted ? counted.result : explore(plan.program, plan.exploreOpts);
  return checkResult(spec, file, plan, r, counted ? counted.counter.count : null);
}
