/**
 * The `dma-buf-user` importer: a user-space process holding the buffer's fd
 * and using the fd's own uapi — poll, epoll, the sync_file ioctls — with a
 * sw_sync timeline to make fences it signals itself ([C9]). Its fds live in
 * the one fd table every scenario thread shares (kernel/file.ts,
 * `current_files`): the buffer's file (`DmaBuf.file`), the epoll set's, the
 * sw_sync timeline's and the sync_files' are all `struct file`s with
 * `f_count`, installed with `fd_install`, looked up with `fget`, closed with
 * `close_fd` (the last `fput`'s `__fput` runs as task work).
 *
 * - attach: the process gets a new fd for the buffer from the exporter, the
 *   way a PRIME export ioctl hands one out: `get_dma_buf`, then `dma_buf_fd`
 *   (which gives the reference to the fd table). `close` (also `detach`)
 *   closes that fd (`close_fd` → `fput`).
 * - At the end of setup (also with `attach: manual`) the process opens its
 *   epoll set (`epoll_create1`) and its sw_sync timeline (debugfs
 *   `sync/sw_sync`), each at a new fd.
 * - `poll {events, wait}`: poll(2) on the fd — `vfs_poll`, i.e. the dma-buf
 *   file's `dma_buf_poll`; with `wait: true` it sleeps on the buffer's
 *   waitqueue until a requested event is ready, polling again after each
 *   wake-up.
 * - `epoll_add {events}`, `epoll_del`, `epoll_wait`: the process's epoll set
 *   watching the buffer's file (eventpoll.ts); `epoll_wait` polls once, never
 *   sleeps.
 * - `export_sync_file {flags}`, `import_sync_file {flags, sync_file}`: the
 *   dma-buf sync_file ioctls (dma-buf-poll.ts): the export installs a
 *   sync_file at a new fd, the import looks one up (`sync_file_get_fence`);
 *   `close_sync_file {sync_file}` closes a sync_file fd. `sync_file` numbers
 *   the sync_file fds the process got (exported or created), from 0; -1
 *   (default) is the last.
 * - `sw_sync_create_fence {value}`, `sw_sync_inc {by}`: the process's sw_sync
 *   timeline (sw-sync.ts); the new fence comes in a sync_file at a new fd.
 *
 * Every syscall on the buffer's fd looks it up and holds a reference for the
 * call (`fdget`, which is `fget` here: the table is shared by the threads),
 * dropped with `fput` at the end (`fdput`); on a closed fd the op returns
 * -EBADF and does nothing. An ioctl on an fd that holds another kind of file
 * returns -ENOTTY. An error an ioctl returns to user space is not a finding.
 *
 * User space keeps the fds it got (its own memory), also after closing one,
 * as a program that does not reset its variable: an op on a closed fd gets
 * -EBADF, or — once a new file took the same number (the lowest free fd is
 * reused) — acts on that file, as a stale fd does. A new fd is recorded in the
 * step that installs it (the syscall's return value, a write of the fd table,
 * which stands for that memory) and loaded in a step that reads the table:
 * the sync_file fds in a `sys_close` step or in the buffer fd's `fget`; the
 * buffer's fd, constant when `attach` ran at setup, in a `sys_*` step when a
 * thread's `attach` op (`attach: manual`) records it.
 *
 * Simplifications: the epoll and sw_sync fds are never closed before the
 * process exits, so their lookups are not modelled (the process uses their
 * files directly: an `fdget` that always succeeds and whose reference no one
 * else sees).
 *
 * Options model kernels with known bugs: `poll_file_ref: false` (a poll that
 * arms its callback without a file reference, before 2021; it sets the
 * buffer's `pollFileRef`, so epoll's polls use it too), `epi_fget: false`
 * (epoll before 2024), `import_unwrap: false` (the sync_file import before it
 * unwrapped containers), `sw_sync_signal_ref: false` (sw_sync before 2023).
 *
 * Teardown: nothing of its own: the process exits with the scenario's
 * (`close_files`): every fd is closed in fd order — the buffer's, the epoll
 * set's, the timeline's, then the sync_files' — and the `__fput`s run as task
 * work in that order: `dma_buf_release` if it was the last reference,
 * `ep_free`, `sw_sync_debugfs_release` (pending fences signal with -ENOENT,
 * so armed poll callbacks run), the sync_files' fence puts.
 *
 * Models: a process using drivers/dma-buf/dma-buf.c's file operations,
 * fs/eventpoll.c, drivers/dma-buf/sw_sync.c and sync_file.c from user space
 */
