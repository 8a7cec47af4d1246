/**
 * The poll and sync_file part of the dma-buf core: `dma_buf_poll` with its
 * fence callbacks, and the `DMA_BUF_IOCTL_EXPORT_SYNC_FILE` /
 * `DMA_BUF_IOCTL_IMPORT_SYNC_FILE` ioctls ([C9]). It mirrors the poll and
 * ioctl code of drivers/dma-buf/dma-buf.c; the buffer itself is dma-buf.ts.
 *
 * poll ([C9], [O1], [LT2] 2):
 * - EPOLLIN is ready when every WRITE-usage fence has signalled
 *   (`dma_resv_usage_rw(false)`); EPOLLOUT when every READ-usage one has
 *   (`dma_resv_usage_rw(true)`: readers and writers).
 * - Under resv, per direction asked: under the poll waitqueue's lock, if the
 *   direction's callback (`cb_in` / `cb_out`) is already armed, the event is
 *   not ready (that callback will wake the waiters); otherwise mark it
 *   active, take a file reference for it (`get_file`) and add it to the first
 *   unsignalled fence of the usage (a fence reference for the callback). If
 *   every fence had signalled, run the callback at once: the event is ready.
 * - The callback (`dma_buf_poll_cb`) runs when the fence signals — inside the
 *   signalling step, under the fence's lock, in the signaller's context: it
 *   wakes the waitqueue, clears `active`, puts the fence and `fput`s the file
 *   (the final `__fput` deferred to task work). That file reference lets the
 *   callback outlive the poller, its fd, and every other user: the last
 *   release may come from the signaller. Without it the buffer can be
 *   released with the callback armed — `dma_buf_release`'s BUG ([LT2] 2,
 *   `api-misuse`) — and the callback then runs on a released buffer
 *   (`refcount`, use after release). `getFile: false` models a poll that arms
 *   the callback without the reference (dma-buf before 2021: "dma-buf: fix
 *   and rework dma_buf_poll"): no `get_file`, no `fput`.
 * - `get_file` on a file whose count already dropped to 0 (its `__fput` has
 *   begun: only reachable from epoll before 2024, eventpoll.ts) is reported
 *   as `refcount`.
 *
 * sync_file ioctls ([C9]):
 * - the flags must be a non-empty subset of `DMA_BUF_SYNC_RW`, else -EINVAL;
 * - export: `dma_resv_get_singleton(usage_rw(flags & WRITE))`, or the stub
 *   fence when there is none, in a new sync_file;
 * - import: the sync_file's fence; with `unwrap` (current kernels) every fence
 *   inside a container (`dma_fence_unwrap_for_each`) — then under resv reserve
 *   that many slots and add each at WRITE (`DMA_BUF_SYNC_WRITE` set) or READ.
 *   `unwrap: false` adds the container itself, as the import did before it
 *   unwrapped: `dma_resv_add_fence` WARNs on a container ([R4], [R8]).
 *
 * Explorer declarations: `active` and the waitqueue's wake-up count are
 * state of the buffer, written in steps that declare a write of it; the
 * callback runs inside a signal step, which is global while callbacks are
 * queued. The waitqueue's spinlock is not a lockdep class here: its critical
 * sections are single steps.
 *
 * Models: drivers/dma-buf/dma-buf.c (dma_buf_poll, dma_buf_poll_add_cb,
 * dma_buf_poll_cb, dma_buf_export_sync_file, dma_buf_import_sync_file),
 * include/uapi/linux/dma-buf.h
 */
import { checkNotReleased } from '../checkers/api.ts';
import { type DmaBuf, type DmaBufPollCb, dma_buf_check_alive, dma_buf_put, get_dma_buf } from './dma-buf.ts';
import {
  type DmaFence,
  dma_fence_add_callback,
  dma_fence_get,
  dma_fence_get_stub,
  dma_fence_put,
  dma_fence_put_in_step,
} from './dma-fence.ts';
import {
  DMA_RESV_USAGE_READ,
  DMA_RESV_USAGE_WRITE,
  type DmaResv,
  dma_fence_unwrap,
  dma_resv_add_fence,
  dma_resv_for_each_fence,
  dma_resv_get_singleton,
  dma_resv_iter_begin,
  dma_resv_lock,
  dma_resv_reserve_fences,
  dma_resv_unlock,
  dma_resv_usage_rw,
} from './dma-resv.ts';
import { EINVAL, type Result } from './errno.ts';
import type { EpFileOps } from './eventpoll.ts';
import { type Blocker, type KGen, kfn, type Task } from './sched.ts';
import { type SyncFile, sync_file_create, sync_file_get_fence } from './sync-file.ts';

/** Poll events (include/uapi/linux/eventpoll.h). */
export const EPOLLIN = 0x001;
export const EPOLLOUT = 0x004;
export const EPOLLERR = 0x008;

/** `struct dma_buf_sync` / sync_file ioctl flags (include/uapi/linux/dma-buf.h). */
export const DMA_BUF_SYNC_READ = 1 << 0;
export const DMA_BUF_SYNC_WRITE = 2 << 0;
export const DMA_BUF_SYNC_RW = DMA_BUF_SYNC_READ | DMA_BUF_SYNC_WRITE;

