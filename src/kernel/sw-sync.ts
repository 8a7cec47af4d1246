/**
 * sw_sync: a software timeline whose fences user space creates and signals
 * (the debugfs file `sync/sw_sync`), for testing implicit and explicit sync
 * without hardware ([C9]).
 *
 * - Opening the file (`sw_sync_debugfs_open`) makes a `sync_timeline`: its own
 *   fence context, a value (starting at 0) and a spinlock, `obj->lock`, which
 *   is **the lock of every fence on the timeline**: fence callbacks run under
 *   it. The file (file.ts, `sw_sync_debugfs_fops`) carries the timeline; the
 *   opener installs it at an fd.
 * - `SW_SYNC_IOC_CREATE_FENCE {value}` (`sync_pt_create`): a fence (a
 *   `sync_pt`) at seqno `value`, holding a timeline reference. Under the lock:
 *   signalled at once when the timeline already passed `value`; otherwise
 *   kept on the timeline's list, ordered by seqno — or, when a live point of
 *   the same value exists, that point is returned instead. Wrapped in a
 *   sync_file (sync-file.ts), which holds the only fence reference (the list
 *   holds none), installed at a new fd of the caller, which the ioctl returns.
 * - `SW_SYNC_IOC_INC {by}` (`sync_timeline_signal`): under the lock, advance
 *   the value and signal every listed point it passed, in order, unlinking
 *   each (`dma_fence_signal_locked`: callbacks run there, under the timeline
 *   lock, in the caller's context). Since 2023 ("dma-buf/sw_sync: Avoid
 *   recursive lock during fence signal") it holds a reference on each point
 *   across the signal and puts them after the unlock; before, a callback
 *   that dropped a point's last reference released it inside the signal, and
 *   the release (`timeline_fence_release`) takes the timeline lock again — a
 *   recursive lock: `deadlock`. `holdRef` selects the behaviour.
 * - `timeline_fence_release` (a point's last put): under the lock, unlink the
 *   point if still listed; then drop the timeline reference.
 * - Closing the file (its last `fput`; `__fput` runs `sw_sync_debugfs_release`
 *   as task work): under the lock, every listed point gets `-ENOENT` and is
 *   signalled (left on the list); then the file's timeline reference is
 *   dropped.
 *
 * Explorer declarations: each lock hold is one atomic step (nothing in it
 * sleeps), so no other thread ever sees the lock held, and a point's release,
 * which runs inside another thread's put step, can always take it; lockdep
 * still sees the acquisition and release (`lockAcquired` / `lockReleased`), so
 * a release under the held lock is the recursive-locking `deadlock`. A create
 * writes the timeline and the live point it may reuse; a signal writes the
 * timeline, the fence states and the points it signals, and is global when one
 * of them has callbacks queued (they may touch anything), as a fence signal is.
 *
 * A point whose last reference goes inside another step (a resv list dropping
 * its entry, `dma_fence_put_in_step`) unlinks itself there without declaring
 * the timeline: only a step that passes the point or creates one of the same
 * value looks at it again, and those declare the point.
 *
 * Simplifications: values are plain numbers (no 32-bit wraparound, no
 * `INT_MAX` split of a large increment); the point's `ops.signaled` compares
 * with the timeline value; no debugfs listing (sync_debug.c), no names.
 *
 * Models: drivers/dma-buf/sw_sync.c, drivers/dma-buf/sync_debug.h
 */
import {
  type DmaFence,
  type DmaFenceOps,
  dma_fence_init,
  dma_fence_is_signaled_locked,
  dma_fence_put,
  dma_fence_signal_locked,
} from './dma-fence.ts';
import { ENOENT } from './errno.ts';
import {
  alloc_file_pseudo,
  type File,
  type FileOperations,
  fd_install,
  get_unused_fd_flags,
  O_CLOEXEC,
} from './file.ts';
import type { Kernel } from './kernel.ts';
import { Lock, spin_lock_in_step, spin_unlock_in_step } from './locking.ts';
import { type KGen, KObject, kfn, type Step, type Task } from './sched.ts';
import { sync_file_create } from './sync-file.ts';