import { type DmaBuf, dma_buf_fd, dma_buf_put, get_dma_buf, is_dma_buf_file } from '../../kernel/dma-buf.ts';
import {
  DMA_BUF_SYNC_READ,
  DMA_BUF_SYNC_RW,
  DMA_BUF_SYNC_WRITE,
  dma_buf_export_sync_file,
  dma_buf_import_sync_file,
  poll_schedule,
} from '../../kernel/dma-buf-poll.ts';
import { EBADF, ENOTTY } from '../../kernel/errno.ts';
import {
  EPOLLIN,
  EPOLLOUT,
  type EventPoll,
  epoll_create,
  epoll_ctl_add,
  epoll_ctl_del,
  epoll_wait,
  vfs_poll,
} from '../../kernel/eventpoll.ts';
import {
  close_fd,
  current_files,
  type File,
  fd_install,
  fget,
  fput,
  get_unused_fd_flags,
  O_CLOEXEC,
} from '../../kernel/file.ts';
import { type KGen, kfn, type Task } from '../../kernel/sched.ts';
import {
  type SyncTimeline,
  sw_sync_debugfs_open,
  sw_sync_ioctl_create_fence,
  sw_sync_ioctl_inc,
} from '../../kernel/sw-sync.ts';
import { type ArgSpec, defineImporter, type ImporterEnv, type ImporterInstance, type OpArgs } from '../driver.ts';

const EVENTS: Readonly<Record<string, number>> = { in: EPOLLIN, out: EPOLLOUT, inout: EPOLLIN | EPOLLOUT };
const FLAGS: Readonly<Record<string, number>> = {
  read: DMA_BUF_SYNC_READ,
  write: DMA_BUF_SYNC_WRITE,
  rw: DMA_BUF_SYNC_RW,
  none: 0,
};

/** `get_unused_fd_flags()` and `fd_install()` of a new file; on -EMFILE the file is put. */
function* installFile(t: Task, file: File): KGen<number> {
  const fd = yield* get_unused_fd_flags(t, O_CLOEXEC);
  if (fd < 0) {
    yield* fput(t, file);
    return fd;
  }
  yield* fd_install(t, fd, file);
  return fd;
}

/** `fdget(fd)`: `fget`, as the fd table is shared; -1 fails the bound check without looking at the slots. */
function* fdgetFd(t: Task, fd: number): KGen<File | null> {
  return fd < 0 ? null : yield* fget(t, fd);
}

/** `epoll_create1(0)` (`do_epoll_create`): the set's file at a new fd. */
const do_epoll_create = kfn('do_epoll_create', (t: Task, ep: EventPoll) => installFile(t, ep.file));

/** `open("/sys/kernel/debug/sync/sw_sync")` (`do_sys_openat2`): the timeline's file at a new fd. */
const do_sys_openat2 = kfn('do_sys_openat2', (t: Task, file: File) => installFile(t, file));

class DmaBufUser implements ImporterInstance {
  readonly attachCall = 'dma_buf_fd';
  readonly ep: EventPoll;
  /** The sw_sync timeline's debugfs file (`file->private_data` is the timeline). */
  readonly timelineFile: File;
  readonly timeline: SyncTimeline;
  readonly epiFget: boolean;
  readonly unwrap: boolean;
  readonly signalRef: boolean;
  /** User space: the buffer's fd (-1: none yet); kept after close, as a program that does not reset it. */
  bufFd = -1;
  /** `attach` was not done at setup (`attach: manual`): the fd is written by a thread's op. */
  fdFromThread = false;
  /** User space: the sync_file fds it got, in order; -1 once closed. */
  readonly syncFds: number[] = [];

