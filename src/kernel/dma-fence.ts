/**
 * dma_fence: a one-shot completion with callbacks and waiters ([F1]–[F8]).
 *
 * - `dma_fence_signal()` sets SIGNALED once ([F2]); later calls do nothing.
 *   It runs the callbacks registered so far, in order, inside the signalling
 *   step (they run under the fence lock in the kernel).
 * - `dma_fence_set_error()` only before signalling, with a negative errno
 *   ([F3]).
 * - `dma_fence_wait()` blocks the simulated thread until the fence signals;
 *   waiting inside a signalling critical section is `wait-in-signalling`
 *   ([L11], [I21]).
 *
 * Explorer declarations: a signal writes the fence and the machine-wide
 * "fence states" object (which resv list readers read); since callbacks may
 * touch anything, a signal with callbacks queued is a global step.
 *
 * Models: drivers/dma-buf/dma-fence.c, include/linux/dma-fence.h
 */
import { apiMisuse } from '../checkers/api.ts';
import { lockMapAcquireRead, lockMapRelease, lockMapTouch } from '../checkers/lockdep.ts';
import { EINVAL, ENOENT } from './errno.ts';
import type { Kernel } from './kernel.ts';
import { type Blocker, type KGen, KObject, kfn, type Step, type Task } from './sched.ts';

/** `struct dma_fence_ops`: the name ops are mandatory, the rest optional. */
export interface DmaFenceOps {
  readonly driverName: string;
  readonly timelineName: string;
}

/** `struct dma_fence_cb`: `func` runs in the signalling thread, atomically. */
export interface DmaFenceCb {
  func: ((t: Task, f: DmaFence) => void) | null;
  queued: boolean;
}

export class DmaFence extends KObject implements Blocker {
  readonly type = 'dma_fence';
  signaled = false;
  error = 0;
  /** Jiffies at signal time (TIMESTAMP bit set iff non-null). */
  timestamp: number | null = null;
  enableSignal = false;
  readonly cbs: DmaFenceCb[] = [];
  refcount = 1;

  constructor(
    k: Kernel,
    name: string,
    readonly ops: DmaFenceOps,
    readonly context: number,
    readonly seqno: number,
  ) {
    super(k, name);
  }

  ready(): boolean {
    return this.signaled;
  }

  override snapshot(): Record<string, unknown> {
    return {
      context: this.context,
      seqno: this.seqno,
      signaled: this.signaled,
      error: this.error,
      callbacks: this.cbs.length,
    };
  }
}

/** `dma_fence_init()`: refcount 1, unsignalled, no error ([F1]). Not yet published: no step. */
export function dma_fence_init(t: Task, name: string, ops: DmaFenceOps, context: number, seqno: number): DmaFence {
  return new DmaFence(t.k, name, ops, context, seqno);
}

/**
 * `dma_fence_begin_signalling()`: enters a signalling critical section — for
 * lockdep, takes the `dma_fence_map` pseudo-lock for read. Returns the
 * cookie for the matching end: true when already inside one ([L11]).
 */
export function dma_fence_begin_signalling(t: Task): boolean {
  const cookie = t.signalling > 0;
  t.signalling++;
  if (!cookie) lockMapAcquireRead(t, t.k.lockdepMaps.dma_fence_map);
  return cookie;
}

/** `dma_fence_end_signalling()`. */
export function dma_fence_end_signalling(t: Task, cookie: boolean): void {
  t.signalling--;
  if (!cookie) lockMapRelease(t, t.k.lockdepMaps.dma_fence_map);
}

function signalLocked(t: Task, f: DmaFence): boolean {
  if (f.signaled) return true;
  f.signaled = true;
  f.timestamp = t.k.jiffies;
  const cookie = dma_fence_begin_signalling(t);
  const cbs = f.cbs.splice(0);
  for (const cb of cbs) {
    cb.queued = false;
    cb.func?.(t, f);
  }
  dma_fence_end_signalling(t, cookie);
  return false;
}

/** A signal runs the callbacks queued when it runs: global exactly when there are some. */
function refreshSignal(s: Step): void {
  s.global = (s.arg as DmaFence).cbs.length > 0;
}

