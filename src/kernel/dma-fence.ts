/**
 * dma_fence: a one-shot completion with callbacks and waiters ([F1]–[F9]).
 *
 * - `dma_fence_init()` gives refcount 1, no flags, no error ([F1]). Fences on
 *   one context are ordered by seqno: `dma_fence_is_later()` /
 *   `dma_fence_later()` compare the lower 32 bits with wraparound unless
 *   `ops.use_64bit_seqno`.
 * - `dma_fence_signal()` sets SIGNALED once ([F2]); later calls do nothing.
 *   It records the timestamp ([F9]) and runs the callbacks registered so far,
 *   in order, inside the signalling step (they run under the fence lock in
 *   the kernel). 2026 behaviour: a fence whose ops have neither `release` nor
 *   `wait` has its `ops` detached (NULL) on signal.
 * - `dma_fence_set_error()` only before signalling, with a negative errno
 *   ([F3]).
 * - Enabling signalling ([F4]): the first of `dma_fence_enable_signaling()`,
 *   `dma_fence_add_callback()` or a wait sets ENABLE_SIGNAL and calls
 *   `ops.enable_signaling` once; `false` signals the fence at once.
 *   `dma_fence_is_signaled()` ([F5]) asks `ops.signaled` and signals when it
 *   says so, but does not enable.
 * - References ([F8]): `dma_fence_get` / `dma_fence_put`; the last put
 *   releases the fence (`ops.release`, else the default free). Releasing with
 *   callbacks queued and no signal WARNs, sets `-EDEADLK` and signals. A put
 *   below zero, or a use after the release, is a `refcount` finding.
 * - Waits ([F7]) run on the simulated clock (`Kernel.jiffies`, time.ts): a
 *   timed wait is a step whose `deadline` is set. `dma_fence_wait_timeout()`
 *   returns the jiffies left (≥ 1) when signalled in time, 0 on timeout,
 *   `-ERESTARTSYS` when interruptible and `Task.sigpending`. A wait inside a
 *   signalling critical section is `wait-in-signalling` ([L11], [I21]).
 *
 * Driver ops (`enable_signaling`, `signaled`, `release`, `wait`) are either
 * `true` (the op exists and behaves like the default: enable_signaling
 * returns true, signaled returns false, release frees, wait is the default
 * wait) or a function. `enable_signaling`, `signaled` and `release` run
 * atomically inside the step that calls them; `wait` is a generator and takes
 * its own steps.
 *
 * Explorer declarations: a signal writes the fence and the machine-wide
 * "fence states" object (which resv list readers read); since callbacks may
 * touch anything, a signal with callbacks queued is a global step. A step
 * that calls a driver op function is global too (the op may touch anything),
 * and so is a final put that must signal or call `ops.release`. Waits are
 * `wait` (a read) of the fence with the fence as blocker. Which of these
 * applies is recomputed from the state by each step's `refresh` hook.
 *
 * Not modelled: the fence spinlock (callbacks and ops run inside one atomic
 * step; a provider that passes its own lock to `dma_fence_init`, as sw_sync
 * does, gets lockdep's view of add/remove_callback, signal and enable taking
 * it), RCU (a released fence stays readable; `dma_fence_get_rcu` on it
 * returns null), most `_locked` variants, fence containers (chain, array,
 * unwrap), `ops.set_deadline`. `dma_fence_signal_locked` and
 * `dma_fence_is_signaled_locked` are plain functions that run inside a step
 * their caller declares, for providers that model their fence lock
 * (sw-sync.ts's timeline lock). Timestamps are in jiffies, not ktime.
 *
 * Models: drivers/dma-buf/dma-fence.c, include/linux/dma-fence.h
 */
import { apiMisuse, checkNotReleased } from '../checkers/api.ts';
import type { Origin } from '../checkers/finding.ts';
import { lockMapAcquireRead, lockMapRelease, lockMapTouch, origin } from '../checkers/lockdep.ts';
import { EDEADLK, EINVAL, ENOENT, ERESTARTSYS } from './errno.ts';
import type { Kernel } from './kernel.ts';
import { type Lock, spin_lock_in_step, spin_unlock_in_step } from './locking.ts';
import { type Blocker, type KGen, KObject, kfn, type Step, type Task } from './sched.ts';
import { timedWait } from './time.ts';

/** `MAX_SCHEDULE_TIMEOUT` (`LONG_MAX`): a wait without timeout. */
export const MAX_SCHEDULE_TIMEOUT = Number.MAX_SAFE_INTEGER;

/** A driver op that runs inside the calling step, atomically (under the fence lock in the kernel). */
export type DmaFenceOpFn<R> = (t: Task, f: DmaFence) => R;

