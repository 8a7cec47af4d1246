/**
 * The fd ops every buffer has, besides `get` and `put`: what the scenario's
 * process does with the buffer's file ([LT1], [LT2]). All threads are threads
 * of one process and share its fd table (kernel/file.ts).
 *
 * - `dma_buf_fd {put, nofile}`: the end of the exporter's export ioctl:
 *   `dma_buf_fd(buf, O_CLOEXEC)` with `RLIMIT_NOFILE` = `nofile`, then the
 *   driver's handling of the reference `dma_buf_export` gave: `put: on-error`
 *   (right) puts it only when `dma_buf_fd` failed; `always` also puts it after
 *   a successful install (the fd table's reference is gone: a use after
 *   release or an underflow later); `never` leaks it when the install failed.
 *   The fd it returns is what user space knows the buffer by.
 * - `close_fd`: close(2) on that fd (`close_fd`; the final `fput` releases the
 *   buffer from task work); -EBADF when user space has no fd for it.
 * - `dma_buf_get`: an importing driver's ioctl given that fd: `dma_buf_get`
 *   (fget), a look at the buffer, `dma_buf_put`.
 * - `set_name`: DMA_BUF_SET_NAME (`dma_buf_set_name`, the thread's name as the name).
 * - `read_name {lock}`: readlink of the fd's /proc link (`dmabuffs_dname`);
 *   `lock: false` copies the name without `name_lock`.
 *
 * User space's knowledge of a buffer's fd (its own memory) is written in the
 * step that installs the fd and read in a step of the syscall that passes it
 * (`sys_close`, `sys_ioctl`), both declared on the fd table.
 */
import type { OpArgs, OpSpec } from '../drivers/driver.ts';
import {
  type DmaBuf,
  dma_buf_check_alive,
  dma_buf_fd,
  dma_buf_get,
  dma_buf_put,
  dma_buf_set_name,
  dmabuffs_dname,
} from '../kernel/dma-buf.ts';
import { isErr } from '../kernel/errno.ts';
import { close_fd, current_files, O_CLOEXEC, RLIMIT_NOFILE_DEFAULT, setrlimit_nofile } from '../kernel/file.ts';
import type { KGen, Task } from '../kernel/sched.ts';

export const BUFFER_FILE_OPS: Readonly<Record<string, OpSpec>> = {
  dma_buf_fd: {
    doc: "the export ioctl's end: dma_buf_fd, then the driver's put of the export reference (on-error, always, never) ([LT1])",
    args: {
      put: { type: 'enum', values: ['on-error', 'always', 'never'], default: 'on-error' },
      nofile: { type: 'int', min: 0, max: RLIMIT_NOFILE_DEFAULT, default: RLIMIT_NOFILE_DEFAULT },
    },
  },
  close_fd: { doc: "close(2) on the buffer's fd: the last fput releases it from task work ([LT1], [LT2])" },
  dma_buf_get: {
    doc: "an importer given the buffer's fd: dma_buf_get (fget), a look at the buffer, dma_buf_put ([LT1])",
  },
  set_name: { doc: 'DMA_BUF_SET_NAME: dma_buf_set_name under name_lock (§0.2)' },
  read_name: {
    doc: 'readlink of the fd: dmabuffs_dname copies the name under name_lock; lock: false copies it without ([O1])',
    args: { lock: { type: 'boolean', default: true } },
  },
};

/** What the process keeps in its own memory: the fd `dma_buf_fd` returned for each buffer. */
export class UserFds {
  readonly fds = new Map<DmaBuf, number>();
}

type FileOp = (t: Task, buf: DmaBuf, user: UserFds, args: OpArgs) => KGen;

function* fdOp(t: Task, buf: DmaBuf, user: UserFds, args: OpArgs): KGen {
  setrlimit_nofile(t, Number(args.nofile ?? RLIMIT_NOFILE_DEFAULT));
  const fd = yield* dma_buf_fd(t, buf, O_CLOEXEC);
  // Still in the step that installed it: the ioctl's return value.
  if (fd >= 0) user.fds.set(buf, fd);
  const put = args.put ?? 'on-error';
  if (fd < 0 ? put !== 'never' : put === 'always') yield* dma_buf_put(t, buf);
}

function* closeOp(t: Task, buf: DmaBuf, user: UserFds): KGen {
  yield t.at('sys_close', 'read', current_files(t));
  yield* close_fd(t, user.fds.get(buf) ?? -1);
}

function* getOp(t: Task, buf: DmaBuf, user: UserFds): KGen {
  yield t.at('sys_ioctl', 'read', current_files(t));
  const got = yield* dma_buf_get(t, user.fds.get(buf) ?? -1);
  if (isErr(got)) return;
  // The importer looks at what it got (its size): the buffer must be alive.
  dma_buf_check_alive(t, got, 'dma_buf_get');
  yield* dma_buf_put(t, got);
}

function* setNameOp(t: Task, buf: DmaBuf): KGen {
  yield* dma_buf_set_name(t, buf, t.name);
}

function* readNameOp(t: Task, buf: DmaBuf, _user: UserFds, args: OpArgs): KGen {
  yield* dmabuffs_dname(t, buf.file, args.lock !== false);
}

const OPS: Readonly<Record<string, FileOp>> = {
  dma_buf_fd: fdOp,
  close_fd: closeOp,
  dma_buf_get: getOp,
  set_name: setNameOp,
  read_name: readNameOp,
};

/** The implementation of a buffer fd op, or undefined. */
export function bufferFileOp(name: string): FileOp | undefined {
  return Object.hasOwn(OPS, name) ? OPS[name] : undefined;
}