function signalStep(t: Task, f: DmaFence, fn: string): Step {
  const s = t.at(fn, 'signal', f).touch(t.k.fenceStates, 'write');
  s.arg = f;
  s.refresh = refreshSignal;
  refreshSignal(s);
  return s;
}

/** `dma_fence_signal()`: signals once; runs the queued callbacks ([F2]). */
export const dma_fence_signal = kfn('dma_fence_signal', function* (t: Task, f: DmaFence): KGen {
  yield signalStep(t, f, 'dma_fence_signal');
  signalLocked(t, f);
});

/** `dma_fence_check_and_signal()`: true when the fence was already signalled ([F2]). */
export const dma_fence_check_and_signal = kfn(
  'dma_fence_check_and_signal',
  function* (t: Task, f: DmaFence): KGen<boolean> {
    yield signalStep(t, f, 'dma_fence_check_and_signal');
    return signalLocked(t, f);
  },
);

/** `dma_fence_set_error()`: before signal, negative errno only ([F3]). */
export const dma_fence_set_error = kfn('dma_fence_set_error', function* (t: Task, f: DmaFence, err: number): KGen {
  yield t.at('dma_fence_set_error', 'write', f);
  if (f.signaled) {
    apiMisuse(t, 'dma_fence_set_error', 'error set on an already signalled fence', ['F3', 'I19']);
    return;
  }
  if (!(err < 0 && err >= -4095)) {
    apiMisuse(t, 'dma_fence_set_error', `${err} is not a negative errno`, ['F3', 'I19']);
    return;
  }
  f.error = err;
});

/** `dma_fence_get_status()`: 0 unsignalled, 1 signalled, or the error ([F3]). Caller declared a read of `f`. */
export function dma_fence_get_status(f: DmaFence): number {
  if (!f.signaled) return 0;
  return f.error < 0 ? f.error : 1;
}

/** `dma_fence_add_callback()`: 0, or -ENOENT when already signalled ([F6]). */
export const dma_fence_add_callback = kfn(
  'dma_fence_add_callback',
  function* (t: Task, f: DmaFence, cb: DmaFenceCb, func: (t: Task, f: DmaFence) => void): KGen<number> {
    yield t.at('dma_fence_add_callback', 'write', f);
    if (!func) {
      apiMisuse(t, 'dma_fence_add_callback', 'NULL callback function', ['F6']);
      return -EINVAL;
    }
    f.enableSignal = true;
    if (f.signaled) {
      cb.func = null;
      cb.queued = false;
      return -ENOENT;
    }
    cb.func = func;
    cb.queued = true;
    f.cbs.push(cb);
    return 0;
  },
);

/** `dma_fence_remove_callback()`: true when it was still queued ([F6]). */
export const dma_fence_remove_callback = kfn(
  'dma_fence_remove_callback',
  function* (t: Task, f: DmaFence, cb: DmaFenceCb): KGen<boolean> {
    yield t.at('dma_fence_remove_callback', 'write', f);
    const i = f.cbs.indexOf(cb);
    if (i < 0) return false;
    f.cbs.splice(i, 1);
    cb.queued = false;
    return true;
  },
);

/**
 * `__dma_fence_might_wait()`: a wait inside a signalling critical section is
 * `wait-in-signalling` ([L11] a, [I21]); for lockdep, every wait takes the
 * `dma_fence_map` pseudo-lock, so waiting under a lock that a signalling path
 * needs closes a cycle.
 */
export function mightWait(t: Task, what: string): void {
  if (t.signalling === 0) lockMapTouch(t, t.k.lockdepMaps.dma_fence_map);
  if (t.signalling > 0) {
    t.k.report(t, {
      code: 'wait-in-signalling',
      what,
      rules: ['L11', 'I21'],
      message: `${what} inside a dma_fence signalling critical section`,
    });
  }
}

/** `dma_fence_wait()`: sleeps until signalled; returns 0 (timeouts: not modelled yet). */
export const dma_fence_wait = kfn('dma_fence_wait', function* (t: Task, f: DmaFence, _intr: boolean): KGen<number> {
  mightWait(t, `dma_fence_wait on ${f.name}`);
  yield t.at('dma_fence_wait', 'wait', f, f);
  f.enableSignal = true;
  return 0;
});
