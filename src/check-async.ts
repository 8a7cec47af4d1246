/**
 * Checking a scenario with an exploration that runs elsewhere (the command
 * line's `--workers N`: worker threads, src/cli/workers.ts). Same options,
 * same result as {@link checkScenario}; only the exploration is handed to
 * `explore`. Browser-safe.
 */
import { type CheckOptions, type CheckResult, checkPlan, checkResult } from './check.ts';
import type { ExploreOptions, ExploreResult } from './explorer/explore.ts';
import type { Program } from './explorer/program.ts';
import type { ScenarioSpec } from './scenario/spec.ts';

/** What an exploration run elsewhere returns: the result, and the workers and work units it used (absent: not split). */
export interface SplitExploreResult {
  readonly result: ExploreResult;
  readonly split?: {
    readonly workers: number;
    readonly units: number;
    readonly fallback?: 'timed' | 'state-dependent';
  };
}

export interface AsyncCheckOptions extends CheckOptions {
  /** Explores the program with the options `checkScenario` would give `explore()`. */
  readonly explore: (program: Program, opts: ExploreOptions) => Promise<SplitExploreResult>;
}

export async function checkScenarioAsync(
  spec: ScenarioSpec,
  file: string,
  opts: AsyncCheckOptions,
): Promise<CheckResult> {
  if (opts.count) throw new Error('checkScenarioAsync: count is not supported');
  const plan = checkPlan(spec, opts);
  const { result, split } = await opts.explore(plan.program, plan.exploreOpts);
  return checkResult(
    spec,
    file,
    plan,
    result,
    null,
    split
      ? { workers: split.workers, units: split.units, ...(split.fallback ? { splitFallback: split.fallback } : {}) }
      : {},
  );
}
