/**
 * The `dma-buf-user` importer: a user-space process holding the buffer's fd
 * and using the fd's own uapi — poll, epoll, the sync_file ioctls — with a
 * sw_sync timeline to make fences it signals itself ([C9]). Threads of a
 * scenario that name it are threads of this one process: they share its fd
 * table.
 *
 * - attach: the process gets an fd for the buffer (`dma_buf_get`: a file
 *   reference); `close` (also `detach`) closes it (`fput`).
 * - `poll {events, wait}`: poll(2) on the fd — `dma_buf_poll`; with
 *   `wait: true` it sleeps on the buffer's waitqueue until a requested event
 *   is ready, polling again after each wake-up.
 * - `epoll_add {events}`, `epoll_del`, `epoll_wait`: the process's epoll set
 *   watching the fd (eventpoll.ts); `epoll_wait` polls once, never sleeps.
 * - `export_sync_file {flags}`, `import_sync_file {flags, sync_file}`: the
 *   dma-buf sync_file ioctls (dma-buf-poll.ts); `close_sync_file
 *   {sync_file}` closes a sync_file fd. `sync_file` numbers the sync_files
 *   the process got (exported or created), from 0; -1 (default) is the last.
 * - `sw_sync_create_fence {value}`, `sw_sync_inc {by}`: the process's sw_sync
 *   timeline (sw-sync.ts); the new fence comes in a sync_file fd.
 *
 * Every op on the buffer's fd holds a reference for the call (`fdget`, taken
 * atomically with the fd lookup: the fd table is shared between the threads);
 * an op on a closed fd returns -EBADF and does nothing. An error an ioctl
 * returns to user space is not a finding.
 *
 * Options model kernels with known bugs: `poll_file_ref: false` (a poll that
 * arms its callback without a file reference, before 2021), `epi_fget:
 * false` (epoll before 2024), `import_unwrap: false` (the sync_file import
 * before it unwrapped containers), `sw_sync_signal_ref: false` (sw_sync
 * before 2023).
 *
 * Teardown: the process exits and its files are closed in fd order: the
 * buffer's fd, the epoll fd (`ep_free`), the sw_sync timeline
 * (`sw_sync_debugfs_release`: pending fences signal with -ENOENT), then the
 * sync_files in the order they were made; then the deferred fputs run.
 *
 * Models: a process using drivers/dma-buf/dma-buf.c's file operations,
 * fs/eventpoll.c, drivers/dma-buf/sw_sync.c and sync_file.c from user space
 */
import { type DmaBuf, dma_buf_check_alive, dma_buf_put } from '../../kernel/dma-buf.ts';
import {
  DMA_BUF_FOPS,
  DMA_BUF_FOPS_NO_GET_FILE,
  DMA_BUF_SYNC_READ,
  DMA_BUF_SYNC_RW,
  DMA_BUF_SYNC_WRITE,
  dma_buf_export_sync_file,
  dma_buf_import_sync_file,
  dma_buf_poll,
  EPOLLIN,
  EPOLLOUT,
  poll_schedule,
} from '../../kernel/dma-buf-poll.ts';
import { EBADF, EINVAL, isErr } from '../../kernel/errno.ts';
import {
  type EventPoll,
  ep_free,
  epoll_create,
  epoll_ctl_add,
  epoll_ctl_del,
  epoll_wait,
} from '../../kernel/eventpoll.ts';
import type { Kernel } from '../../kernel/kernel.ts';
import { type KGen, KObject, kfn, type Task } from '../../kernel/sched.ts';
import {
  type SyncTimeline,
  sw_sync_debugfs_release,
  sw_sync_ioctl_create_fence,
  sw_sync_ioctl_inc,
  sync_timeline_create,
} from '../../kernel/sw-sync.ts';
import { type SyncFile, sync_file_fput } from '../../kernel/sync-file.ts';
import { type ArgSpec, defineImporter, type ImporterEnv, type ImporterInstance, type OpArgs } from '../driver.ts';

/** The process's fd table (`files_struct`), shared by its threads. */
class Files extends KObject {
  readonly type = 'files_struct';
  /** The buffer's fd is open. */
  dmabuf = false;
  /** The sync_file fds, in the order the process got them; null once closed. */
  readonly syncFiles: (SyncFile | null)[] = [];

  constructor(k: Kernel, name: string) {
    super(k, name);
  }

  override snapshot(): Record<string, unknown> {
    return { dmabuf: this.dmabuf, sync_files: this.syncFiles.map((s) => s?.name ?? null) };
  }