  constructor(readonly env: ImporterEnv) {
    this.ep = epoll_create(env.k, `${env.name}:epoll`);
    this.timelineFile = sw_sync_debugfs_open(env.k, `${env.name}:sw_sync`);
    this.timeline = this.timelineFile.private_data as SyncTimeline;
    // The kernel's dma_buf_poll, for poll(2) and for epoll alike.
    if (env.options.poll_file_ref === false) env.buffer.pollFileRef = false;
    this.epiFget = env.options.epi_fget !== false;
    this.unwrap = env.options.import_unwrap !== false;
    this.signalRef = env.options.sw_sync_signal_ref !== false;
  }

  get buf(): DmaBuf {
    return this.env.buffer;
  }

  /** The exporter hands out a new fd for the buffer: `get_dma_buf`, then `dma_buf_fd` (it takes that reference). */
  *attach(t: Task): KGen<number> {
    yield* get_dma_buf(t, this.buf);
    // A released buffer was reported by get_dma_buf; nothing is installed.
    if (this.buf.released) return -EBADF;
    const fd = yield* dma_buf_fd(t, this.buf, O_CLOEXEC);
    if (fd < 0) {
      yield* dma_buf_put(t, this.buf);
      return fd;
    }
    // The ioctl's return value, in the step that installed the fd.
    this.bufFd = fd;
    return 0;
  }