/** Whether the callback of `dcb` holds a file reference (`getFile` was set when it was armed). */
const holdsFile = new WeakSet<DmaBufPollCb>();

/** `fput()` from a task: the final `__fput` runs as task work, when the thread returns to user space. */
function fputDeferred(t: Task, buf: DmaBuf): void {
  t.deferred.push((w) => dma_buf_put(w, buf));
}

/**
 * `dma_buf_poll_cb()` ([C9], [LT2] 2): wakes the waitqueue, clears `active`,
 * puts `fence` (when called as the fence's callback) and drops the file
 * reference `dma_buf_poll` took for it. Runs inside a step that declared a
 * write of the buffer (the signal step, global while callbacks are queued, or
 * the poller's own).
 * Locking: under the fence's lock when called as a callback; takes the
 * waitqueue's lock.
 */
function dma_buf_poll_cb(t: Task, fence: DmaFence | null, dcb: DmaBufPollCb): void {
  const buf = dcb.dmabuf;
  t.stack.push('dma_buf_poll_cb');
  checkNotReleased(
    t,
    buf,
    buf.released,
    'dma_buf_poll_cb',
    ['I7', 'LT2', 'C9'],
    `dma_buf_poll_cb on ${buf.name} after its release: the armed poll callback outlived the buffer (no file reference)`,
  );
  // spin_lock_irqsave(&dcb->poll->lock); wake_up_locked_poll(); dcb->active = 0.
  buf.pollWakeups++;
  dcb.active = 0;
  if (fence) dma_fence_put_in_step(t, fence);
  // Paired with the get_file in dma_buf_poll.
  if (holdsFile.delete(dcb)) fputDeferred(t, buf);
  t.stack.pop();
}

/** The callback bound to `dcb`, made once per buffer and direction. */
function pollCallback(dcb: DmaBufPollCb): (t: Task, f: DmaFence) => void {
  let h = dcb.handler;
  if (h === null) {
    h = (t: Task, f: DmaFence) => dma_buf_poll_cb(t, f, dcb);
    dcb.handler = h;
  }
  return h;
}

/**
 * `dma_buf_poll_add_cb()`: adds `dcb` to the first unsignalled fence of
 * `usage_rw(write)`, with a fence reference for the callback; false when every
 * fence has signalled ([C9], [F6]).
 * Locking: resv held (a locked walk, [R6]).
 */
export const dma_buf_poll_add_cb = kfn(
  'dma_buf_poll_add_cb',
  function* (t: Task, resv: DmaResv, write: boolean, dcb: DmaBufPollCb): KGen<boolean> {
    const cursor = dma_resv_iter_begin(resv, dma_resv_usage_rw(write));
    for (const fence of dma_resv_for_each_fence(t, cursor)) {
      yield* dma_fence_get(t, fence);
      if ((yield* dma_fence_add_callback(t, fence, dcb, pollCallback(dcb))) === 0) return true;
      yield* dma_fence_put(t, fence);
    }
    return false;
  },
);

/** One direction of {@link dma_buf_poll}: returns `events` without `ev` when it is not ready. */
function* pollDirection(
  t: Task,
  buf: DmaBuf,
  dcb: DmaBufPollCb,
  ev: number,
  events: number,
  getFile: boolean,
): KGen<number> {
  // spin_lock_irq(&dmabuf->poll.lock): is this direction's callback busy?
  yield t.at('dma_buf_poll', 'write', buf);
  if (dcb.active !== 0) return events & ~ev;
  dcb.active = ev;
  if (getFile) {
    // get_file(dmabuf->file): paired with the fput in dma_buf_poll_cb.
    yield* get_dma_buf(t, buf);
    if (buf.refcount <= 0 && buf.released === null) {
      // The count was 0 (get_dma_buf takes nothing then): __fput has begun.
      t.k.report(t, {
        code: 'refcount',
        what: 'use-after-release',
        object: buf.name,
        released: null,
        rules: ['LT1', 'I7', 'C9'],
        message: `get_file on ${buf.name} in dma_buf_poll after its last reference was dropped: its release has begun, and the callback's fput drops a reference nobody holds`,
      });
    }
    holdsFile.add(dcb);
  }
  if (yield* dma_buf_poll_add_cb(t, buf.resv, ev === EPOLLOUT, dcb)) return events & ~ev;
  // No callback queued: run it now, waking any other waiter.
  yield t.at('dma_buf_poll_cb', 'write', buf);
  dma_buf_poll_cb(t, null, dcb);
  return events;
}

/**
 * `dma_buf_poll()` (`file->f_op->poll`): which of `requested` (EPOLLIN,
 * EPOLLOUT) are ready, arming a callback per direction that is not ([C9]).
 * `getFile: false` arms it without the file reference (the pre-2021 poll).
 * Locking: must be called without resv held; takes it ([L2]).
 */
