/**
 * The watchdog for a scenario that names a driver module (issue 7 item 2):
 * the whole check runs in a worker thread, which bumps a shared heartbeat
 * before every step; an op that stops making steps (a loop that never
 * yields) for `stallMs` is stopped — the worker terminated — and reported as
 * a runaway of kind `stall` naming the thread and op, verdict unknown. Built-in
 * drivers are dmabuf-check's own and are checked in-process as before. The
 * result is the in-process check's (the same for any `--workers`).
 */
import { type CheckResult, checkPlan, checkResult } from '../check.ts';
import type { Runaway } from '../explorer/execution.ts';
import type { ExploreResult } from '../explorer/explore.ts';
import type { ScenarioSpec } from '../scenario/spec.ts';
import { onInterrupt } from './interrupt.ts';
import type { FromSupervised, SupervisedOptions } from './worker.ts';
import { revive, startWorker } from './workers.ts';

/** Default: no step for this long is a stall. */
export const STALL_MS = 10_000;

export function superviseCheck(
  spec: ScenarioSpec,
  file: string,
  name: string,
  text: string,
  opts: SupervisedOptions,
  stallMs = STALL_MS,
): Promise<CheckResult> {
  const buf = new SharedArrayBuffer(3 * Int32Array.BYTES_PER_ELEMENT);
  const beat = new Int32Array(buf);
  const w = startWorker({ dmabufCheckSupervised: 1, file, name, text, opts, beat: buf });
  const plan = checkPlan(spec, {});
  return new Promise((resolve, reject) => {
    let done = false;
    let last = Atomics.load(beat, 0);
    let since = performance.now();
    const end = () => {
      done = true;
      clearInterval(timer);
      unsubscribe();
      void w.terminate();
    };
    /** The check as far as it got, stopped here: verdict unknown. */
    const stopped = (reason: 'stall' | 'interrupted', runaway: Runaway | null): CheckResult => {
      const r: ExploreResult = {
        verdict: 'unknown',
        counterexample: null,
        wanted: null,
        stats: {
          executions: 0,
          steps: Atomics.load(beat, 0),
          redundant: 0,
          fallbacks: 0,
          extraExecutions: 0,
          extraSteps: 0,
          complete: false,
          codes: [],
          pct: [],
        },
        stopped: reason,
        runaway,
      };
      return checkResult(spec, name, plan, r, null);
    };
    const timer = setInterval(
      () => {
        const n = Atomics.load(beat, 0);
        const now = performance.now();
        // Not armed before the first step: loading the scenario and its modules is not an op.
        if (n !== last || n === 0) {
          last = n;
          since = now;
          return;
        }
        if (done || now - since < stallMs) return;
        end();
        resolve(stopped('stall', stall(spec, beat, stallMs)));
      },
      Math.max(20, Math.min(250, stallMs / 4)),
    );
    const unsubscribe = onInterrupt(() => {
      if (done) return;
      end();
      resolve(stopped('interrupted', null));
    });
    w.on('message', (m: FromSupervised) => {
      if (done) return;
      end();
      if (m.type === 'check') resolve(m.result);
      else reject(revive(m.error));
    });
    w.on('error', (e: Error) => {
      if (done) return;
      end();
      reject(new Error(`the supervised check's worker thread failed: ${e?.message ?? String(e)}`));
    });
    w.on('exit', (code: number) => {
      if (done) return;
      end();
      reject(new Error(`the supervised check's worker thread exited unexpectedly (exit code ${code})`));
    });
  });
}

/** Which thread and op stopped making steps, from the heartbeat. */
function stall(spec: ScenarioSpec, beat: Int32Array, stallMs: number): Runaway {
  const idx = Atomics.load(beat, 1);
  const op = Atomics.load(beat, 2);
  const thread = idx === 0 ? 'setup' : idx <= spec.threads.length ? (spec.threads[idx - 1]?.name ?? '?') : 'teardown';
  const text = idx >= 1 && idx <= spec.threads.length ? (spec.threads[idx - 1]?.ops[op]?.text ?? '') : '';
  return {
    kind: 'stall',
    thread,
    op: text,
    steps: Atomics.load(beat, 0),
    message: `made no step for ${stallMs / 1000} s (an op that loops without yielding); its worker thread was stopped`,
    stack: null,
    kstack: [],
  };
}