  /** The process opens its epoll set and its sw_sync timeline (end of setup). */
  *start(t: Task): KGen {
    this.fdFromThread = this.bufFd < 0;
    yield* do_epoll_create(t, this.ep);
    yield* do_sys_openat2(t, this.timelineFile);
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
    close: kfn('sys_close', (t: Task, self: DmaBufUser) => self.close(t)),
    epoll_add: kfn('do_epoll_ctl', (t: Task, self: DmaBufUser, a: OpArgs) =>
      self.epollCtl(t, EVENTS[String(a.events)] ?? 0, true),
    ),
    epoll_del: kfn('do_epoll_ctl', (t: Task, self: DmaBufUser) => self.epollCtl(t, 0, false)),
    epoll_wait: kfn('do_epoll_wait', (t: Task, self: DmaBufUser) => epoll_wait(t, self.ep, self.epiFget)),
    export_sync_file: kfn('sys_ioctl', (t: Task, self: DmaBufUser, a: OpArgs) =>
      self.exportSyncFile(t, FLAGS[String(a.flags)] ?? 0),
    ),
    import_sync_file: kfn('sys_ioctl', (t: Task, self: DmaBufUser, a: OpArgs) =>
      self.importSyncFile(t, FLAGS[String(a.flags)] ?? 0, Number(a.sync_file)),
    ),
    close_sync_file: kfn('sys_close', (t: Task, self: DmaBufUser, a: OpArgs) =>
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
   * The syscall's entry: user space passes the buffer's fd, and `fdget()` —
   * `fget()`, a reference for the call, since the table is shared — looks it
   * up. Null (-EBADF) for a closed fd. The fd user space keeps is written only
   * by `attach`: at setup (then it is constant) or, with `attach: manual`, by
   * a thread's op, in the step that installs it; only then is its load a step
   * of its own (`sys_*`, a read of the fd table, which stands for user memory).
   */
  private *fdget(t: Task, syscall: string): KGen<File | null> {
    if (this.fdFromThread) yield t.at(syscall, 'read', current_files(t));
    return yield* fdgetFd(t, this.bufFd);
  }

  private *poll(t: Task, events: number, wait: boolean): KGen<number> {
    const file = yield* this.fdget(t, 'sys_poll');
    if (!file) return -EBADF;
    const buf = is_dma_buf_file(file) ? (file.private_data as DmaBuf) : null;
    // poll_wait(): registered before the first poll (in fget's step, which declared the buffer), so no wake-up is missed.
    let seen = buf?.pollWakeups ?? 0;
    let r = 0;
    for (;;) {
      r = yield* vfs_poll(t, file, events);
      if ((r & events) !== 0 || !wait || !buf) break;
      yield* poll_schedule(t, buf, seen);
      seen = buf.pollWakeups;
    }
    // fdput()
    yield* fput(t, file);
    return r;
  }

  /** close(2) of the buffer's fd: `close_fd` (-EBADF when already closed). */
  private *close(t: Task): KGen<number> {
    if (this.fdFromThread) yield t.at('sys_close', 'read', current_files(t));
    return yield* close_fd(t, this.bufFd);
  }

  /** `EPOLL_CTL_ADD` (`add`) or `EPOLL_CTL_DEL` of the buffer's fd in the process's set. */
  private *epollCtl(t: Task, events: number, add: boolean): KGen<number> {
    const file = yield* this.fdget(t, 'sys_epoll_ctl');
    if (!file) return -EBADF;
    const r = add
      ? yield* epoll_ctl_add(t, this.ep, file, events, this.epiFget)
      : yield* epoll_ctl_del(t, this.ep, file);
    yield* fput(t, file);
    return r;
  }

  private *exportSyncFile(t: Task, flags: number): KGen<number> {
    const file = yield* this.fdget(t, 'sys_ioctl');
    if (!file) return -EBADF;
    let r = -ENOTTY;
    if (is_dma_buf_file(file)) {
      r = yield* dma_buf_export_sync_file(t, file.private_data as DmaBuf, flags);
      // The ioctl's result, in the step that installed the sync_file's fd.
      if (r >= 0) this.syncFds.push(r);
    }
    yield* fput(t, file);
    return Math.min(r, 0);
  }

  private *importSyncFile(t: Task, flags: number, n: number): KGen<number> {
    const file = yield* this.fdget(t, 'sys_ioctl');
    if (!file) return -EBADF;
    // The sync_file's fd, the ioctl's argument: loaded from user memory in
    // fget's last step (a read of the fd table, which every step that records
    // a new fd writes).
    const sfd = this.syncFds[n < 0 ? this.syncFds.length - 1 : n] ?? -1;
    const r = is_dma_buf_file(file)
      ? yield* dma_buf_import_sync_file(t, file.private_data as DmaBuf, flags, sfd, this.unwrap)
      : -ENOTTY;
    yield* fput(t, file);
    return r;
  }

  /**
   * close(2) of a sync_file fd, loaded from user memory in a `sys_close` step
   * (the fds are recorded by threads' ops); then `close_fd`: the last `fput`'s
   * `__fput` puts the fence (task work).
   */
  private *closeSyncFile(t: Task, n: number): KGen<number> {
    yield t.at('sys_close', 'read', current_files(t));
    return yield* close_fd(t, this.syncFds[n < 0 ? this.syncFds.length - 1 : n] ?? -1);
  }

  private *createFence(t: Task, value: number): KGen<number> {
    const fd = yield* sw_sync_ioctl_create_fence(t, this.timeline, value);
    // The ioctl's result, in the step that installed the fd.
    if (fd >= 0) this.syncFds.push(fd);
    return Math.min(fd, 0);
  }

  /** Process exit is the scenario's: `close_files` closes every fd of the shared table, then task work runs. */
  *teardown(_t: Task): KGen {}
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
    close: { doc: "close the buffer's fd (close_fd; the last fput's __fput releases it from task work)" },
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
    close_sync_file: {
      doc: "close a sync_file fd (close_fd; the sync_file's release, from task work, puts its fence)",
      args: { sync_file: SYNC_FILE_ARG },
    },
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