/** `ops->wait`: a driver's own wait, with the default wait's contract ([F7]); takes its own steps. */
export type DmaFenceWaitFn = (t: Task, f: DmaFence, intr: boolean, timeout: number) => KGen<number>;

/**
 * `struct dma_fence_ops`: the name ops are mandatory, the rest optional. An
 * optional op is absent (undefined or false), present with default behaviour
 * (true), or a function.
 */
export interface DmaFenceOps {
  readonly driverName: string;
  readonly timelineName: string;
  /** Compare full seqnos in `dma_fence_is_later` (else the lower 32 bits, with wraparound) ([F1]). */
  readonly use_64bit_seqno?: boolean;
  /** Arms the hardware; false: the fence has already signalled, signal it now ([F4]). `true`: returns true. */
  readonly enable_signaling?: boolean | DmaFenceOpFn<boolean>;
  /** Peeks at the hardware: true when done ([F5]). `true`: returns false. */
  readonly signaled?: boolean | DmaFenceOpFn<boolean>;
  /** Runs at the last put instead of the default free ([F8]). `true`: frees. Keeps `ops` on signal. */
  readonly release?: boolean | DmaFenceOpFn<void>;
  /** Replaces the default wait ([F7]). `true`: the default wait. Keeps `ops` on signal. */
  readonly wait?: boolean | DmaFenceWaitFn;
}

/** `struct dma_fence_cb`: `func` runs in the signalling thread, atomically. */
export interface DmaFenceCb {
  func: ((t: Task, f: DmaFence) => void) | null;
  queued: boolean;
}

/** `Step.arg` of an interruptible wait (what {@link DmaFence.ready} checks). */
const INTERRUPTIBLE = 'interruptible';

export class DmaFence extends KObject implements Blocker {
  readonly type = 'dma_fence';
  /** `fence->ops`: becomes null on signal when the ops have neither `release` nor `wait` (2026). */
  ops: DmaFenceOps | null;
  /** DMA_FENCE_FLAG_SEQNO64_BIT, from `ops.use_64bit_seqno` at init. */
  readonly seqno64: boolean;
  /** DMA_FENCE_FLAG_SIGNALED_BIT. */
  signaled = false;
  error = 0;
  /** Jiffies at signal time (TIMESTAMP bit set iff non-null) ([F9]). */
  timestamp: number | null = null;
  /** DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT. */
  enableSignal = false;
  readonly cbs: DmaFenceCb[] = [];
  refcount = 1;
  /** Where the last put released the fence ([F8]); null while alive. */
  released: Origin | null = null;
  /** The earliest deadline hint given (`dma_fence_set_deadline`); no effect ([F9]). */
  deadlineHint: number | null = null;

  constructor(
    k: Kernel,
    name: string,
    /** The ops passed to `dma_fence_init()` (immutable: decides which steps an operation takes). */
    readonly initOps: DmaFenceOps,
    readonly context: number,
    readonly seqno: number,
    /**
     * `fence->lock` when the provider passed its own (sw_sync's timeline
     * lock): lockdep sees the calls that take it. Null: the inline lock, not
     * modelled (see the header).
     */
    readonly lock: Lock | null = null,
  ) {
    super(k, name);
    this.ops = initOps;
    this.seqno64 = initOps.use_64bit_seqno === true;
  }

