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
 * - It is the dma-buf file's `f_op->poll` (`dma_buf_fops`, dma-buf.ts), so
 *   poll(2) and epoll reach it through `vfs_poll` (eventpoll.ts).
 * - Under resv, per direction asked: under the poll waitqueue's lock, if the
 *   direction's callback (`cb_in` / `cb_out`) is already armed, the event is
 *   not ready (that callback will wake the waiters); otherwise mark it
 *   active, take a reference on the buffer's file for it (file.ts's
 *   `get_file`) and add it to the first unsignalled fence of the usage (a
 *   fence reference for the callback). If every fence had signalled, run the
 *   callback at once: the event is ready.
 * - The callback (`dma_buf_poll_cb`) runs when the fence signals — inside the
 *   signalling step, under the fence's lock, in the signaller's context: it
 *   wakes the waitqueue, clears `active`, puts the fence and `fput`s the file
 *   (file.ts's `fput_in_step`: the count drops in that step; the final
 *   `__fput` is queued to the signaller's task work). That file reference
 *   lets the callback outlive the poller, its fd, and every other user: the
 *   last release may come from the signaller. Without it the buffer can be
 *   released with the callback armed — `dma_buf_release`'s BUG ([LT2] 2,
 *   `api-misuse`) — and the callback then runs on a released buffer
 *   (`refcount`, use after release). `getFile: false` models a poll that arms
 *   the callback without the reference (dma-buf before 2021: "dma-buf: fix
 *   and rework dma_buf_poll"): no `get_file`, no `fput`. Through `vfs_poll`
 *   the choice is the buffer's `pollFileRef` (set by the `dma-buf-user`
 *   importer's `poll_file_ref` option).
 * - `get_file` on a file whose count already dropped to 0 (its `__fput` has
 *   begun: only reachable from epoll before 2024, eventpoll.ts) is file.ts's
 *   resurrection (`refcount`, [LT1], [I7]).
 *
 * sync_file ioctls ([C9]):
 * - the flags must be a non-empty subset of `DMA_BUF_SYNC_RW`, else -EINVAL;
 * - export: `dma_resv_get_singleton(usage_rw(flags & WRITE))`, or the stub
 *   fence when there is none, in a new sync_file installed at a new fd of the
 *   process (`get_unused_fd_flags`, `fd_install`), which the ioctl returns;
 * - import: the fence of the sync_file at the fd passed (`sync_file_get_fence`:
 *   `fget`, `dma_fence_get`, `fput`); with `unwrap` (current kernels) every fence
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
import type { DmaBuf, DmaBufPollCb } from './dma-buf.ts';
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
import { EINVAL } from './errno.ts';
import { EPOLLIN, EPOLLOUT } from './eventpoll.ts';
import { fd_install, fput_in_step, get_file, get_unused_fd_flags, O_CLOEXEC } from './file.ts';
import { type Blocker, type KGen, kfn, type Task } from './sched.ts';
import { sync_file_create, sync_file_get_fence } from './sync-file.ts';

/** `struct dma_buf_sync` / sync_file ioctl flags (include/uapi/linux/dma-buf.h). */
export const DMA_BUF_SYNC_READ = 1 << 0;
export const DMA_BUF_SYNC_WRITE = 2 << 0;
export const DMA_BUF_SYNC_RW = DMA_BUF_SYNC_READ | DMA_BUF_SYNC_WRITE;

/** Whether the callback of `dcb` holds a file reference (`getFile` was set when it was armed). */
const holdsFile = new WeakSet<DmaBufPollCb>();

/**
 * The "is it still alive" check of dma-buf.ts's `dma_buf_check_alive` (this
 * module imports no functions from dma-buf.ts, which imports it for
 * `dma_buf_fops.poll`).
 */
function checkAlive(t: Task, buf: DmaBuf, call: string): boolean {
  return checkNotReleased(t, buf, buf.released, call, ['I7', 'LT2']);
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
  // fput(dmabuf->file): paired with the get_file in dma_buf_poll.
  if (holdsFile.delete(dcb)) fput_in_step(t, buf.file);
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
    // get_file(dmabuf->file): paired with the fput in dma_buf_poll_cb. On a
    // count of 0 (epoll before 2024 polling a file in __fput) file.ts reports
    // the resurrection.
    yield* get_file(t, buf.file);
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
 * `getFile: false` arms it without the file reference (the pre-2021 poll);
 * the default is the buffer's `pollFileRef`.
 * Locking: must be called without resv held; takes it ([L2]). The caller
 * holds a reference on the file (its `fdget`, or epoll's `epi_fget`).
 */
export const dma_buf_poll = kfn(
  'dma_buf_poll',
  function* (t: Task, buf: DmaBuf, requested: number, getFile: boolean = buf.pollFileRef): KGen<number> {
    let events = requested & (EPOLLIN | EPOLLOUT);
    if (events === 0) return 0;
    yield* dma_resv_lock(t, buf.resv, null);
    checkAlive(t, buf, 'dma_buf_poll');
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

/** The flags check both sync_file ioctls make: a non-empty subset of `DMA_BUF_SYNC_RW` ([C9]). */
function badSyncFlags(flags: number): boolean {
  return (flags & ~DMA_BUF_SYNC_RW) !== 0 || (flags & DMA_BUF_SYNC_RW) === 0;
}

/**
 * `DMA_BUF_IOCTL_EXPORT_SYNC_FILE` (`dma_buf_export_sync_file`): a new fd of
 * the calling process (`get_unused_fd_flags(O_CLOEXEC)`) for a new sync_file
 * carrying `dma_resv_get_singleton(usage_rw(flags & WRITE))`, or the signalled
 * stub fence when there is none; the fd (installed with `fd_install`, the
 * last step), or -EINVAL for bad flags, -EMFILE with no fd free ([C9], [R8]).
 * Locking: resv not held (the singleton is an unlocked walk); takes
 * `file_lock` for the fd.
 */
export const dma_buf_export_sync_file = kfn(
  'dma_buf_export_sync_file',
  function* (t: Task, buf: DmaBuf, flags: number): KGen<number> {
    if (badSyncFlags(flags)) return -EINVAL;
    const fd = yield* get_unused_fd_flags(t, O_CLOEXEC);
    if (fd < 0) return fd;
    const usage = dma_resv_usage_rw((flags & DMA_BUF_SYNC_WRITE) !== 0);
    let fence = yield* dma_resv_get_singleton(t, buf.resv, usage);
    checkAlive(t, buf, 'dma_buf_export_sync_file');
    if (fence === null) fence = yield* dma_fence_get_stub(t);
    const sf = yield* sync_file_create(t, fence);
    yield* dma_fence_put(t, fence);
    // arg.fd = fd; copy_to_user(); then publish the file.
    yield* fd_install(t, fd, sf.file);
    return fd;
  },
);

/**
 * `DMA_BUF_IOCTL_IMPORT_SYNC_FILE` (`dma_buf_import_sync_file`): adds the
 * fence of the sync_file at `fd` to the buffer's resv at WRITE
 * (`DMA_BUF_SYNC_WRITE` set) or READ usage; with `unwrap` each fence inside a
 * container, after reserving that many slots in one lock hold ([C9], [R3],
 * [R4]). 0, -EINVAL for bad flags or an fd that holds no sync_file.
 * Locking: must be called without resv held; takes it.
 */
export const dma_buf_import_sync_file = kfn(
  'dma_buf_import_sync_file',
  function* (t: Task, buf: DmaBuf, flags: number, fd: number, unwrap: boolean = true): KGen<number> {
    if (badSyncFlags(flags)) return -EINVAL;
    const fence = yield* sync_file_get_fence(t, fd);
    if (fence === null) return -EINVAL;
    const usage = (flags & DMA_BUF_SYNC_WRITE) !== 0 ? DMA_RESV_USAGE_WRITE : DMA_RESV_USAGE_READ;
    const fences = unwrap ? dma_fence_unwrap(fence) : [fence];
    let ret = 0;
    if (fences.length > 0) {
      yield* dma_resv_lock(t, buf.resv, null);
      checkAlive(t, buf, 'dma_buf_import_sync_file');
      ret = dma_resv_reserve_fences(t, buf.resv, fences.length);
      if (ret === 0) for (const f of fences) yield* dma_resv_add_fence(t, buf.resv, f, usage);
      yield* dma_resv_unlock(t, buf.resv);
    }
    yield* dma_fence_put(t, fence);
    return ret;
  },
);
