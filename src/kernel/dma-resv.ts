/**
 * dma_resv: the reservation object — a ww_mutex of `reservation_ww_class`
 * plus an RCU-published list of fences tagged by usage ([O8], [R1]–[R12]).
 *
 * - Usages order KERNEL < WRITE < READ < BOOKKEEP; a query at usage U sees
 *   every fence with usage ≤ U ([R1]).
 * - The list has a capacity (`max_fences`). `dma_resv_reserve_fences()`
 *   returns at once when `num + n ≤ max`, else reallocates to
 *   `max(num + n, 2 * max)` (or `max(4, roundup_pow_of_two(n))` when there was
 *   no capacity), dropping the signalled entries (see below). At unlock the
 *   capacity is reset to `num` (the kernel does so in debug builds,
 *   `dma_resv_reset_max_fences()`), so a reservation lasts for one lock hold
 *   ([R3], [I17]).
 * - `dma_resv_add_fence()` replaces the first entry that is signalled or of the
 *   same context with a usage ≥ the new one (so a fence is promoted, never
 *   degraded), else appends; appending past the capacity is the kernel's BUG_ON,
 *   here an `api-misuse` finding, and the model goes on ([R2], [R4]). Adding a
 *   container fence (the array `dma_resv_get_singleton()` makes) WARNs.
 * - `dma_resv_replace_fences()` ([R5]), `dma_resv_copy_fences()` ([R9]).
 * - Locked iteration (`dma_resv_iter_first/next`, `dma_resv_for_each_fence`)
 *   yields every entry with usage ≤ U, signalled ones included ([R6]).
 * - Unlocked iteration (`dma_resv_iter_first_unlocked/next_unlocked`) yields the
 *   unsignalled fences with usage ≤ U, holding a reference on each across the
 *   loop body; it restarts from the first entry when the list's `seq` moved
 *   since the cursor's snapshot, and the first fence after a (re)start has
 *   `dma_resv_iter_is_restarted()` true ([R7]). `dma_resv_get_fences()` and
 *   `dma_resv_get_singleton()` are built on it ([R8]).
 * - `dma_resv_wait_timeout()` waits fence by fence on the simulated clock,
 *   passing the remaining time on; a zero timeout never blocks; -ERESTARTSYS
 *   when interruptible and a signal is pending ([R10]).
 *
 * Simplifications: allocation never fails, so -ENOMEM never occurs; the
 * capacity is the requested size (the kernel rounds it up to what `ksize()`
 * gives). The list's `seq` is the pre-v5.19 seqcount: every publish (add,
 * replace, copy, fini) bumps it; a reallocation by reserve, which changes no
 * unsignalled entry, does not. Replacement by context ignores
 * `dma_fence_is_later_or_same()` (upstream since v6.6). A cursor that meets a
 * fence whose refcount already dropped to 0 ends the walk (the pre-6.0
 * behaviour [R7] describes; later kernels restart). The array fence of
 * `get_singleton` signals when all of its fences have signalled, with no error
 * propagation and no `signal_on_any`; its callbacks on the fences are added
 * when it is created, and it is never released. The per-fence wait of
 * `dma_resv_wait_timeout()` is dma-fence.ts's `dma_fence_wait_timeout()`,
 * which enables signalling and calls a driver's `wait` op as the kernel's
 * does; the lockless readers test the SIGNALED flag only (not
 * `ops.signaled`).
 *
 * Explorer declarations: the fence list is its own object (`obj.fences`):
 * lockless readers read it; add, replace, copy and fini write it. Reading
 * fence states reads the machine-wide `fenceStates` object. A fence wait is a
 * 'wait' of the fence, blocked on the fence (on the fence or a pending signal
 * when interruptible). State under the held resv lock (the capacity, locked
 * iteration) needs no declaration. Fence references are counted in
 * `refcount` (the list holds one per entry, an unlocked cursor one on its
 * current fence, `get_fences` one per returned fence), and every step that
 * changes a fence's count declares a write of that fence; where which fences
 * depends on shared state (which entry an add replaces, which fence a cursor
 * takes next) the step's `refresh` recomputes it. Two consequences:
 * - `dma_resv_reserve_fences()` takes no step (drivers call it as a plain
 *   function), so its reallocation cannot read fence states or put
 *   references there: it only marks the list, and the next
 *   `dma_resv_add_fence()` drops the signalled entries (in its own declared
 *   step) before it scans. Lockless readers cannot tell (they skip signalled
 *   fences); a locked walk between the reserve and that add still shows them.
 * - A put here goes through `dma_fence_put_in_step()` (dma-fence.ts): one
 *   that drops a fence's last reference releases it there and then, inside
 *   the step that declared the write (`ops.release`, and the WARN for
 *   callbacks still queued); the model keeps the released fence readable, as
 *   RCU would.
 *
 * Models: drivers/dma-buf/dma-resv.c, include/linux/dma-resv.h
 */