/** Lockdep class of `sync_timeline->lock`. */
export const SYNC_TIMELINE_LOCK_CLASS = 'sync_timeline->lock';

/** `struct sync_timeline` ([C9]). */
export class SyncTimeline extends KObject {
  readonly type = 'sync_timeline';
  /** `obj->lock`: protects `value` and `pt_list`; the lock of every point's fence. */
  readonly lock: Lock;
  /** `obj->context`: the points' fence context. */
  readonly context: number;
  /** The last signalled value. */
  value = 0;
  /** `obj->pt_list`: unsignalled points, by seqno (no references). */
  readonly pt_list: DmaFence[] = [];
  /** `obj->kref`: the file's reference plus one per point. */
  kref = 1;
  /** The points' `timeline_fence_ops`. */
  readonly ops: DmaFenceOps;

  constructor(k: Kernel, name: string) {
    super(k, name);
    this.lock = new Lock(k, `${name}->lock`, SYNC_TIMELINE_LOCK_CLASS, 'spinlock');
    this.context = k.fenceContextAlloc();
    this.ops = {
      driverName: 'sw_sync',
      timelineName: name,
      enable_signaling: true,
      signaled: (_t, f) => timeline_fence_signaled(this, f),
      release: (t, f) => timeline_fence_release(t, f, this),
    };
  }

  override snapshot(): Record<string, unknown> {
    return { value: this.value, pt_list: this.pt_list.map((f) => f.name), kref: this.kref };
  }
}

/** `timeline_fence_signaled()`: the timeline has reached the point's seqno. */
function timeline_fence_signaled(obj: SyncTimeline, f: DmaFence): boolean {
  return f.seqno <= obj.value;
}

/** `spin_lock_irq(&obj->lock)` inside a step (see the header): lockdep sees it; a recursion is a `deadlock`. */
function timelineLock(t: Task, obj: SyncTimeline, fn: string): boolean {
  return spin_lock_in_step(t, obj.lock, fn);
}

function timelineUnlock(t: Task, obj: SyncTimeline, locked: boolean, fn: string): void {
  spin_unlock_in_step(t, obj.lock, locked, fn);
}

/**
 * `timeline_fence_release()` (`ops.release`): the point's last reference is
 * gone (inside the put's step). Unlinks it and drops its timeline reference
 * ([F8]).
 * Locking: takes `fence->lock`, the timeline lock — recursively (a
 * `deadlock`) when the put came from a callback run under that lock ([F2]).
 */
function timeline_fence_release(t: Task, f: DmaFence, obj: SyncTimeline): void {
  t.stack.push('timeline_fence_release');
  const locked = timelineLock(t, obj, 'spin_lock_irqsave');
  const i = obj.pt_list.indexOf(f);
  if (i >= 0) obj.pt_list.splice(i, 1);
  timelineUnlock(t, obj, locked, 'spin_unlock_irqrestore');
  sync_timeline_put(obj);
  t.stack.pop();
}

/** `sync_timeline_put()`: the last reference frees the timeline (nothing else to do in the model). */
function sync_timeline_put(obj: SyncTimeline): void {
  obj.kref--;
}

/** `sync_timeline_create()`: a new timeline, not yet shared (no step). */
export function sync_timeline_create(k: Kernel, name: string): SyncTimeline {
  return new SyncTimeline(k, name);
}

/**
 * `open("/sys/kernel/debug/sync/sw_sync")` → `sw_sync_debugfs_open()`: a new
 * timeline in a new file (`file->private_data`) holding the opener's
 * reference; the opener installs it at an fd. Not a step: nobody sees it yet.
 */