  /** The sync_file numbered `n` (-1: the last one got), or null. */
  syncFile(n: number): SyncFile | null {
    return this.syncFiles[n < 0 ? this.syncFiles.length - 1 : n] ?? null;
  }
}

const EVENTS: Readonly<Record<string, number>> = { in: EPOLLIN, out: EPOLLOUT, inout: EPOLLIN | EPOLLOUT };
const FLAGS: Readonly<Record<string, number>> = {
  read: DMA_BUF_SYNC_READ,
  write: DMA_BUF_SYNC_WRITE,
  rw: DMA_BUF_SYNC_RW,
  none: 0,
};

class DmaBufUser implements ImporterInstance {
  readonly attachCall = 'dma_buf_get';
  readonly files: Files;
  readonly ep: EventPoll;
  readonly timeline: SyncTimeline;
  readonly getFile: boolean;
  readonly epiFget: boolean;
  readonly unwrap: boolean;
  readonly signalRef: boolean;

  constructor(readonly env: ImporterEnv) {
    this.files = new Files(env.k, `${env.name}:files`);
    this.ep = epoll_create(env.k, `${env.name}:epoll`);
    this.timeline = sync_timeline_create(env.k, `${env.name}:sw_sync`);
    this.getFile = env.options.poll_file_ref !== false;
    this.epiFget = env.options.epi_fget !== false;
    this.unwrap = env.options.import_unwrap !== false;
    this.signalRef = env.options.sw_sync_signal_ref !== false;
  }

  get buf(): DmaBuf {
    return this.env.buffer;
  }

  /** `dma_buf_get(fd)` as the process sees it: a file reference, installed as its fd. */
  *attach(t: Task): KGen<number> {
    yield t.at('fd_install', 'write', this.files).touch(this.buf, 'write');
    if (this.files.dmabuf) return 0;
    if (!dma_buf_check_alive(t, this.buf, 'dma_buf_get') || this.buf.refcount <= 0) return -EBADF;
    this.buf.refcount++;
    this.files.dmabuf = true;
    return 0;
  }

  *detach(t: Task): KGen {
    yield* DmaBufUser.kops.close(t, this);
  }

  readonly ops = {
    poll: (t: Task, a: OpArgs) => DmaBufUser.kops.poll(t, this, a),
    close: (t: Task) => DmaBufUser.kops.close(t, this),
    epoll_add: (t: Task, a: OpArgs) => DmaBufUser.kops.epoll_add(t, this, a),
    epoll_del: (t: Task) => DmaBufUser.kops.epoll_del(t, this),
    epoll_wait: (t: Task) => DmaBufUser.kops.epoll_wait(t, this),
    export_sync_file: (t: Task, a: OpArgs) => DmaBufUser.kops.export_sync_file(t, this, a),
    import_sync_file: (t: Task, a: OpArgs) => DmaBufUser.kops.import_sync_file(t, this, a),
    close_sync_file: (t: Task, a: OpArgs) => DmaBufUser.kops.close_sync_file(t, this, a),
    sw_sync_create_fence: (t: Task, a: OpArgs) => DmaBufUser.kops.sw_sync_create_fence(t, this, a),
    sw_sync_inc: (t: Task, a: OpArgs) => DmaBufUser.kops.sw_sync_inc(t, this, a),
  };

  /** The ops as kernel entry points (syscalls), made once for the class. */
  private static readonly kops = {
    poll: kfn('do_sys_poll', (t: Task, self: DmaBufUser, a: OpArgs) =>
      self.poll(t, EVENTS[String(a.events)] ?? 0, a.wait === true),
    ),
    close: kfn('close_fd', (t: Task, self: DmaBufUser) => self.close(t)),
    epoll_add: kfn('do_epoll_ctl', (t: Task, self: DmaBufUser, a: OpArgs) =>
      self.epollAdd(t, EVENTS[String(a.events)] ?? 0),
    ),
    epoll_del: kfn('do_epoll_ctl', (t: Task, self: DmaBufUser) => self.epollDel(t)),
    epoll_wait: kfn('do_epoll_wait', (t: Task, self: DmaBufUser) => self.epollWait(t)),
    export_sync_file: kfn('dma_buf_ioctl', (t: Task, self: DmaBufUser, a: OpArgs) =>
      self.exportSyncFile(t, FLAGS[String(a.flags)] ?? 0),
    ),
    import_sync_file: kfn('dma_buf_ioctl', (t: Task, self: DmaBufUser, a: OpArgs) =>
      self.importSyncFile(t, FLAGS[String(a.flags)] ?? 0, Number(a.sync_file)),
    ),
    close_sync_file: kfn('close_fd', (t: Task, self: DmaBufUser, a: OpArgs) =>
      self.closeSyncFile(t, Number(a.sync_file)),
    ),
    sw_sync_create_fence: kfn('sw_sync_ioctl', (t: Task, self: DmaBufUser, a: OpArgs) =>
      self.createFence(t, Number(a.value)),
    ),
    sw_sync_inc: kfn('sw_sync_ioctl', (t: Task, self: DmaBufUser, a: OpArgs) =>
      sw_sync_ioctl_inc(t, self.timeline, Number(a.by), self.signalRef),
    ),
  };