import { apiMisuse, assertHeld } from '../checkers/api.ts';
import { LOCK_CLASS } from '../checkers/lockdep.ts';
import {
  type DmaFence,
  dma_fence_add_callback,
  dma_fence_init,
  dma_fence_put_in_step,
  dma_fence_signal,
  dma_fence_wait_timeout,
  MAX_SCHEDULE_TIMEOUT,
  mightWait,
} from './dma-fence.ts';
import { EINVAL } from './errno.ts';
import type { Kernel } from './kernel.ts';
import { type KGen, KObject, kfn, type Step, type Task } from './sched.ts';
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

/** A query at usage `query` sees an entry added at usage `entry` iff entry ≤ query ([R1]). */
function visible(entry: DmaResvUsage, query: DmaResvUsage): boolean {
  return entry <= query;
}

export interface ResvEntry {
  readonly fence: DmaFence;
  readonly usage: DmaResvUsage;
}

/** The fence list of a dma_resv (`struct dma_resv_list`): entries, capacity, publish count. */
export class DmaResvList extends KObject {
  readonly type = 'dma_resv_list';
  /**
   * The entries, `num_fences` of them, each holding a reference. A
   * reallocation installs a new array; a cursor that took a snapshot keeps
   * walking the old one (RCU).
   */
  entries: ResvEntry[] = [];
  /** `max_fences`: the capacity; 0 while no list is allocated ([R3]). */
  max = 0;
  /** Bumped on every publish (the seqcount of [R7]). */
  seq = 0;
  /** A reserve reallocated: the next add drops the signalled entries first (see the header). */
  dropSignalled = false;

  /** `num_fences`. */
  get num(): number {
    return this.entries.length;
  }

  /** Free slots: what has been reserved in this lock hold and not yet used. */
  get reserved(): number {
    return Math.max(0, this.max - this.entries.length);
  }

