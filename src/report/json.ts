/**
 * The `--json` document (contract: docs/scenario-format.md, "--json"). The
 * contract's fields come first; extra fields only add to it.
 */
import type { CheckResult } from '../check.ts';

export const JSON_SCHEMA_VERSION = 1;

export function resultJson(r: CheckResult) {
  return {
    file: r.file,
    name: r.name,
    verdict: r.verdict,
    expected: r.expected ? { ...r.expected } : null,
    met: r.met,
    findings: r.findings.map((f) => ({
      code: f.code,
      message: f.message,
      thread: f.thread,
      token: f.token,
      step: f.step,
      fn: f.fn,
      rules: f.rules,
      ...(f.code === 'lock-order' && f.requires.length ? { requires: f.requires } : {}),
    })),
    stats: {
      executions: r.stats.executions,
      steps: r.stats.steps,
      complete: r.stats.complete,
      ms: r.stats.ms,
      redundant: r.stats.redundant,
      extra_executions: r.stats.extraExecutions,
      extra_steps: r.stats.extraSteps,
      strategy: r.strategy,
      stopped: r.stopped,
      ...(r.stats.states !== undefined ? { states: r.stats.states, symmetry: r.stats.symmetry ?? [] } : {}),
      ...(r.stats.workers !== undefined
        ? {
            workers: r.stats.workers,
            units: r.stats.units ?? 0,
            ...(r.stats.splitFallback ? { split_fallback: r.stats.splitFallback } : {}),
          }
        : {}),
    },
    ...(r.runaway
      ? {
          runaway: {
            kind: r.runaway.kind,
            thread: r.runaway.thread,
            op: r.runaway.op,
            steps: r.runaway.steps,
            message: r.runaway.message,
            stack: r.runaway.stack,
            kernel_stack: r.runaway.kstack,
          },
        }
      : {}),
    ...(r.count
      ? {
          count: {
            executions: r.count.executions,
            traces: r.count.traces,
            redundant: r.count.redundant,
            sleep_blocked: r.count.sleepBlocked,
            equivalent: r.count.equivalent,
            complete: r.stats.complete,
          },
        }
      : {}),
    counterexample: r.counterexample
      ? {
          token: r.counterexample.token,
          steps: r.counterexample.schedule.length,
          context_switches: r.counterexample.switches,
          preemptions: r.counterexample.preemptions,
        }
      : null,
  };
}

/** An entry for a file that could not be checked (bad input). */
export interface InputErrorJson {
  readonly file: string;
  readonly error: string;
  readonly messages: readonly string[];
}

export function documentJson(results: readonly CheckResult[], errors: readonly InputErrorJson[]) {
  return {
    version: JSON_SCHEMA_VERSION,
    results: results.map(resultJson),
    ...(errors.length ? { errors } : {}),
  };
}