export function sw_sync_debugfs_open(k: Kernel, name: string): File {
  return alloc_file_pseudo(k, `${name}->file`, sw_sync_debugfs_fops, sync_timeline_create(k, name));
}

/** A create writes the timeline and the live point of the same value it may reuse. */
function refreshCreate(s: Step): void {
  const { obj, value } = s.arg as { obj: SyncTimeline; value: number };
  s.nacc = 1;
  s.global = false;
  for (const pt of obj.pt_list) if (pt.seqno === value) s.touch(pt, 'write');
}

/**
 * `sync_pt_create()`: a point at `value`, holding a timeline reference;
 * signalled at once when the timeline passed it, else listed — or the live
 * point of the same value, referenced, instead ([C9], [F1]).
 * Locking: takes `obj->lock`; callers must not hold it.
 */
export const sync_pt_create = kfn(
  'sync_pt_create',
  function* (t: Task, obj: SyncTimeline, value: number): KGen<DmaFence> {
    const s = t.at('sync_pt_create', 'write', obj);
    s.arg = { obj, value };
    s.refresh = refreshCreate;
    refreshCreate(s);
    yield s;
    obj.kref++;
    let pt = dma_fence_init(t, `${obj.name}#${value}`, obj.ops, obj.context, value, obj.lock);
    const locked = timelineLock(t, obj, 'spin_lock_irq');
    if (!dma_fence_is_signaled_locked(t, pt)) {
      const other = obj.pt_list.find((p) => p.seqno === value && p.refcount > 0);
      if (other) {
        // dma_fence_get_rcu() on the live point; the new one is freed unused.
        other.refcount++;
        obj.kref--;
        pt = other;
      } else {
        const at = obj.pt_list.findIndex((p) => p.seqno > value);
        obj.pt_list.splice(at < 0 ? obj.pt_list.length : at, 0, pt);
      }
    }
    timelineUnlock(t, obj, locked, 'spin_unlock_irq');
    return pt;
  },
);

/**
 * `SW_SYNC_IOC_CREATE_FENCE` (`sw_sync_ioctl_create_fence`): a point at
 * `value` in a new sync_file, which holds the only fence reference, at a new
 * fd of the calling process (`get_unused_fd_flags(O_CLOEXEC)`, then
 * `fd_install`, the last step); the fd, or -EMFILE with no fd free ([C9]).
 * Locking: none held (`sync_pt_create` takes the timeline lock); takes
 * `file_lock` for the fd.
 */
export const sw_sync_ioctl_create_fence = kfn(
  'sw_sync_ioctl_create_fence',
  function* (t: Task, obj: SyncTimeline, value: number): KGen<number> {
    const fd = yield* get_unused_fd_flags(t, O_CLOEXEC);
    if (fd < 0) return fd;
    const pt = yield* sync_pt_create(t, obj, value);
    const sf = yield* sync_file_create(t, pt);
    yield* dma_fence_put(t, pt);
    // data.fence = fd; copy_to_user(); then publish the file.
    yield* fd_install(t, fd, sf.file);
    return fd;
  },
);

interface SignalDecl {
  readonly obj: SyncTimeline;
  readonly inc: number;
}

/** The points a signal to `value` passes: a prefix of the list. */
function passed(obj: SyncTimeline, value: number): DmaFence[] {
  const r: DmaFence[] = [];
  for (const pt of obj.pt_list) {
    if (pt.seqno > value) break;
    r.push(pt);
  }
  return r;
}

/** A signal writes the points it passes; global when one has callbacks queued. */
function refreshSignal(s: Step): void {
  const { obj, inc } = s.arg as SignalDecl;
  s.nacc = 2;
  s.global = false;
  for (const pt of passed(obj, obj.value + inc)) {
    if (pt.cbs.length > 0) {
      s.global = true;
      return;
    }
    s.touch(pt, 'write');
  }
}