  override snapshot(): Record<string, unknown> {
    return {
      fences: this.entries.map((e) => ({
        fence: e.fence.name,
        usage: USAGE_NAMES[e.usage],
        signaled: e.fence.signaled,
      })),
      reserved: this.reserved,
      max: this.max,
      seq: this.seq,
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

interface PutAllDecl {
  readonly list: DmaResvList;
  /** Accesses declared before the fences. */
  readonly base: number;
}

/** Declares a write of every fence the list holds (their references are put), recomputed when asked. */
function refreshPutAll(s: Step): void {
  const d = s.arg as PutAllDecl;
  s.nacc = d.base;
  s.global = false;
  for (const e of d.list.entries) s.touch(e.fence, 'write');
}

/** Adds to `s` the fences of `list`, whose references the step puts. */
function putAllStep(s: Step, list: DmaResvList): Step {
  s.arg = { list, base: s.nacc } satisfies PutAllDecl;
  s.refresh = refreshPutAll;
  refreshPutAll(s);
  return s;
}

/**
 * `dma_resv_fini()`: puts every entry's reference and frees the list; the
 * lock must not be held (`mutex_destroy`'s WARN).
 */
export const dma_resv_fini = kfn('dma_resv_fini', function* (t: Task, obj: DmaResv): KGen {
  yield putAllStep(t.at('dma_resv_fini', 'free', obj.fences).touch(obj.lock, 'read'), obj.fences);
  if (obj.lock.owner !== null) apiMisuse(t, 'dma_resv_fini', `${obj.name} is still locked`, ['R12']);
  for (const e of obj.fences.entries) dma_fence_put_in_step(t, e.fence);
  obj.fences.entries = [];
  obj.fences.max = 0;
  obj.fences.dropSignalled = false;
  obj.fences.seq++;
});

/** `dma_resv_lock()`: 0, -EALREADY or -EDEADLK (the latter two only with a ctx) ([L6], [L7]). */
export function* dma_resv_lock(t: Task, obj: DmaResv, ctx: WwAcquireCtx | null): KGen<number> {
  return yield* ww_mutex_lock(t, obj.lock, ctx, 'dma_resv_lock');
}

/** `dma_resv_lock_interruptible()`: as dma_resv_lock, but a pending signal ends the wait with -EINTR ([L6]). */
export function* dma_resv_lock_interruptible(t: Task, obj: DmaResv, ctx: WwAcquireCtx | null): KGen<number> {
  return yield* ww_mutex_lock(t, obj.lock, ctx, 'dma_resv_lock_interruptible', true);
}

export function* dma_resv_trylock(t: Task, obj: DmaResv): KGen<boolean> {
  return yield* ww_mutex_trylock(t, obj.lock, 'dma_resv_trylock');
}

export function* dma_resv_lock_slow(t: Task, obj: DmaResv, ctx: WwAcquireCtx): KGen {
  yield* ww_mutex_lock_slow(t, obj.lock, ctx, 'dma_resv_lock_slow');
}

/**
 * `dma_resv_unlock()`: resets the capacity to the entries in use, so slots
 * reserved and not used do not carry over to the next hold ([R3]).
 */
export function* dma_resv_unlock(t: Task, obj: DmaResv): KGen {
  if (obj.lock.owner === t) obj.fences.max = obj.fences.num;
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

/** `dma_resv_reset_max_fences()`: capacity := entries in use (what unlock does) ([R3]). */
export function dma_resv_reset_max_fences(t: Task, obj: DmaResv): void {
  dma_resv_assert_held(t, obj, 'dma_resv_reset_max_fences', ['R3']);
  obj.fences.max = obj.fences.num;
}

function roundupPowOfTwo(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/**
 * `dma_resv_reserve_fences()`: makes room for `n` more entries in this lock
 * hold ([R3]). 0, or -EINVAL (with the kernel's WARN) for `n == 0`; never
 * -ENOMEM. The capacity is protected by the lock, so this takes no step; the
 * reallocation's drop of signalled entries is done by the next add (header).
 */
export function dma_resv_reserve_fences(t: Task, obj: DmaResv, n: number): number {
  dma_resv_assert_held(t, obj, 'dma_resv_reserve_fences', ['R3', 'I17']);
  if (n <= 0) {
    apiMisuse(t, 'dma_resv_reserve_fences', `called with num_fences = ${n}`, ['R3']);
    return -EINVAL;
  }
  const list = obj.fences;
  if (list.max > 0) {
    if (list.num + n <= list.max) return 0;
    list.max = Math.max(list.num + n, 2 * list.max);
  } else {
    list.max = Math.max(4, roundupPowOfTwo(n));
  }
  list.dropSignalled = true;
  return 0;
}

/** Containers (`dma_fence_array`) made by dma_resv_get_singleton, with the fences they hold. */
const containers = new WeakMap<DmaFence, readonly DmaFence[]>();

/** `dma_fence_is_container()`: an array made by {@link dma_resv_get_singleton} (the model makes no chains). */
export function dma_fence_is_container(f: DmaFence): boolean {
  return containers.has(f);
}

/**
 * The fences `dma_fence_unwrap_for_each(f, &iter, fence)` visits: those a
 * container holds (it keeps their references), or `fence` itself. Contents of
 * a container never change: no step.
 */
export function dma_fence_unwrap(fence: DmaFence): readonly DmaFence[] {
  return containers.get(fence) ?? [fence];
}

/** What an add does to the list as it is now: entries dropped first, then the index replaced (-1: append). */
interface AddPlan {
  readonly drop: readonly ResvEntry[];
  readonly keep: readonly ResvEntry[];
  readonly replace: number;
}

function planAdd(list: DmaResvList, fence: DmaFence, usage: DmaResvUsage): AddPlan {
  let drop: ResvEntry[] = [];
  let keep: readonly ResvEntry[] = list.entries;
  if (list.dropSignalled) {
    drop = list.entries.filter((e) => e.fence.signaled);
    keep = list.entries.filter((e) => !e.fence.signaled);
  }
  const replace = keep.findIndex(
    (old) => (old.fence.context === fence.context && old.usage >= usage) || old.fence.signaled,
  );
  return { drop, keep, replace };
}

interface AddDecl {
  readonly list: DmaResvList;
  readonly fence: DmaFence;
  readonly usage: DmaResvUsage;
}

/** An add writes the new fence (a reference) and every fence whose reference it puts, as of now. */
function refreshAdd(s: Step): void {
  const d = s.arg as AddDecl;
  s.nacc = 2;
  s.global = false;
  s.touch(d.fence, 'write');
  const plan = planAdd(d.list, d.fence, d.usage);
  for (const e of plan.drop) s.touch(e.fence, 'write');
  const old = plan.keep[plan.replace];
  if (old) s.touch(old.fence, 'write');
}

/**
 * `dma_resv_add_fence()`: takes a reference; replaces the first entry that is
 * signalled or of the same context with a usage ≥ `usage`; otherwise appends,
 * which needs a free slot reserved in this hold ([R2], [R4], [I17]).
 */
export const dma_resv_add_fence = kfn(
  'dma_resv_add_fence',
  function* (t: Task, obj: DmaResv, fence: DmaFence, usage: DmaResvUsage): KGen {
    const list = obj.fences;
    const s = t.at('dma_resv_add_fence', 'write', list).touch(t.k.fenceStates, 'read');
    s.arg = { list, fence, usage } satisfies AddDecl;
    s.refresh = refreshAdd;
    refreshAdd(s);
    yield s;
    dma_resv_assert_held(t, obj, 'dma_resv_add_fence', ['R4', 'I17']);
    if (containers.has(fence)) {
      apiMisuse(t, 'dma_resv_add_fence', `${fence.name} is a container fence: add its fences one by one`, ['R4', 'R8']);
    }
    fence.refcount++;
    const plan = planAdd(list, fence, usage);
    if (list.dropSignalled) {
      // The reallocation of the last reserve: signalled entries dropped, their references put.
      for (const e of plan.drop) dma_fence_put_in_step(t, e.fence);
      list.entries = plan.keep.slice();
      list.dropSignalled = false;
    }
    const old = list.entries[plan.replace];
    if (old) {
      list.entries[plan.replace] = { fence, usage };
      dma_fence_put_in_step(t, old.fence);
      list.seq++;
      return;
    }
    if (list.num >= list.max) {
      apiMisuse(t, 'dma_resv_add_fence', 'no fence slot reserved in this lock hold (dma_resv_reserve_fences)', [
        'R3',
        'R4',
        'I17',
      ]);
      list.max = list.num + 1;
    }
    list.entries.push({ fence, usage });
    list.seq++;
  },
);

/**
 * `dma_resv_replace_fences()`: every entry of fence context `context` becomes
 * `replacement` at `usage` ([R5]). Legal only when the old operation can no
 * longer touch the memory once `replacement` signals. Contexts are immutable
 * and the list is under the lock, so the footprint is known here.
 */
export const dma_resv_replace_fences = kfn(
  'dma_resv_replace_fences',
  function* (t: Task, obj: DmaResv, context: number, replacement: DmaFence, usage: DmaResvUsage): KGen {
    const list = obj.fences;
    const s = t.at('dma_resv_replace_fences', 'write', list).touch(replacement, 'write');
    for (const e of list.entries) if (e.fence.context === context) s.touch(e.fence, 'write');
    yield s;
    dma_resv_assert_held(t, obj, 'dma_resv_replace_fences', ['R5']);
    let replaced = false;
    for (let i = 0; i < list.entries.length; i++) {
      const old = list.entries[i] as ResvEntry;
      if (old.fence.context !== context) continue;
      replacement.refcount++;
      list.entries[i] = { fence: replacement, usage };
      dma_fence_put_in_step(t, old.fence);
      replaced = true;
    }
    if (replaced) list.seq++;
  },
);

/**
 * `struct dma_resv_iter`: a cursor for locked or unlocked iteration. `seq` is
 * the list's publish count at the snapshot; a test may corrupt it to force a
 * restart (st-dma-resv's test_for_each_unlocked).
 */
export class DmaResvIter {
  /** The current fence (referenced, for unlocked iteration). */
  fence: DmaFence | null = null;
  fenceUsage: DmaResvUsage = DMA_RESV_USAGE_KERNEL;
  index = 0;
  /** The list snapshot being walked (the `fences` pointer). */
  fences: readonly ResvEntry[] | null = null;
  numFences = 0;
  seq = 0;
  isRestarted = false;
  /**
   * References the loop body holds and drops when the walk restarts
   * (get_fences, copy_fences): every unlocked step that restarts declares
   * them, since the body's puts run inside that step.
   */
  owned: readonly DmaFence[] = [];

  constructor(
    readonly obj: DmaResv,
    readonly usage: DmaResvUsage,
  ) {}
}

/** `dma_resv_iter_begin()`. Thread-local: no step. */
export function dma_resv_iter_begin(obj: DmaResv, usage: DmaResvUsage): DmaResvIter {
  return new DmaResvIter(obj, usage);
}

/** `dma_resv_iter_end()`: drops the reference on the current fence, if the walk stopped early (a step then). */
export const dma_resv_iter_end = kfn('dma_resv_iter_end', function* (t: Task, cursor: DmaResvIter): KGen {
  const f = cursor.fence;
  if (!f) return;
  yield t.at('dma_resv_iter_end', 'write', f);
  dma_fence_put_in_step(t, f);
  cursor.fence = null;
});

/** `dma_resv_iter_usage()`: the usage of the current entry. */
export function dma_resv_iter_usage(cursor: DmaResvIter): DmaResvUsage {
  return cursor.fenceUsage;
}

/** `dma_resv_iter_is_restarted()`: true for the first fence after a (re)start ([R7]). */
export function dma_resv_iter_is_restarted(cursor: DmaResvIter): boolean {
  return cursor.isRestarted;
}

/** `dma_resv_iter_next()` (locked): the next entry with usage ≤ the cursor's, signalled or not ([R6]). */
export function dma_resv_iter_next(t: Task, cursor: DmaResvIter): DmaFence | null {
  dma_resv_assert_held(t, cursor.obj, 'dma_resv_iter_next', ['R6']);
  cursor.isRestarted = false;
  const fences = cursor.fences;
  for (;;) {
    if (!fences || cursor.index >= fences.length) return null;
    const e = fences[cursor.index++] as ResvEntry;
    cursor.fenceUsage = e.usage;
    if (visible(e.usage, cursor.usage)) return e.fence;
  }
}

/** `dma_resv_iter_first()` (locked): no references are taken; the lock keeps the fences ([R6]). */
export function dma_resv_iter_first(t: Task, cursor: DmaResvIter): DmaFence | null {
  dma_resv_assert_held(t, cursor.obj, 'dma_resv_iter_first', ['R6']);
  cursor.index = 0;
  cursor.fences = cursor.obj.fences.entries;
  const f = dma_resv_iter_next(t, cursor);
  cursor.isRestarted = true;
  return f;
}

/**
 * `dma_resv_for_each_fence(cursor, obj, usage, fence)` with resv held: the
 * entries of `cursor` (from `dma_resv_iter_begin(obj, usage)`), in list order
 * ([R6]). A plain iterator (`for (const f of …)`): the lock orders every access.
 */
export function* dma_resv_for_each_fence(t: Task, cursor: DmaResvIter): Generator<DmaFence, void, void> {
  for (let f = dma_resv_iter_first(t, cursor); f; f = dma_resv_iter_next(t, cursor)) yield f;
}

/** `dma_resv_iter_restart_unlocked()`: snapshot the current list. */
function restartUnlocked(cursor: DmaResvIter): void {
  const list = cursor.obj.fences;
  cursor.index = 0;
  cursor.fences = list.entries;
  cursor.numFences = list.entries.length;
  cursor.seq = list.seq;
  cursor.isRestarted = true;
}

/** The entry an unlocked walk takes next (the first unsignalled one with usage ≤ the cursor's), or null. */
function peekUnlocked(cursor: DmaResvIter, restart: boolean): ResvEntry | null {
  const fences = restart ? cursor.obj.fences.entries : (cursor.fences ?? []);
  const n = restart ? fences.length : cursor.numFences;
  for (let i = restart ? 0 : cursor.index; i < n; i++) {
    const e = fences[i] as ResvEntry;
    if (!e.fence.signaled && visible(e.usage, cursor.usage)) return e;
  }
  return null;
}

/**
 * `dma_resv_iter_walk_unlocked()`: drops the current reference, then takes
 * the next unsignalled entry with usage ≤ the cursor's and references it
 * (`dma_fence_get_rcu`); one whose count already dropped to 0 ends the walk.
 */
function walkUnlocked(t: Task, cursor: DmaResvIter): void {
  if (cursor.fence) dma_fence_put_in_step(t, cursor.fence);
  cursor.fence = null;
  const fences = cursor.fences ?? [];
  while (cursor.index < cursor.numFences) {
    const e = fences[cursor.index++] as ResvEntry;
    if (e.fence.signaled || !visible(e.usage, cursor.usage)) continue;
    if (e.fence.refcount <= 0) return;
    cursor.fence = e.fence;
    cursor.fenceUsage = e.usage;
    e.fence.refcount++;
    return;
  }
}

/**
 * An unlocked step reads the list and the fence states, and writes the
 * fence it puts, the fence it takes next, and (when it restarts) the fences
 * the body drops: recomputed from the state whenever the explorer asks.
 */
function refreshUnlocked(s: Step, first: boolean): void {
  const cursor = s.arg as DmaResvIter;
  s.nacc = 2;
  s.global = false;
  if (cursor.fence) s.touch(cursor.fence, 'write');
  const restart = first || cursor.obj.fences.seq !== cursor.seq;
  if (restart) for (const f of cursor.owned) s.touch(f, 'write');
  const next = peekUnlocked(cursor, restart);
  if (next) s.touch(next.fence, 'write');
}

const refreshFirstUnlocked = (s: Step): void => refreshUnlocked(s, true);
const refreshNextUnlocked = (s: Step): void => refreshUnlocked(s, false);

function unlockedStep(t: Task, cursor: DmaResvIter, fn: string, refresh: (s: Step) => void): Step {
  const s = t.at(fn, 'read', cursor.obj.fences).touch(t.k.fenceStates, 'read');
  s.arg = cursor;
  s.refresh = refresh;
  refresh(s);
  return s;
}

/** `dma_resv_iter_first_unlocked()`: snapshot the list, return the first unsignalled fence ≤ usage ([R7]). */
export const dma_resv_iter_first_unlocked = kfn(
  'dma_resv_iter_first_unlocked',
  function* (t: Task, cursor: DmaResvIter): KGen<DmaFence | null> {
    yield unlockedStep(t, cursor, 'dma_resv_iter_first_unlocked', refreshFirstUnlocked);
    restartUnlocked(cursor);
    walkUnlocked(t, cursor);
    return cursor.fence;
  },
);

/**
 * `dma_resv_iter_next_unlocked()`: the next unsignalled fence ≤ usage, or,
 * when the list was published since the snapshot (its seq moved), the first
 * one again with `is_restarted` set ([R7]).
 */
export const dma_resv_iter_next_unlocked = kfn(
  'dma_resv_iter_next_unlocked',
  function* (t: Task, cursor: DmaResvIter): KGen<DmaFence | null> {
    yield unlockedStep(t, cursor, 'dma_resv_iter_next_unlocked', refreshNextUnlocked);
    cursor.isRestarted = false;
    if (cursor.obj.fences.seq !== cursor.seq) restartUnlocked(cursor);
    walkUnlocked(t, cursor);
    return cursor.fence;
  },
);

/**
 * `dma_resv_get_fences()`: the unsignalled fences with usage ≤ `usage`, each
 * referenced (the caller puts them); the partial result is dropped on a
 * restart ([R8]). The kernel's int return and out-parameters become the array
 * (never -ENOMEM).
 */
export const dma_resv_get_fences = kfn(
  'dma_resv_get_fences',
  function* (t: Task, obj: DmaResv, usage: DmaResvUsage): KGen<DmaFence[]> {
    let fences: DmaFence[] = [];
    const cursor = dma_resv_iter_begin(obj, usage);
    for (let f = yield* dma_resv_iter_first_unlocked(t, cursor); f; f = yield* dma_resv_iter_next_unlocked(t, cursor)) {
      if (dma_resv_iter_is_restarted(cursor)) {
        for (const g of fences) dma_fence_put_in_step(t, g);
        fences = [];
        cursor.owned = fences;
      }
      f.refcount++;
      fences.push(f);
    }
    yield* dma_resv_iter_end(t, cursor);
    return fences;
  },
);

const ARRAY_OPS = { driverName: 'dma_fence_array', timelineName: 'unbound' };

/**
 * Runs `body` inside the step `t` is executing, leaving that step's
 * declaration as it was (`body` may declare a step of its own, which the
 * running one covers).
 */
function insideStep(t: Task, body: () => void): void {
  const s = t.pending;
  const saved = {
    fn: s.fn,
    kind: s.kind,
    obj: s.obj,
    blocker: s.blocker,
    mode: s.mode,
    arg: s.arg,
    acc: s.acc.slice(0, s.nacc),
    global: s.global,
    depth: s.depth,
    deadline: s.deadline,
    refresh: s.refresh,
  };
  body();
  s.fn = saved.fn;
  s.kind = saved.kind;
  s.obj = saved.obj;
  s.blocker = saved.blocker;
  s.mode = saved.mode;
  s.arg = saved.arg;
  s.acc.set(saved.acc);
  s.nacc = saved.acc.length;
  s.global = saved.global;
  s.depth = saved.depth;
  s.deadline = saved.deadline;
  s.refresh = saved.refresh;
}

/**
 * `dma_fence_array_create(n, fences, dma_fence_context_alloc(1), 1, false)`:
 * a new fence that signals when every fence of `fences` has signalled. It
 * owns the references in `fences`. It signals from the callback of the last
 * fence, inside that fence's signal step (global, since a callback is queued).
 */
function* fenceArrayCreate(t: Task, fences: readonly DmaFence[]): KGen<DmaFence> {
  const array = dma_fence_init(t, `${t.name}:fence-array#${++t.created}`, ARRAY_OPS, t.k.fenceContextAlloc(), 1);
  containers.set(array, fences);
  let pending = fences.length;
  const onSignal = (st: Task): void => {
    if (--pending !== 0) return;
    insideStep(st, () => {
      const g = dma_fence_signal(st, array);
      while (!g.next().done) {
        // the array's signal runs inside the fence's signal step
      }
    });
  };
  for (const f of fences) {
    const r = yield* dma_fence_add_callback(t, f, { func: null, queued: false }, onSignal);
    if (r !== 0) pending--;
  }
  if (pending === 0) yield* dma_fence_signal(t, array);
  return array;
}

/**
 * `dma_resv_get_singleton()`: null for no fence, the fence itself (referenced)
 * for one, otherwise a new array fence over all of them ([R8]). The array is a
 * container: adding it back to a resv WARNs.
 */
export const dma_resv_get_singleton = kfn(
  'dma_resv_get_singleton',
  function* (t: Task, obj: DmaResv, usage: DmaResvUsage): KGen<DmaFence | null> {
    const fences = yield* dma_resv_get_fences(t, obj, usage);
    if (fences.length === 0) return null;
    if (fences.length === 1) return fences[0] as DmaFence;
    return yield* fenceArrayCreate(t, fences);
  },
);

/**
 * `dma_resv_copy_fences()`: builds a list from `src`'s unsignalled fences (any
 * usage, unlocked walk, rebuilt on restart), then replaces `dst`'s whole list
 * with it and puts the old entries ([R9]). `dst` must be locked. Returns 0.
 */
export const dma_resv_copy_fences = kfn(
  'dma_resv_copy_fences',
  function* (t: Task, dst: DmaResv, src: DmaResv): KGen<number> {
    let list: ResvEntry[] | null = null;
    let max = 0;
    const cursor = dma_resv_iter_begin(src, DMA_RESV_USAGE_BOOKKEEP);
    for (let f = yield* dma_resv_iter_first_unlocked(t, cursor); f; f = yield* dma_resv_iter_next_unlocked(t, cursor)) {
      if (list === null || dma_resv_iter_is_restarted(cursor)) {
        if (list) for (const e of list) dma_fence_put_in_step(t, e.fence);
        list = [];
        max = cursor.numFences;
      }
      f.refcount++;
      list.push({ fence: f, usage: dma_resv_iter_usage(cursor) });
      cursor.owned = list.map((e) => e.fence);
    }
    yield* dma_resv_iter_end(t, cursor);
    yield putAllStep(t.at('dma_resv_copy_fences', 'write', dst.fences), dst.fences);
    dma_resv_assert_held(t, dst, 'dma_resv_copy_fences', ['R9']);
    const old = dst.fences.entries;
    dst.fences.entries = list ?? [];
    dst.fences.max = list ? max : 0;
    dst.fences.dropSignalled = false;
    dst.fences.seq++;
    for (const e of old) dma_fence_put_in_step(t, e.fence);
    return 0;
  },
);

/**
 * `dma_resv_wait_timeout(obj, usage, intr, timeout)`: waits on each
 * unsignalled fence with usage ≤ `usage` in turn, passing the remaining time
 * on ([R10]). Returns the jiffies left (> 0; `timeout` itself when nothing had
 * to be waited for), 1 when `timeout` is 0 and everything is signalled, 0 on
 * timeout, -ERESTARTSYS on a pending signal with `intr`. `timeout` is in
 * jiffies; the default, MAX_SCHEDULE_TIMEOUT, waits without limit. No lock
 * needed.
 */
export const dma_resv_wait_timeout = kfn(
  'dma_resv_wait_timeout',
  function* (
    t: Task,
    obj: DmaResv,
    usage: DmaResvUsage,
    intr: boolean,
    timeout: number = MAX_SCHEDULE_TIMEOUT,
  ): KGen<number> {
    mightWait(t, `dma_resv_wait_timeout on ${obj.name}`);
    let ret = timeout !== 0 ? timeout : 1;
    const cursor = dma_resv_iter_begin(obj, usage);
    for (let f = yield* dma_resv_iter_first_unlocked(t, cursor); f; f = yield* dma_resv_iter_next_unlocked(t, cursor)) {
      ret = yield* dma_fence_wait_timeout(t, f, intr, timeout);
      if (ret <= 0) break;
      if (timeout !== 0) timeout = ret;
    }
    yield* dma_resv_iter_end(t, cursor);
    return ret;
  },
);

/** `dma_resv_test_signaled()`: true when no unsignalled fence has usage ≤ `usage` ([R10]). No lock needed. */
export const dma_resv_test_signaled = kfn(
  'dma_resv_test_signaled',
  function* (t: Task, obj: DmaResv, usage: DmaResvUsage): KGen<boolean> {
    yield t.at('dma_resv_test_signaled', 'read', obj.fences).touch(t.k.fenceStates, 'read');
    for (const e of obj.fences.entries) if (visible(e.usage, usage) && !e.fence.signaled) return false;
    return true;
  },
);