  /**
   * `fdget()` of the buffer's fd: the lookup and the file reference in one
   * step (`fget`: RCU lookup and `get_file`), so a concurrent close cannot
   * release the file under the call. False when the fd is closed.
   */
  private *fdget(t: Task): KGen<boolean> {
    yield t.at('fdget', 'write', this.buf).touch(this.files, 'read');
    if (!this.files.dmabuf) return false;
    this.buf.refcount++;
    return true;
  }

  /**
   * `fdput()`: drops the call's reference. While others remain it is a plain
   * decrement (a write of the buffer); the last one is `dma_buf_put`, whose
   * release runs on the way back to user space: here and now.
   */
  private *fdput(t: Task): KGen {
    yield t.at('fdput', 'write', this.buf);
    if (this.buf.refcount > 1) {
      this.buf.refcount--;
      return;
    }
    yield* dma_buf_put(t, this.buf);
  }

  private *poll(t: Task, events: number, wait: boolean): KGen<number> {
    if (!(yield* this.fdget(t))) return -EBADF;
    // poll_wait(): registered before the first poll, so no wake-up is missed.
    let seen = this.buf.pollWakeups;
    let r = 0;
    for (;;) {
      r = yield* dma_buf_poll(t, this.buf, events, this.getFile);
      if ((r & events) !== 0 || !wait) break;
      yield* poll_schedule(t, this.buf, seen);
      seen = this.buf.pollWakeups;
    }
    yield* this.fdput(t);
    return r;
  }

  private *close(t: Task): KGen<number> {
    yield t.at('close_fd', 'write', this.files);
    if (!this.files.dmabuf) return -EBADF;
    this.files.dmabuf = false;
    // filp_close() → fput(): the final __fput runs on the way back to user space.
    yield* dma_buf_put(t, this.buf);
    return 0;
  }

  private *epollAdd(t: Task, events: number): KGen<number> {
    if (!(yield* this.fdget(t))) return -EBADF;
    const fops = this.getFile ? DMA_BUF_FOPS : DMA_BUF_FOPS_NO_GET_FILE;
    const r = yield* epoll_ctl_add(t, this.ep, this.buf, events, fops, this.epiFget);
    yield* this.fdput(t);
    return r;
  }

  private *epollDel(t: Task): KGen<number> {
    if (!(yield* this.fdget(t))) return -EBADF;
    const r = yield* epoll_ctl_del(t, this.ep, this.buf);
    yield* this.fdput(t);
    return r;
  }

  private *epollWait(t: Task): KGen<number> {
    return yield* epoll_wait(t, this.ep, this.epiFget);
  }

  /** `fd_install()` of a new sync_file. */
  private *installSyncFile(t: Task, sf: SyncFile): KGen {
    yield t.at('fd_install', 'write', this.files);
    this.files.syncFiles.push(sf);
  }

  private *exportSyncFile(t: Task, flags: number): KGen<number> {
    if (!(yield* this.fdget(t))) return -EBADF;
    const sf = yield* dma_buf_export_sync_file(t, this.buf, flags);
    if (!isErr(sf)) yield* this.installSyncFile(t, sf);
    yield* this.fdput(t);
    return isErr(sf) ? sf : 0;
  }

  private *importSyncFile(t: Task, flags: number, n: number): KGen<number> {
    if (!(yield* this.fdget(t))) return -EBADF;
    // The sync_file's fd, looked up in the same fd table (the fdget step read it).
    const sf = this.files.syncFile(n);
    const r = sf ? yield* dma_buf_import_sync_file(t, this.buf, flags, sf, this.unwrap) : -EINVAL;
    yield* this.fdput(t);
    return r;
  }

  private *closeSyncFile(t: Task, n: number): KGen<number> {
    yield t.at('close_fd', 'write', this.files);
    const i = n < 0 ? this.files.syncFiles.length - 1 : n;
    const sf = this.files.syncFiles[i] ?? null;
    if (!sf) return -EBADF;
    this.files.syncFiles[i] = null;
    yield* sync_file_fput(t, sf);
    return 0;
  }

