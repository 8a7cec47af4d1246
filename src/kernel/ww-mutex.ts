/**
 * Wound/wait mutexes with acquire contexts, as dma_resv uses them: the
 * wait-die algorithm of `reservation_ww_class` ([L6], [L7]).
 *
 * - `ww_mutex_lock(lock, NULL)` is a plain sleeping mutex.
 * - With a context: `0` when acquired, `-EALREADY` when this context already
 *   holds the lock, `-EDEADLK` when the requester must back off: the holder is
 *   older (lower stamp) and the requester already holds a lock in this context.
 *   An older requester, or one holding nothing, waits.
 * - After `-EDEADLK` the caller drops every lock of the context and calls
 *   `ww_mutex_lock_slow` on the contended lock, which waits and cannot fail.
 *
 * Models: include/linux/ww_mutex.h, kernel/locking/ww_mutex.h,
 * Documentation/locking/ww-mutex-design.rst
 */
import { apiMisuse } from '../checkers/api.ts';
import { checkRecursion, lockAcquired } from '../checkers/lockdep.ts';
import { EALREADY, EDEADLK, EINTR } from './errno.ts';
import type { Kernel } from './kernel.ts';
import { EXCLUSIVE, Lock, lock_release } from './locking.ts';
import type { Blocker, KGen, Step, Task } from './sched.ts';

/** `struct ww_acquire_ctx`. */
export class WwAcquireCtx {
  /** Locks currently held through this context. */
  acquired = 0;
  /** The lock that returned -EDEADLK, which lock_slow must target. */
  contended: WwMutex | null = null;
  done = false;

  constructor(
    readonly task: Task,
    /** Lower is older, and older wins ([L7] step 1). */
    readonly stamp: number,
  ) {}
}

/**
 * `ww_acquire_init()`: a fresh context with the next stamp of the class — an
 * atomic increment of the class's counter, so a step: which of two contexts
 * is older depends on the order they were initialised in.
 */
export function* ww_acquire_init(t: Task): KGen<WwAcquireCtx> {
  yield t.at('ww_acquire_init', 'write', t.k.wwClass);
  return new WwAcquireCtx(t, t.k.nextWwStamp++);
}

/** `ww_acquire_fini()`: all locks must have been released. */
export function ww_acquire_fini(t: Task, ctx: WwAcquireCtx): void {
  if (ctx.acquired !== 0) {
    apiMisuse(t, 'ww_acquire_fini', `acquire context still holds ${ctx.acquired} lock(s)`, ['L7']);
  }
}

export class WwMutex extends Lock {
  /** The context of the holder, or null when held without one. */
  ctx: WwAcquireCtx | null = null;

  constructor(k: Kernel, name: string, cls: string) {
    super(k, name, cls, 'ww_mutex');
  }

  override ready(_t: Task, step: Step): boolean {
    if (this.owner === null) return true;
    const ctx = step.arg as WwAcquireCtx | null;
    if (ctx === null) return false;
    if (this.ctx === ctx) return true; // -EALREADY
    return mustDie(ctx, this.ctx);
  }

  override snapshot(): Record<string, unknown> {
    return { ...super.snapshot(), ctx: this.ctx ? `stamp ${this.ctx.stamp}` : null };
  }
}

/** Wait-die: a younger context that already holds locks dies against an older holder. */
function mustDie(req: WwAcquireCtx, holder: WwAcquireCtx | null): boolean {
  return holder !== null && req.acquired > 0 && req.stamp > holder.stamp;
}

/** `ww_mutex_lock()`: 0, -EALREADY or -EDEADLK (only with a context). */
export function* ww_mutex_lock(
  t: Task,
  lock: WwMutex,
  ctx: WwAcquireCtx | null,
  fn = 'ww_mutex_lock',
  intr = false,
): KGen<number> {
  if (!(ctx && lock.ctx === ctx)) checkRecursion(t, lock, fn);
  const s = t.at(fn, 'lock', lock, intr ? INTERRUPTIBLE : lock, EXCLUSIVE);
  s.arg = ctx;
  yield s;
  // ww_mutex_lock_interruptible(): a pending signal ends the wait with -EINTR ([L6]).
  if (intr && !lock.ready(t, s) && t.sigpending) return -EINTR;
  if (lock.owner === null) {
    lock.take(t, EXCLUSIVE);
    lock.ctx = ctx;
    if (ctx) {
      ctx.acquired++;
      if (ctx.contended === lock) ctx.contended = null;
    }
    lockAcquired(t, lock, EXCLUSIVE, ctx);
    return 0;
  }
  if (ctx && lock.ctx === ctx) return -EALREADY;
  if (ctx) ctx.contended = lock;
  return -EDEADLK;
}

/** The blocker of an interruptible lock: the lock, or a pending signal. */
const INTERRUPTIBLE: Blocker = {
  ready: (t: Task, s: Step) => (s.obj as WwMutex).ready(t, s) || t.sigpending,
};

/** `ww_mutex_trylock()`: true when taken. */
export function* ww_mutex_trylock(t: Task, lock: WwMutex, fn = 'ww_mutex_trylock'): KGen<boolean> {
  yield t.at(fn, 'lock', lock);
  if (lock.owner !== null) return false;
  lock.take(t, EXCLUSIVE);
  lock.ctx = null;
  lockAcquired(t, lock, EXCLUSIVE, null, fn, true);
  return true;
}

/**
 * `ww_mutex_lock_slow()`: after -EDEADLK, with every other lock of the
 * context dropped, sleep until the contended lock is ours ([L7] step 3).
 */
export function* ww_mutex_lock_slow(t: Task, lock: WwMutex, ctx: WwAcquireCtx, fn = 'ww_mutex_lock_slow'): KGen {
  if (ctx.acquired !== 0) {
    apiMisuse(t, fn, `called with ${ctx.acquired} lock(s) of the acquire context still held`, ['L7', 'I16']);
  }
  if (ctx.contended !== lock) {
    apiMisuse(t, fn, `called on ${lock.name}, but the contended lock is ${ctx.contended?.name ?? 'none'}`, [
      'L7',
      'I16',
    ]);
  }
  checkRecursion(t, lock, fn);
  // The slow path waits even against an older holder: it cannot die.
  const s = t.at(fn, 'lock', lock, lock, EXCLUSIVE);
  s.arg = null;
  yield s;
  lock.take(t, EXCLUSIVE);
  lock.ctx = ctx;
  ctx.acquired++;
  ctx.contended = null;
  lockAcquired(t, lock, EXCLUSIVE, ctx);
}

export function* ww_mutex_unlock(t: Task, lock: WwMutex, fn = 'ww_mutex_unlock'): KGen {
  const ctx = lock.owner === t ? lock.ctx : null;
  yield* lock_release(t, lock, fn);
  if (lock.owner === null) lock.ctx = null;
  if (ctx) ctx.acquired--;
}
