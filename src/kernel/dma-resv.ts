/**
 * dma_resv: the reservation object — a ww_mutex of `reservation_ww_class`
 * plus an RCU-published list of fences tagged by usage ([O8], [R1]–[R12]).
 *
 * - Usages order KERNEL < WRITE < READ < BOOKKEEP; a query at usage U sees
 *   every fence with usage ≤ U ([R1]).
 * - `dma_resv_reserve_fences()` then `dma_resv_add_fence()`, both with the lock
 *   held; a reservation is valid only for the current hold ([R3], [R4],
 *   [I17]).
 * - `dma_resv_wait_timeout()` may be called with or without the lock; it waits
 *   on every unsignalled fence with usage ≤ U ([R10]).
 *
 * Explorer declarations: the fence list is its own object (lockless readers
 * read it); reading it also reads every listed fence's state, declared through
 * the machine-wide fence-state object.
 *
 * Models: drivers/dma-buf/dma-resv.c, include/linux/dma-resv.h
 */
import { apiMisuse, assertHeld } from '../checkers/api.ts';
import { LOCK_CLASS } from '../checkers/lockdep.ts';
import { type DmaFence, dma_fence_wait, mightWait } from './dma-fence.ts';
import type { Kernel } from './kernel.ts';
import { type KGen, KObject, kfn, type Task } from './sched.ts';
import {
  type WwAcquireCtx,
  WwMutex,
  ww_mutex_lock,
  ww_mutex_lock_slow,
  ww_mutex_trylock,
  ww_mutex_unlock,
} from './ww-mutex.ts';

export const DMA_RESV_USAGE_KERNEL = 0;
export const DMA_RESV_USAGE_WRITE = 1;
export const DMA_RESV_USAGE_READ = 2;
export const DMA_RESV_USAGE_BOOKKEEP = 3;
export type DmaResvUsage = 0 | 1 | 2 | 3;
export const USAGE_NAMES = ['KERNEL', 'WRITE', 'READ', 'BOOKKEEP'] as const;

/** `dma_resv_usage_rw()`: a writer waits for readers too ([R1]). */
export function dma_resv_usage_rw(write: boolean): DmaResvUsage {
  return write ? DMA_RESV_USAGE_READ : DMA_RESV_USAGE_WRITE;
}

export interface ResvEntry {
  fence: DmaFence;
  usage: DmaResvUsage;
}

/** The fence list of a dma_resv (`struct dma_resv_list`), plus the per-hold reservation. */
export class DmaResvList extends KObject {
  readonly type = 'dma_resv_list';
  readonly entries: ResvEntry[] = [];
  /** Slots reserved in the current lock hold and not yet used ([R3]). */
  reserved = 0;
  /** Bumped on every publish (the seqcount of [R7]). */
  seq = 0;

  override snapshot(): Record<string, unknown> {
    return {
      fences: this.entries.map((e) => ({
        fence: e.fence.name,
        usage: USAGE_NAMES[e.usage],
        signaled: e.fence.signaled,
      })),
      reserved: this.reserved,
    };
  }
}

/** `struct dma_resv`. */
export class DmaResv {
  readonly lock: WwMutex;
  readonly fences: DmaResvList;

  constructor(
    k: Kernel,
    readonly name: string,
  ) {
    this.lock = new WwMutex(k, name, LOCK_CLASS.resv);
    this.fences = new DmaResvList(k, `${name}.fences`);
  }
}

/** `dma_resv_init()`. */
export function dma_resv_init(k: Kernel, name: string): DmaResv {
  return new DmaResv(k, name);
}

/** `dma_resv_lock()`: 0, -EALREADY or -EDEADLK (the latter two only with a ctx) ([L6], [L7]). */
export function* dma_resv_lock(t: Task, obj: DmaResv, ctx: WwAcquireCtx | null): KGen<number> {
  return yield* ww_mutex_lock(t, obj.lock, ctx, 'dma_resv_lock');
}

/** `dma_resv_lock_interruptible()`: signals are not modelled, so as dma_resv_lock. */
export function* dma_resv_lock_interruptible(t: Task, obj: DmaResv, ctx: WwAcquireCtx | null): KGen<number> {
  return yield* ww_mutex_lock(t, obj.lock, ctx, 'dma_resv_lock_interruptible');
}