  private *createFence(t: Task, value: number): KGen<number> {
    const sf = yield* sw_sync_ioctl_create_fence(t, this.timeline, value);
    yield* this.installSyncFile(t, sf);
    return 0;
  }

  /** Process exit: every file closed in fd order, then the deferred fputs. */
  *teardown(t: Task): KGen {
    yield* this.close(t);
    yield* ep_free(t, this.ep);
    yield* sw_sync_debugfs_release(t, this.timeline);
    for (let i = 0; i < this.files.syncFiles.length; i++) yield* this.closeSyncFile(t, i);
    while (t.deferred.length > 0) yield* (t.deferred.shift() as (t: Task) => KGen)(t);
  }
}

const EVENTS_ARG: ArgSpec = {
  type: 'enum',
  values: ['in', 'out', 'inout'],
  default: 'in',
  doc: 'EPOLLIN (WRITE fences signalled), EPOLLOUT (READ and WRITE fences signalled), or both',
};
const FLAGS_ARG: ArgSpec = {
  type: 'enum',
  values: ['write', 'read', 'rw', 'none'],
  default: 'write',
  doc: 'DMA_BUF_SYNC_WRITE, _READ, _RW, or none (-EINVAL)',
};
const SYNC_FILE_ARG: ArgSpec = {
  type: 'int',
  min: -1,
  max: 63,
  default: -1,
  doc: 'which sync_file fd: the n-th the process got (from 0), -1 the last',
};

export const dmaBufUser = defineImporter({
  name: 'dma-buf-user',
  summary: 'a user process with the dma-buf fd: poll, epoll, the sync_file ioctls, and a sw_sync timeline',
  options: {
    poll_file_ref: {
      type: 'boolean',
      default: true,
      doc: 'false: dma_buf_poll arms its fence callback without a file reference (get_file / fput), as before 2021: the buffer can be released with the callback armed ([LT2] 2)',
    },
    epi_fget: {
      type: 'boolean',
      default: true,
      doc: 'false: epoll polls the file without a temporary reference (before 2024): it can poll a file whose release has begun',
    },
    import_unwrap: {
      type: 'boolean',
      default: true,
      doc: 'false: DMA_BUF_IOCTL_IMPORT_SYNC_FILE adds the sync_file fence as is, a container included (dma_resv_add_fence WARNs, [R4])',
    },
    sw_sync_signal_ref: {
      type: 'boolean',
      default: true,
      doc: 'false: SW_SYNC_IOC_INC signals without its own fence reference (before 2023): a callback dropping the last one releases the fence under the timeline lock, which the release takes again',
    },
  },
  ops: {
    poll: {
      doc: 'poll(2) on the fd (dma_buf_poll); wait: true sleeps until a requested event is ready',
      args: { events: EVENTS_ARG, wait: { type: 'boolean', default: false, doc: 'sleep until ready (timeout -1)' } },
    },
    close: { doc: 'close the fd (fput)' },
    epoll_add: { doc: 'EPOLL_CTL_ADD the fd to the process epoll set (polls it once)', args: { events: EVENTS_ARG } },
    epoll_del: { doc: 'EPOLL_CTL_DEL the fd' },
    epoll_wait: { doc: 'epoll_wait with timeout 0: poll every watched file once under ep->mtx' },
    export_sync_file: {
      doc: 'DMA_BUF_IOCTL_EXPORT_SYNC_FILE: a sync_file of the fences (get_singleton, or the stub)',
      args: { flags: FLAGS_ARG },
    },
    import_sync_file: {
      doc: 'DMA_BUF_IOCTL_IMPORT_SYNC_FILE: add a sync_file fence to the resv at WRITE or READ',
      args: { flags: FLAGS_ARG, sync_file: SYNC_FILE_ARG },
    },
    close_sync_file: { doc: 'close a sync_file fd (its fence reference goes)', args: { sync_file: SYNC_FILE_ARG } },
    sw_sync_create_fence: {
      doc: 'SW_SYNC_IOC_CREATE_FENCE: a fence at value on the timeline, in a new sync_file fd',
      args: { value: { type: 'int', min: 0, max: 1000, required: true, doc: 'the fence seqno' } },
    },
    sw_sync_inc: {
      doc: 'SW_SYNC_IOC_INC: advance the timeline, signalling every fence it passes (callbacks under the timeline lock)',
      args: { by: { type: 'int', min: 1, max: 1000, default: 1, doc: 'the increment' } },
    },
  },
  create: (env) => new DmaBufUser(env),
});