  /** A waiter can go on once the fence signalled, or when interruptible with a signal pending. */
  ready(t: Task, s: Step): boolean {
    return this.signaled || (s.arg === INTERRUPTIBLE && t.sigpending);
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

/**
 * `dma_fence_init()`: refcount 1, unsignalled, no error ([F1]). Not yet
 * published: no step. `lock`: the provider's lock for the fence, if it models
 * one (lockdep then sees add/remove_callback, signal and enable take it).
 */
export function dma_fence_init(
  t: Task,
  name: string,
  ops: DmaFenceOps,
  context: number,
  seqno: number,
  lock: Lock | null = null,
): DmaFence {
  return new DmaFence(t.k, name, ops, context, seqno, lock);
}

/**
 * `spin_lock_irqsave(fence->lock)` and its unlock around a call's atomic
 * step, for lockdep only, when the provider modelled the lock: taking it
 * while holding it is the recursive `deadlock`; the locks held are recorded
 * as taken before it.
 */
function fenceLockdep(t: Task, f: DmaFence): void {
  const l = f.lock;
  if (l !== null) spin_unlock_in_step(t, l, spin_lock_in_step(t, l, 'spin_lock_irqsave'), 'spin_unlock_irqrestore');
}

/** `dma_fence_context_alloc(num)`: the first of `num` fresh context ids ([F1]). */
export function dma_fence_context_alloc(t: Task, num: number): number {
  const first = t.k.nextFenceContext;
  t.k.nextFenceContext += num;
  return first;
}

/** `dma_fence_driver_name()`: "detached-driver" once signalled. Caller declared a read of `f`. */
export function dma_fence_driver_name(f: DmaFence): string {
  return f.signaled || !f.ops ? 'detached-driver' : f.ops.driverName;
}

/** `dma_fence_timeline_name()`: "signaled-timeline" once signalled. Caller declared a read of `f`. */
export function dma_fence_timeline_name(f: DmaFence): string {
  return f.signaled || !f.ops ? 'signaled-timeline' : f.ops.timelineName;
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

// ---------------------------------------------------------------------------
// Step declarations

type OpName = 'enable_signaling' | 'signaled' | 'release';

/** Whether `f`'s current ops have `op` as a function (driver code that may touch anything). */
function opFn(f: DmaFence, op: OpName): boolean {
  return typeof f.ops?.[op] === 'function';
}

/** A signal runs the callbacks queued when it runs: global exactly when there are some. */
function refreshSignal(s: Step): void {
  const f = s.arg as DmaFence;
  s.global = f.cbs.length > 0 && !f.signaled;
}

/** Enabling calls `ops.enable_signaling` once, unsignalled: global then (it may touch anything, or signal). */
function refreshEnable(s: Step): void {
  const f = s.arg as DmaFence;
  s.global = !f.enableSignal && !f.signaled && opFn(f, 'enable_signaling');
}

/** `dma_fence_is_signaled` calls `ops.signaled` while unsignalled: global then. */
function refreshIsSignaled(s: Step): void {
  const f = s.arg as DmaFence;
  s.global = !f.signaled && opFn(f, 'signaled');
}

/** The last put releases: global when it must signal (callbacks queued) or call `ops.release`. */
function refreshPut(s: Step): void {
  const f = s.arg as DmaFence;
  s.global = f.refcount === 1 && ((f.cbs.length > 0 && !f.signaled) || opFn(f, 'release'));
}

/** A step on several fences (wait_any): global when one of them would call a driver op. */
function refreshEnableAll(s: Step): void {
  const fs = s.arg as readonly DmaFence[];
  s.global = fs.some((f) => !f.enableSignal && !f.signaled && opFn(f, 'enable_signaling'));
}

function refreshIsSignaledAll(s: Step): void {
  const fs = s.arg as readonly DmaFence[];
  s.global = fs.some((f) => !f.signaled && opFn(f, 'signaled'));
}

function fenceStep(
  t: Task,
  fn: string,
  kind: 'read' | 'write' | 'signal',
  f: DmaFence,
  refresh: (s: Step) => void,
): Step {
  const s = t.at(fn, kind, f);
  if (kind === 'signal') s.touch(t.k.fenceStates, 'write');
  s.arg = f;
  s.refresh = refresh;
  refresh(s);
  return s;
}

function signalStep(t: Task, f: DmaFence, fn: string): Step {
  return fenceStep(t, fn, 'signal', f, refreshSignal);
}

/** Declares a step on every fence of `fences` (at most 16 declared; more make it global). */
function fencesStep(t: Task, fn: string, kind: 'read' | 'write' | 'wait', fences: readonly DmaFence[]): Step {
  const s = t.at(fn, kind, fences[0] as DmaFence);
  for (let i = 1; i < fences.length; i++) s.touch(fences[i] as DmaFence, kind);
  return s;
}

// ---------------------------------------------------------------------------
// Lifetime checks ([F8], [I7])

/** Whether `f` is still alive; a `refcount` finding when it was released. Call after a step on `f`. */
function checkAlive(t: Task, f: DmaFence, call: string): boolean {
  return checkNotReleased(t, f, f.released, call, ['I7', 'F8']);
}

// ---------------------------------------------------------------------------
// Signalling ([F2], [F4], [F5])

/**
 * `dma_fence_signal_timestamp_locked()`: true when it was already signalled.
 * Runs inside a declared step. `annotate`: the caller is `dma_fence_signal*()`,
 * which brackets itself as a signalling critical section ([L11]); the
 * `_locked` callers (enable_signaling returning false, release, the global
 * stub's init) do not.
 */
function signalLocked(t: Task, f: DmaFence, timestamp: number, annotate = true): boolean {
  if (f.signaled) return true;
  f.signaled = true;
  f.timestamp = timestamp;
  // "detach fence ops on signal": the fence no longer needs its issuer.
  const ops = f.ops;
  if (ops && !ops.release && !ops.wait) f.ops = null;
  const cookie = annotate ? dma_fence_begin_signalling(t) : false;
  const cbs = f.cbs.splice(0);
  for (const cb of cbs) {
    cb.queued = false;
    cb.func?.(t, f);
  }
  if (annotate) dma_fence_end_signalling(t, cookie);
  return false;
}

/**
 * `__dma_fence_enable_signaling()` ([F4]): sets ENABLE_SIGNAL; the first time,
 * on an unsignalled fence, calls `ops.enable_signaling`, and signals when it
 * returns false. True when the fence is (still) unsignalled.
 */
function enableLocked(t: Task, f: DmaFence): boolean {
  const was = f.enableSignal;
  f.enableSignal = true;
  if (f.signaled) return false;
  if (!was) {
    const op = f.ops?.enable_signaling;
    if (typeof op === 'function' && !op(t, f)) {
      signalLocked(t, f, t.k.jiffies, false);
      return false;
    }
  }
  return true;
}

/** `dma_fence_is_signaled()` under the step: the flag, else `ops.signaled` (signalling if true) ([F5]). */
function isSignaledLocked(t: Task, f: DmaFence): boolean {
  if (f.signaled) return true;
  const op = f.ops?.signaled;
  if (typeof op === 'function' && op(t, f)) {
    signalLocked(t, f, t.k.jiffies);
    return true;
  }
  return false;
}

/**
 * `dma_fence_signal_locked()`: signals once, runs the queued callbacks ([F2]),
 * inside a step the caller declared (a step that holds the fence's lock: the
 * caller makes it global when callbacks are queued, as a signal step is).
 * True when the fence was already signalled (the `check_and_signal_locked`
 * value). For fence providers with their own lock, e.g. sw_sync's timeline.
 */
export function dma_fence_signal_locked(t: Task, f: DmaFence): boolean {
  if (!checkAlive(t, f, 'dma_fence_signal_locked')) return f.signaled;
  // Not a signalling-section annotation of its own: only dma_fence_signal() brackets itself.
  return signalLocked(t, f, t.k.jiffies, false);
}

/**
 * `dma_fence_is_signaled_locked()`: the SIGNALED flag, else `ops.signaled`
 * (signalling the fence when it says so) ([F5]), inside a step the caller
 * declared (global when `ops.signaled` is a function).
 */
export function dma_fence_is_signaled_locked(t: Task, f: DmaFence): boolean {
  return isSignaledLocked(t, f);
}

/** `dma_fence_signal()`: signals once; runs the queued callbacks ([F2]). */
export const dma_fence_signal = kfn('dma_fence_signal', function* (t: Task, f: DmaFence): KGen {
  yield signalStep(t, f, 'dma_fence_signal');
  if (!checkAlive(t, f, 'dma_fence_signal')) return;
  fenceLockdep(t, f);
  signalLocked(t, f, t.k.jiffies);
});

/** `dma_fence_signal_timestamp()`: signal with a caller-supplied timestamp (jiffies) ([F2], [F9]). */
export const dma_fence_signal_timestamp = kfn(
  'dma_fence_signal_timestamp',
  function* (t: Task, f: DmaFence, timestamp: number): KGen {
    yield signalStep(t, f, 'dma_fence_signal_timestamp');
    if (!checkAlive(t, f, 'dma_fence_signal_timestamp')) return;
    fenceLockdep(t, f);
    signalLocked(t, f, timestamp);
  },
);

/** `dma_fence_check_and_signal()`: true when the fence was already signalled ([F2]). */
export const dma_fence_check_and_signal = kfn(
  'dma_fence_check_and_signal',
  function* (t: Task, f: DmaFence): KGen<boolean> {
    yield signalStep(t, f, 'dma_fence_check_and_signal');
    if (!checkAlive(t, f, 'dma_fence_check_and_signal')) return f.signaled;
    fenceLockdep(t, f);
    return signalLocked(t, f, t.k.jiffies);
  },
);

/** `dma_fence_enable_signaling()` (formerly `dma_fence_enable_sw_signaling()`) ([F4]). */
export const dma_fence_enable_signaling = kfn('dma_fence_enable_signaling', function* (t: Task, f: DmaFence): KGen {
  yield fenceStep(t, 'dma_fence_enable_signaling', 'write', f, refreshEnable);
  if (!checkAlive(t, f, 'dma_fence_enable_signaling')) return;
  fenceLockdep(t, f);
  enableLocked(t, f);
});

/** The pre-2026 name of {@link dma_fence_enable_signaling}. */
export const dma_fence_enable_sw_signaling = dma_fence_enable_signaling;

/**
 * `dma_fence_is_signaled()`: true when SIGNALED is set, or when `ops.signaled`
 * says the hardware is done (the fence is then signalled). Does not enable
 * signalling ([F5]).
 */
export const dma_fence_is_signaled = kfn('dma_fence_is_signaled', function* (t: Task, f: DmaFence): KGen<boolean> {
  yield fenceStep(t, 'dma_fence_is_signaled', 'read', f, refreshIsSignaled);
  checkAlive(t, f, 'dma_fence_is_signaled');
  return isSignaledLocked(t, f);
});

/** `dma_fence_test_signaled_flag()`: only the SIGNALED bit ([F5]). Caller declared a read of `f`. */
export function dma_fence_test_signaled_flag(f: DmaFence): boolean {
  return f.signaled;
}

/** `dma_fence_set_error()`: before signal, negative errno only ([F3]). */
export const dma_fence_set_error = kfn('dma_fence_set_error', function* (t: Task, f: DmaFence, err: number): KGen {
  yield t.at('dma_fence_set_error', 'write', f);
  checkAlive(t, f, 'dma_fence_set_error');
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

/**
 * `dma_fence_timestamp()`: the signal time ([F9]). WARNs and returns the
 * current time on an unsignalled fence. Caller declared a read of `f`.
 */
export function dma_fence_timestamp(t: Task, f: DmaFence): number {
  if (!f.signaled || f.timestamp === null) {
    apiMisuse(t, 'dma_fence_timestamp', `${f.name} is not signalled`, ['F9']);
    return t.k.jiffies;
  }
  return f.timestamp;
}

/** `dma_fence_set_deadline()`: a hint ([F9]); recorded, no effect. Asks `ops.signaled` like is_signaled. */
export const dma_fence_set_deadline = kfn(
  'dma_fence_set_deadline',
  function* (t: Task, f: DmaFence, deadline: number): KGen {
    const s = fenceStep(t, 'dma_fence_set_deadline', 'write', f, refreshIsSignaled);
    yield s;
    checkAlive(t, f, 'dma_fence_set_deadline');
    if (isSignaledLocked(t, f)) return;
    if (f.deadlineHint === null || deadline < f.deadlineHint) f.deadlineHint = deadline;
  },
);

/** `__dma_fence_is_later()`: 64-bit compare or lower 32 bits with wraparound ([F1]). */
function seqnoLater(f: DmaFence, a: number, b: number): boolean {
  if (f.seqno64) return a > b;
  return (((a >>> 0) - (b >>> 0)) | 0) > 0;
}

/** `dma_fence_is_later()`: same context required (WARN, false otherwise) ([F1]). Context and seqno are immutable. */
export function dma_fence_is_later(t: Task, f1: DmaFence, f2: DmaFence): boolean {
  if (f1.context !== f2.context) {
    apiMisuse(t, 'dma_fence_is_later', `${f1.name} and ${f2.name} are on different contexts`, ['F1']);
    return false;
  }
  return seqnoLater(f1, f1.seqno, f2.seqno);
}

/** `dma_fence_later()`: the later fence, or null when it has signalled (so both have) ([F1]). */
export const dma_fence_later = kfn(
  'dma_fence_later',
  function* (t: Task, f1: DmaFence, f2: DmaFence): KGen<DmaFence | null> {
    if (f1.context !== f2.context) {
      apiMisuse(t, 'dma_fence_later', `${f1.name} and ${f2.name} are on different contexts`, ['F1']);
      return null;
    }
    const later = seqnoLater(f1, f1.seqno, f2.seqno) ? f1 : f2;
    return (yield* dma_fence_is_signaled(t, later)) ? null : later;
  },
);

// ---------------------------------------------------------------------------
// Callbacks ([F6])

/** `dma_fence_add_callback()`: 0, or -ENOENT when already signalled (also when enabling signals it) ([F6]). */
export const dma_fence_add_callback = kfn(
  'dma_fence_add_callback',
  function* (t: Task, f: DmaFence, cb: DmaFenceCb, func: (t: Task, f: DmaFence) => void): KGen<number> {
    yield fenceStep(t, 'dma_fence_add_callback', 'write', f, refreshEnable);
    if (!func) {
      apiMisuse(t, 'dma_fence_add_callback', 'NULL callback function', ['F6']);
      return -EINVAL;
    }
    checkAlive(t, f, 'dma_fence_add_callback');
    fenceLockdep(t, f);
    if (f.signaled || !enableLocked(t, f)) {
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
    checkAlive(t, f, 'dma_fence_remove_callback');
    fenceLockdep(t, f);
    const i = f.cbs.indexOf(cb);
    if (i < 0) return false;
    f.cbs.splice(i, 1);
    cb.queued = false;
    return true;
  },
);

// ---------------------------------------------------------------------------
// References ([F8])

/** `dma_fence_get()`: takes a reference; on a released fence, a `refcount` finding. */
export const dma_fence_get = kfn('dma_fence_get', function* (t: Task, f: DmaFence): KGen<DmaFence> {
  yield t.at('dma_fence_get', 'write', f);
  if (f.refcount <= 0) {
    checkAlive(t, f, 'dma_fence_get');
    return f;
  }
  f.refcount++;
  return f;
});

/** `dma_fence_get_rcu()`: a reference, or null when the count already dropped to 0 ([F8]). */
export const dma_fence_get_rcu = kfn('dma_fence_get_rcu', function* (t: Task, f: DmaFence): KGen<DmaFence | null> {
  yield t.at('dma_fence_get_rcu', 'write', f);
  if (f.refcount <= 0) return null;
  f.refcount++;
  return f;
});

/**
 * `dma_fence_put()`: drops a reference; the last one releases the fence
 * ([F8]). Below zero: a `refcount` finding (underflow).
 */
export const dma_fence_put = kfn('dma_fence_put', function* (t: Task, f: DmaFence): KGen {
  yield fenceStep(t, 'dma_fence_put', 'write', f, refreshPut);
  if (f.refcount <= 0) {
    t.k.report(t, {
      code: 'refcount',
      what: 'underflow',
      object: f.name,
      released: f.released,
      rules: ['I7', 'F8'],
      message: `dma_fence_put on ${f.name} with no reference left`,
    });
    return;
  }
  if (--f.refcount === 0) yield* dma_fence_release(t, f);
});

/**
 * A put inside a step that already declared a write of `f` (a resv list
 * dropping its entry, a cursor dropping its reference): the last one releases.
 */
export function dma_fence_put_in_step(t: Task, f: DmaFence): void {
  if (f.refcount <= 0) return;
  if (--f.refcount === 0) for (const _ of dma_fence_release(t, f));
}

/**
 * `dma_fence_release()`, from the last put (inside its step): a fence with
 * callbacks queued and no signal WARNs, gets `-EDEADLK` and is signalled, so
 * chains do not dangle ([F6]); then `ops.release` or the default free.
 */
const dma_fence_release = kfn('dma_fence_release', function* (t: Task, f: DmaFence): KGen {
  if (f.cbs.length > 0 && !f.signaled) {
    const ops = f.ops;
    apiMisuse(
      t,
      'dma_fence_release',
      `Fence ${ops?.driverName}:${ops?.timelineName}:${f.context}:${f.seqno} released with pending signals!`,
      ['F6', 'I20'],
    );
    f.error = -EDEADLK;
    signalLocked(t, f, t.k.jiffies, false);
  }
  f.released = origin(t);
  const release = f.ops?.release;
  if (typeof release === 'function') release(t, f);
});

/** An `__rcu` fence pointer (`struct dma_fence __rcu *`), as `dma_fence_get_rcu_safe()` reads it. */
export class DmaFenceRcuPointer extends KObject {
  readonly type = 'dma_fence_ptr';
  fence: DmaFence | null = null;

  override snapshot(): Record<string, unknown> {
    return { fence: this.fence?.name ?? null };
  }
}

/** Blocks while the pointer holds a fence whose count dropped to 0 (its owner is about to replace it). */
const RCU_SAFE: Blocker = {
  ready: (_t, s) => {
    const f = (s.obj as DmaFenceRcuPointer).fence;
    return f === null || f.refcount > 0;
  },
};

/** Declares the read of the pointer and the write of the fence it holds when the step runs. */
function refreshRcuSafe(s: Step): void {
  s.nacc = 1;
  const f = (s.obj as DmaFenceRcuPointer).fence;
  if (f !== null) s.touch(f, 'write');
}

/**
 * `dma_fence_get_rcu_safe()`: a reference to the fence `p` points to, or null
 * when it points to none ([F8]). In the kernel it retries while the fence read
 * has a zero count; in the model the one atomic step waits until the pointer
 * changes.
 */
export const dma_fence_get_rcu_safe = kfn(
  'dma_fence_get_rcu_safe',
  function* (t: Task, p: DmaFenceRcuPointer): KGen<DmaFence | null> {
    const s = t.at('dma_fence_get_rcu_safe', 'read', p, RCU_SAFE);
    s.refresh = refreshRcuSafe;
    refreshRcuSafe(s);
    yield s;
    const f = p.fence;
    if (f === null) return null;
    f.refcount++;
    return f;
  },
);

// ---------------------------------------------------------------------------
// Stub fences ([F8])

const STUB_OPS: DmaFenceOps = { driverName: 'stub', timelineName: 'stub' };
const stubs = new WeakMap<Kernel, DmaFence>();

/** A new fence, enabled and signalled at `timestamp` (not yet published: no step). */
function signalledStub(t: Task, name: string, timestamp: number, annotate: boolean): DmaFence {
  const f = new DmaFence(t.k, name, STUB_OPS, 0, 0);
  f.enableSignal = true;
  signalLocked(t, f, timestamp, annotate);
  return f;
}

/**
 * `dma_fence_get_stub()`: a reference to the machine-wide, already signalled
 * stub fence ([F8]). The kernel initialises it on first use under a spinlock;
 * the model creates it then as a static object.
 */
export const dma_fence_get_stub = kfn('dma_fence_get_stub', function* (t: Task): KGen<DmaFence> {
  let stub = stubs.get(t.k);
  if (!stub) {
    stub = signalledStub(t, 'dma_fence_stub', t.k.jiffies, false);
    stubs.set(t.k, stub);
  }
  yield t.at('dma_fence_get_stub', 'write', stub);
  stub.refcount++;
  return stub;
});

/** `dma_fence_allocate_private_stub()`: a new fence, signalled at `timestamp` (jiffies) ([F8]). */
export function dma_fence_allocate_private_stub(t: Task, timestamp: number): DmaFence {
  return signalledStub(t, `${t.name}:stub#${++t.created}`, timestamp, true);
}

// ---------------------------------------------------------------------------
// Waits ([F7], [L11])

/**
 * `__dma_fence_might_wait()`: a wait inside a signalling critical section is
 * `wait-in-signalling` ([L11] a, [I21]); for lockdep, every wait takes the
 * `dma_fence_map` pseudo-lock, so waiting under a lock that a signalling path
 * needs closes a cycle.
 */
export function mightWait(t: Task, what: string): void {
  if (t.signalling === 0) lockMapTouch(t, t.k.lockdepMaps.dma_fence_map, '__dma_fence_might_wait');
  if (t.signalling > 0) {
    t.k.report(t, {
      code: 'wait-in-signalling',
      what,
      rules: ['L11', 'I21'],
      message: `${what} inside a dma_fence signalling critical section`,
    });
  }
}

/** Absolute deadline of a wait of `timeout` jiffies starting now (none for MAX_SCHEDULE_TIMEOUT). */
function deadlineOf(t: Task, timeout: number): number {
  return timeout >= MAX_SCHEDULE_TIMEOUT ? Number.POSITIVE_INFINITY : t.k.jiffies + timeout;
}

/** What `schedule_timeout()` leaves of a wait ending now: ≥ 1 before the deadline, 0 at or after it. */
function remaining(t: Task, timeout: number, deadline: number): number {
  if (deadline === Number.POSITIVE_INFINITY) return timeout;
  return Math.max(0, deadline - t.k.jiffies);
}

/**
 * `dma_fence_default_wait()`, signalling already enabled: one step, runnable
 * when the fence signals, when interruptible with a signal pending, or at the
 * deadline. Timeout 0 never blocks.
 */
function* defaultWait(t: Task, f: DmaFence, intr: boolean, timeout: number, fn: string, enable: boolean): KGen<number> {
  const s = t.at(fn, 'wait', f, timeout === 0 ? null : f);
  s.arg = intr ? INTERRUPTIBLE : null;
  const deadline = deadlineOf(t, timeout);
  yield timedWait(s, deadline);
  // Without an enable_signaling op, enabling only sets the flag: no one else reads it.
  if (enable) f.enableSignal = true;
  if (f.signaled) {
    if (timeout === 0) return 1;
    // Signalled at or after the deadline: schedule_timeout already returned 0.
    return remaining(t, timeout, deadline);
  }
  if (intr && t.sigpending) return -ERESTARTSYS;
  return 0;
}

/** Whether a wait on `f` takes a separate enabling step: the driver's enable_signaling or wait op runs. */
function enableIsStep(f: DmaFence): boolean {
  return typeof f.initOps.enable_signaling === 'function' || typeof f.initOps.wait === 'function';
}

/**
 * `dma_fence_wait_timeout()` under the kernel name `fn` ([F7]): enables
 * signalling, then the driver's wait or the default wait.
 */
function* waitTimeout(t: Task, f: DmaFence, intr: boolean, timeout: number, fn: string): KGen<number> {
  if (timeout < 0) {
    apiMisuse(t, fn, `negative timeout ${timeout}`, ['F7']);
    return -EINVAL;
  }
  mightWait(t, `${fn} on ${f.name}`);
  if (!enableIsStep(f)) {
    const r = yield* defaultWait(t, f, intr, timeout, fn, true);
    checkAlive(t, f, fn);
    return r;
  }
  yield fenceStep(t, 'dma_fence_enable_signaling', 'write', f, refreshEnable);
  checkAlive(t, f, fn);
  enableLocked(t, f);
  const op = f.ops?.wait;
  if (typeof op === 'function') return yield* op(t, f, intr, timeout);
  return yield* defaultWait(t, f, intr, timeout, fn, false);
}

/**
 * `dma_fence_wait_timeout()`: the jiffies left (≥ 1; 1 for timeout 0) once
 * signalled, 0 on timeout, `-ERESTARTSYS` when `intr` and a signal is
 * pending, `-EINVAL` (WARN) for a negative timeout ([F7]).
 */
export const dma_fence_wait_timeout = kfn(
  'dma_fence_wait_timeout',
  function* (t: Task, f: DmaFence, intr: boolean, timeout: number): KGen<number> {
    return yield* waitTimeout(t, f, intr, timeout, 'dma_fence_wait_timeout');
  },
);

/** `dma_fence_wait()`: `wait_timeout(MAX_SCHEDULE_TIMEOUT)` mapped to 0 or a negative error ([F7]). */
export const dma_fence_wait = kfn('dma_fence_wait', function* (t: Task, f: DmaFence, intr: boolean): KGen<number> {
  const r = yield* waitTimeout(t, f, intr, MAX_SCHEDULE_TIMEOUT, 'dma_fence_wait');
  return Math.min(r, 0);
});

/** The blocker of `dma_fence_wait_any_timeout`: any fence signalled, or interrupted. */
class AnySignalled implements Blocker {
  constructor(
    readonly fences: readonly DmaFence[],
    readonly intr: boolean,
  ) {}

  ready(t: Task): boolean {
    return (this.intr && t.sigpending) || this.fences.some((f) => f.signaled);
  }
}

/** `dma_fence_test_signaled_any()`: index of the first signalled fence, or -1. */
function firstSignalled(fences: readonly DmaFence[]): number {
  return fences.findIndex((f) => f.signaled);
}

/**
 * `dma_fence_wait_any_timeout()` ([F7]): `ret` is `-EINVAL` (WARN) for no
 * fences or a negative timeout; with timeout 0, 1 and the index of a
 * signalled fence, else 0; otherwise the jiffies left and the index of the
 * fence that signalled, 0 on timeout, or `-ERESTARTSYS`. `idx` is -1 when
 * not set. The caller holds references to all the fences.
 */
export const dma_fence_wait_any_timeout = kfn(
  'dma_fence_wait_any_timeout',
  function* (t: Task, fences: readonly DmaFence[], intr: boolean, timeout: number): KGen<{ ret: number; idx: number }> {
    const fn = 'dma_fence_wait_any_timeout';
    if (fences.length === 0 || timeout < 0) {
      apiMisuse(t, fn, fences.length === 0 ? 'no fences' : `negative timeout ${timeout}`, ['F7']);
      return { ret: -EINVAL, idx: -1 };
    }
    // The kernel does not annotate this wait (no __dma_fence_might_wait); the
    // model does, since [L11] a / [I21] forbid every dma_fence_wait* in a
    // signalling critical section.
    mightWait(t, `${fn} on ${fences.map((f) => f.name).join(', ')}`);
    if (timeout === 0) {
      const s = fencesStep(t, fn, 'read', fences);
      s.arg = fences;
      s.refresh = refreshIsSignaledAll;
      refreshIsSignaledAll(s);
      yield s;
      for (let i = 0; i < fences.length; i++) if (isSignaledLocked(t, fences[i] as DmaFence)) return { ret: 1, idx: i };
      return { ret: 0, idx: -1 };
    }
    // Add a wake-up callback to each fence (enabling signalling), stopping at a signalled one.
    const s = fencesStep(t, 'dma_fence_add_callback', 'write', fences);
    s.arg = fences;
    s.refresh = refreshEnableAll;
    refreshEnableAll(s);
    yield s;
    for (let i = 0; i < fences.length; i++) {
      const f = fences[i] as DmaFence;
      checkAlive(t, f, fn);
      if (f.signaled || !enableLocked(t, f)) return { ret: timeout, idx: i };
    }
    const w = fencesStep(t, fn, 'wait', fences);
    w.blocker = new AnySignalled(fences, intr);
    const deadline = deadlineOf(t, timeout);
    yield timedWait(w, deadline);
    const left = remaining(t, timeout, deadline);
    if (left === 0) return { ret: 0, idx: -1 };
    if (intr && t.sigpending) return { ret: -ERESTARTSYS, idx: -1 };
    return { ret: left, idx: firstSignalled(fences) };
  },
);