export function* dma_resv_trylock(t: Task, obj: DmaResv): KGen<boolean> {
  return yield* ww_mutex_trylock(t, obj.lock, 'dma_resv_trylock');
}

export function* dma_resv_lock_slow(t: Task, obj: DmaResv, ctx: WwAcquireCtx): KGen {
  yield* ww_mutex_lock_slow(t, obj.lock, ctx, 'dma_resv_lock_slow');
}

/** `dma_resv_unlock()`: also drops the unused reservation ([R3]). */
export function* dma_resv_unlock(t: Task, obj: DmaResv): KGen {
  if (obj.lock.owner === t) obj.fences.reserved = 0;
  yield* ww_mutex_unlock(t, obj.lock, 'dma_resv_unlock');
}

/** `dma_resv_assert_held()`: records `lock-not-held` and returns false when not held. */
export function dma_resv_assert_held(
  t: Task,
  obj: DmaResv,
  call: string,
  rules: readonly string[] = ['L1', 'I14'],
): boolean {
  return assertHeld(t, obj.lock, call, rules);
}

/**
 * `dma_resv_reserve_fences()`: reserve `n` slots for this hold ([R3]).
 * The list capacity is protected by the lock, so this takes no step.
 */
export function dma_resv_reserve_fences(t: Task, obj: DmaResv, n: number): number {
  dma_resv_assert_held(t, obj, 'dma_resv_reserve_fences', ['R3', 'I17']);
  obj.fences.reserved += n;
  return 0;
}

/**
 * `dma_resv_add_fence()`: replaces the first entry that is signalled or of the
 * same context with a weaker-or-equal usage; otherwise appends, which needs a
 * reservation made in this hold ([R2], [R4], [I17]).
 */
export const dma_resv_add_fence = kfn(
  'dma_resv_add_fence',
  function* (t: Task, obj: DmaResv, fence: DmaFence, usage: DmaResvUsage): KGen {
    yield t.at('dma_resv_add_fence', 'write', obj.fences).touch(t.k.fenceStates, 'read');
    dma_resv_assert_held(t, obj, 'dma_resv_add_fence', ['R4', 'I17']);
    const list = obj.fences;
    for (const e of list.entries) {
      if (e.fence.signaled || (e.fence.context === fence.context && e.usage >= usage)) {
        e.fence = fence;
        e.usage = usage;
        list.seq++;
        return;
      }
    }
    if (list.reserved <= 0) {
      apiMisuse(t, 'dma_resv_add_fence', 'no fence slot reserved in this lock hold (dma_resv_reserve_fences)', [
        'R3',
        'R4',
        'I17',
      ]);
    } else {
      list.reserved--;
    }
    list.entries.push({ fence, usage });
    list.seq++;
  },
);

/** First unsignalled fence with usage ≤ `usage`, or null. Caller declared the reads. */
function firstUnsignalled(obj: DmaResv, usage: DmaResvUsage): DmaFence | null {
  for (const e of obj.fences.entries) if (e.usage <= usage && !e.fence.signaled) return e.fence;
  return null;
}

/**
 * `dma_resv_wait_timeout()` with an infinite timeout: waits for every
 * unsignalled fence with usage ≤ `usage`; returns a positive value ([R10]).
 */
export const dma_resv_wait_timeout = kfn(
  'dma_resv_wait_timeout',
  function* (t: Task, obj: DmaResv, usage: DmaResvUsage, intr: boolean): KGen<number> {
    mightWait(t, `dma_resv_wait_timeout on ${obj.name}`);
    for (;;) {
      yield t.at('dma_resv_iter_first_unlocked', 'read', obj.fences).touch(t.k.fenceStates, 'read');
      const f = firstUnsignalled(obj, usage);
      if (!f) return 1;
      yield* dma_fence_wait(t, f, intr);
    }
  },
);

/** `dma_resv_test_signaled()`: true when no unsignalled fence with usage ≤ `usage` ([R10]). */
export const dma_resv_test_signaled = kfn(
  'dma_resv_test_signaled',
  function* (t: Task, obj: DmaResv, usage: DmaResvUsage): KGen<boolean> {
    yield t.at('dma_resv_test_signaled', 'read', obj.fences).touch(t.k.fenceStates, 'read');
    return firstUnsignalled(obj, usage) === null;
  },
);