export const dma_buf_poll = kfn(
  'dma_buf_poll',
  function* (t: Task, buf: DmaBuf, requested: number, getFile: boolean = true): KGen<number> {
    let events = requested & (EPOLLIN | EPOLLOUT);
    if (events === 0) return 0;
    yield* dma_resv_lock(t, buf.resv, null);
    dma_buf_check_alive(t, buf, 'dma_buf_poll');
    if (events & EPOLLOUT) events = yield* pollDirection(t, buf, buf.cb_out, EPOLLOUT, events, getFile);
    if (events & EPOLLIN) events = yield* pollDirection(t, buf, buf.cb_in, EPOLLIN, events, getFile);
    yield* dma_resv_unlock(t, buf.resv);
    return events;
  },
);

/** The blocker of a sleeping poller: the waitqueue was woken since it looked. */
class PollWakeup implements Blocker {
  constructor(
    readonly buf: DmaBuf,
    readonly seen: number,
  ) {}

  ready(): boolean {
    return this.buf.pollWakeups !== this.seen;
  }
}

/**
 * `poll_wait()` registration, as a number to sleep on: the waitqueue's wake-up
 * count now. The caller declared a step touching the buffer.
 */
export function poll_wait_seen(buf: DmaBuf): number {
  return buf.pollWakeups;
}

/**
 * `poll_schedule_timeout()` without a timeout: sleeps until the waitqueue is
 * woken after `seen` (see {@link poll_wait_seen}).
 */
export function* poll_schedule(t: Task, buf: DmaBuf, seen: number): KGen {
  yield t.at('poll_schedule_timeout', 'wait', buf, new PollWakeup(buf, seen));
}

/** `dma_buf_fops` as epoll sees it: `dma_buf_poll`, with or without the callback's file reference. */
export const DMA_BUF_FOPS: EpFileOps = { poll: (t, f, ev) => dma_buf_poll(t, f, ev, true), fput: fputDeferred };
export const DMA_BUF_FOPS_NO_GET_FILE: EpFileOps = {
  poll: (t, f, ev) => dma_buf_poll(t, f, ev, false),
  fput: fputDeferred,
};

/** The flags check both sync_file ioctls make: a non-empty subset of `DMA_BUF_SYNC_RW` ([C9]). */
function badSyncFlags(flags: number): boolean {
  return (flags & ~DMA_BUF_SYNC_RW) !== 0 || (flags & DMA_BUF_SYNC_RW) === 0;
}

/**
 * `DMA_BUF_IOCTL_EXPORT_SYNC_FILE` (`dma_buf_export_sync_file`): a new
 * sync_file carrying `dma_resv_get_singleton(usage_rw(flags & WRITE))`, or
 * the signalled stub fence when there is none; -EINVAL for bad flags ([C9],
 * [R8]). The caller installs it in its fd table.
 * Locking: resv not held (the singleton is an unlocked walk).
 */
export const dma_buf_export_sync_file = kfn(
  'dma_buf_export_sync_file',
  function* (t: Task, buf: DmaBuf, flags: number): KGen<Result<SyncFile>> {
    if (badSyncFlags(flags)) return -EINVAL;
    const usage = dma_resv_usage_rw((flags & DMA_BUF_SYNC_WRITE) !== 0);
    let fence = yield* dma_resv_get_singleton(t, buf.resv, usage);
    dma_buf_check_alive(t, buf, 'dma_buf_export_sync_file');
    if (fence === null) fence = yield* dma_fence_get_stub(t);
    const sf = yield* sync_file_create(t, fence);
    yield* dma_fence_put(t, fence);
    return sf;
  },
);

/**
 * `DMA_BUF_IOCTL_IMPORT_SYNC_FILE` (`dma_buf_import_sync_file`): adds the
 * sync_file's fence to the buffer's resv at WRITE (`DMA_BUF_SYNC_WRITE` set)
 * or READ usage; with `unwrap` each fence inside a container, after reserving
 * that many slots in one lock hold ([C9], [R3], [R4]). 0, -EINVAL for bad
 * flags or a closed sync_file.
 * Locking: must be called without resv held; takes it.
 */
export const dma_buf_import_sync_file = kfn(
  'dma_buf_import_sync_file',
  function* (t: Task, buf: DmaBuf, flags: number, sf: SyncFile, unwrap: boolean = true): KGen<number> {
    if (badSyncFlags(flags)) return -EINVAL;
    const fence = yield* sync_file_get_fence(t, sf);
    if (fence === null) return -EINVAL;
    const usage = (flags & DMA_BUF_SYNC_WRITE) !== 0 ? DMA_RESV_USAGE_WRITE : DMA_RESV_USAGE_READ;
    const fences = unwrap ? dma_fence_unwrap(fence) : [fence];
    let ret = 0;
    if (fences.length > 0) {
      yield* dma_resv_lock(t, buf.resv, null);
      dma_buf_check_alive(t, buf, 'dma_buf_import_sync_file');
      ret = dma_resv_reserve_fences(t, buf.resv, fences.length);
      if (ret === 0) for (const f of fences) yield* dma_resv_add_fence(t, buf.resv, f, usage);
      yield* dma_resv_unlock(t, buf.resv);
    }
    yield* dma_fence_put(t, fence);
    return ret;
  },
);
