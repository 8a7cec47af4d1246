/**
 * Sleeping and spinning locks: mutex, rw_semaphore, rwlock_t.
 *
 * One {@link Lock} object models all of them: an exclusive owner plus a count
 * of shared holders. Acquisition is a blocking step; lockdep (see
 * src/checkers/lockdep.ts) observes every acquisition and release.
 *
 * Simplification (documented in docs/architecture.md): rw_semaphores have no
 * writer preference, so a reader never queues behind a waiting writer.
 *
 * Models: kernel/locking/mutex.c, rwsem.c, spinlock.c; include/linux/rwlock.h
 */
import { checkRecursion, lockAcquired, lockReleased } from '../checkers/lockdep.ts';
import type { Kernel } from './kernel.ts';
import { type Blocker, type KGen, KObject, type Step, type Task } from './sched.ts';

/** `lockdep_map`: a pseudo-lock only lockdep sees (fs_reclaim, dma_fence_map). */
export type LockKind = 'mutex' | 'rwsem' | 'rwlock' | 'spinlock' | 'ww_mutex' | 'lockdep_map';

/** Lock mode: exclusive (write) or shared (read). */
export const EXCLUSIVE = 0;
export const SHARED = 1;

export class Lock extends KObject implements Blocker {
  readonly type: string = 'lock';
  owner: Task | null = null;
  /** Tasks holding the lock shared, in acquisition order. */
  readonly readers: Task[] = [];

  constructor(
    k: Kernel,
    name: string,
    /** Lockdep class ("reservation_ww_class_mutex", "kvm->mmu_lock", …). */
    readonly cls: string,
    readonly kind: LockKind,
  ) {
    super(k, name);
  }

  ready(_t: Task, step: Step): boolean {
    if (this.owner !== null) return false;
    if (step.mode === SHARED) return true;
    return this.readers.length === 0;
  }

  get locked(): boolean {
    return this.owner !== null || this.readers.length > 0;
  }

  /** Who holds it, for reports ("vcpu0" or "vcpu0, vcpu1 (read)"). */
  holderName(): string | null {
    if (this.owner) return this.owner.name;
    if (this.readers.length) return `${this.readerNames().join(', ')} (read)`;
    return null;
  }

  override snapshot(): Record<string, unknown> {
    return {
      class: this.cls,
      owner: this.owner?.name ?? null,
      readers: this.readerNames(),
    };
  }

  /** Shared holders in thread order: the order they took it in does not matter (shared acquisitions commute). */
  readerNames(): string[] {
    return this.readers
      .slice()
      .sort((a, b) => a.idx - b.idx)
      .map((r) => r.name);
  }

  /** Takes the lock for `t` (the step already established that it may). */
  take(t: Task, mode: number): void {
    if (mode === SHARED) this.readers.push(t);
    else this.owner = t;
  }

  /** Drops `t`'s hold; false when `t` did not hold it. */
  drop(t: Task): boolean {
    if (this.owner === t) {
      this.owner = null;
      return true;
    }
    const i = this.readers.indexOf(t);
    if (i < 0) return false;
    this.readers.splice(i, 1);
    return true;
  }
}

/** Blocking acquisition, printed as `fn` (e.g. `mutex_lock`). */
export function* lock_acquire(t: Task, lock: Lock, mode: number, fn: string): KGen {
  checkRecursion(t, lock, fn, mode);
  yield t.at(fn, 'lock', lock, lock, mode);
  lock.take(t, mode);
  lockAcquired(t, lock, mode);
}

/** Non-blocking acquisition; true when taken. */
export function* lock_try(t: Task, lock: Lock, mode: number, fn: string): KGen<boolean> {
  yield t.at(fn, 'lock', lock, null, mode);
  if (lock.owner !== null || (mode === EXCLUSIVE && lock.readers.length > 0)) return false;
  lock.take(t, mode);
  lockAcquired(t, lock, mode, null, fn, true);
  return true;
}

export function* lock_release(t: Task, lock: Lock, fn: string): KGen {
  yield t.at(fn, 'unlock', lock, null, lock.owner === t ? EXCLUSIVE : lock.readers.includes(t) ? SHARED : EXCLUSIVE);
  const held = lock.drop(t);
  lockReleased(t, lock, held, fn);
}

export const mutex_lock = (t: Task, l: Lock) => lock_acquire(t, l, EXCLUSIVE, 'mutex_lock');
export const mutex_unlock = (t: Task, l: Lock) => lock_release(t, l, 'mutex_unlock');
export const down_read = (t: Task, l: Lock) => lock_acquire(t, l, SHARED, 'down_read');
export const up_read = (t: Task, l: Lock) => lock_release(t, l, 'up_read');
export const down_write = (t: Task, l: Lock) => lock_acquire(t, l, EXCLUSIVE, 'down_write');
export const up_write = (t: Task, l: Lock) => lock_release(t, l, 'up_write');
export const read_lock = (t: Task, l: Lock) => lock_acquire(t, l, SHARED, 'read_lock');
export const read_unlock = (t: Task, l: Lock) => lock_release(t, l, 'read_unlock');
export const write_lock = (t: Task, l: Lock) => lock_acquire(t, l, EXCLUSIVE, 'write_lock');
export const write_unlock = (t: Task, l: Lock) => lock_release(t, l, 'write_unlock');
export const spin_lock = (t: Task, l: Lock) => lock_acquire(t, l, EXCLUSIVE, 'spin_lock');
export const spin_unlock = (t: Task, l: Lock) => lock_release(t, l, 'spin_unlock');

/**
 * `spin_lock()` inside one atomic step, for code that runs inside another
 * step: a fence callback (it runs inside the signaller's step), or a fence
 * provider whose lock is held for one step (sw_sync's timeline lock). Lockdep
 * sees it: a lock the thread already holds is the recursive `deadlock`
 * (nothing is taken), otherwise the dependencies from the locks held are
 * recorded. True when taken: pass it to {@link spin_unlock_in_step}.
 *
 * The model does not spin: a lock another thread holds across steps is only
 * recorded for lockdep, not taken, and the caller goes on. Use it for locks
 * whose every hold is a single step.
 */
export function spin_lock_in_step(t: Task, lock: Lock, fn = 'spin_lock'): boolean {
  if (t.holds(lock)) {
    checkRecursion(t, lock, fn);
    return false;
  }
  lockAcquired(t, lock, EXCLUSIVE, null, fn);
  if (lock.locked) {
    lockReleased(t, lock, true, fn);
    return false;
  }
  lock.take(t, EXCLUSIVE);
  return true;
}

/** The `spin_unlock()` of {@link spin_lock_in_step}: releases the lock if it was `taken`. */
export function spin_unlock_in_step(t: Task, lock: Lock, taken: boolean, fn = 'spin_unlock'): void {
  if (taken) lockReleased(t, lock, lock.drop(t), fn);
}