/**
 * `sync_timeline_signal()`: under the timeline lock, advance the value by
 * `inc` and signal, in order, every listed point it passed, unlinking each;
 * their callbacks run under the lock ([F2], [F6]). With `holdRef` (since 2023)
 * each point is referenced across its signal and put after the unlock; without
 * it a callback dropping a point's last reference releases it under the lock:
 * a recursive `deadlock` on the timeline lock.
 * Locking: takes `obj->lock` (irqs off): callers must not hold it.
 */
export const sync_timeline_signal = kfn(
  'sync_timeline_signal',
  function* (t: Task, obj: SyncTimeline, inc: number, holdRef: boolean = true): KGen {
    const s = t.at('sync_timeline_signal', 'signal', obj).touch(t.k.fenceStates, 'write');
    s.arg = { obj, inc } satisfies SignalDecl;
    s.refresh = refreshSignal;
    refreshSignal(s);
    yield s;
    const locked = timelineLock(t, obj, 'spin_lock_irq');
    obj.value += inc;
    const held: DmaFence[] = [];
    while (obj.pt_list.length > 0 && timeline_fence_signaled(obj, obj.pt_list[0] as DmaFence)) {
      const pt = obj.pt_list.shift() as DmaFence;
      if (holdRef) {
        pt.refcount++;
        held.push(pt);
      }
      dma_fence_signal_locked(t, pt);
    }
    timelineUnlock(t, obj, locked, 'spin_unlock_irq');
    for (const pt of held) yield* dma_fence_put(t, pt);
  },
);

/** `SW_SYNC_IOC_INC` (`sw_sync_ioctl_inc`): {@link sync_timeline_signal} by `inc`. Locking: none held. */
export const sw_sync_ioctl_inc = kfn(
  'sw_sync_ioctl_inc',
  function* (t: Task, obj: SyncTimeline, inc: number, holdRef: boolean = true): KGen<number> {
    yield* sync_timeline_signal(t, obj, inc, holdRef);
    return 0;
  },
);

/** Closing the file signals every listed point: global when one has callbacks queued. */
function refreshRelease(s: Step): void {
  const obj = s.arg as SyncTimeline;
  s.nacc = 2;
  s.global = false;
  for (const pt of obj.pt_list) {
    if (pt.cbs.length > 0) {
      s.global = true;
      return;
    }
    s.touch(pt, 'write');
  }
}

/**
 * `sw_sync_debugfs_release()`: the timeline's file is released (`__fput` of
 * its last reference, or a driver module that holds a timeline without a
 * file, at its teardown). Under the lock,
 * every listed point gets `-ENOENT` and is signalled, staying listed (its
 * release unlinks it); then the file's timeline reference is dropped ([F3]).
 * Locking: takes `obj->lock` (callbacks run under it, as in a signal).
 */
export const sw_sync_debugfs_release = kfn('sw_sync_debugfs_release', function* (t: Task, obj: SyncTimeline): KGen {
  const s = t.at('sw_sync_debugfs_release', 'signal', obj).touch(t.k.fenceStates, 'write');
  s.arg = obj;
  s.refresh = refreshRelease;
  refreshRelease(s);
  yield s;
  const locked = timelineLock(t, obj, 'spin_lock_irq');
  for (const pt of obj.pt_list.slice()) {
    // dma_fence_set_error(): before the signal, a negative errno ([F3]).
    if (!pt.signaled) pt.error = -ENOENT;
    dma_fence_signal_locked(t, pt);
  }
  timelineUnlock(t, obj, locked, 'spin_unlock_irq');
  sync_timeline_put(obj);
});

/** `sw_sync_debugfs_fops`: the timeline's debugfs file; its release is {@link sw_sync_debugfs_release}. */
export const sw_sync_debugfs_fops: FileOperations = {
  name: 'sw_sync_debugfs_fops',
  release: (t, file) => sw_sync_debugfs_release(t, file.private_data as SyncTimeline),
};
