/**
 * Files and file descriptors: `struct file` and its reference count
 * (`f_count`), the final put deferred to task work, and the process's fd
 * table (`files_struct`).
 *
 * - {@link alloc_file_pseudo}: a new file holding one reference (the
 *   caller's); not visible to other threads until published.
 * - {@link get_file}: take a reference the caller is entitled to (it holds
 *   one, or a lock keeps the file alive). On a count that already reached 0
 *   it resurrects a file whose release is pending: `refcount`
 *   (resurrection), as refcount_t's "addition on 0" ([LT1], [I7]).
 * - {@link get_file_active}: take a reference only if the count is not 0
 *   (the iterators' and vfio revoke's way to skip a file being released,
 *   [LT1], [V5] 1).
 * - {@link fput}: drop a reference. The last one queues `__fput` as task work
 *   (`task_work_add(TWA_RESUME)`): it runs when the thread returns to user
 *   space, i.e. after the scenario op, never under the caller's locks ([LT2]).
 *   Below zero: `refcount` (underflow).
 * - {@link fput_in_step}: the same drop from code that runs inside another
 *   step (a fence callback, `dma_buf_poll_cb`).
 * - {@link __fput}: `eventpoll_release` (the file leaves every epoll set,
 *   eventpoll.ts), `f_op->release`, then the dentry's `d_release` (for a
 *   dma-buf: `dma_buf_release`, [LT2]). Every file: a dma-buf, a sync_file,
 *   an epoll set, the sw_sync timeline's debugfs file.
 * - The fd table: {@link get_unused_fd_flags} (lowest free fd below
 *   `RLIMIT_NOFILE`, else `-EMFILE`), {@link put_unused_fd},
 *   {@link fd_install} (publishes the file; consumes the caller's reference),
 *   {@link fget} (lockless, as under RCU: load the slot, take a reference only
 *   if the count is not 0, re-check the slot, retry), {@link close_fd}
 *   (`file_lock`: remove from the table; then `filp_close` → `fput`) and
 *   {@link close_files} (process exit).
 *
 * Declarations. Every access to `f_count` is a step on the file that also
 * touches `private_data`, the object whose lifetime the file carries (the
 * dma_buf of a dma-buf file, whose refcount *is* its file's count, [LT1]): the
 * dma-buf core declares its reference steps on the buffer, so the two layers
 * are ordered against each other. `fd[]` is read without a lock by `fget`, so
 * every write of it is a declared step on the files_struct; `open_fds` is only
 * touched under `file_lock`.
 *
 * Simplifications (docs/architecture.md): every scenario thread is a thread of
 * one process sharing one files_struct (CLONE_FILES), created on first use;
 * fds 0–2 are not modelled (the table starts empty); `RLIMIT_NOFILE` is kept
 * per calling thread (the process-wide limit is set by the op that needs it);
 * threads are user threads: a kthread's final fput would go to the
 * `delayed_fput` work list instead of task work, which, like task work, runs
 * the release later and outside the caller's locks; RCU freeing of `struct
 * file` is not modelled (a released file stays readable, and `fget` or
 * `get_file_active` on it fails as on a zero count).
 *
 * Models: fs/file_table.c (fput, __fput, get_file_active, alloc_file_pseudo),
 * fs/file.c (alloc_fd, fd_install, __fget_files_rcu, close_fd, close_files),
 * include/linux/fs.h (get_file), kernel/task_work.c
 */
import { apiMisuse } from '../checkers/api.ts';
import type { Origin } from '../checkers/finding.ts';
import { origin } from '../checkers/lockdep.ts';
import { EBADF, EMFILE } from './errno.ts';
import { type EpItem, eventpoll_release } from './eventpoll.ts';
import type { Kernel } from './kernel.ts';
import { Lock, spin_lock, spin_unlock } from './locking.ts';
import { type KGen, KObject, kfn, type Step, type Task } from './sched.ts';

/** `O_CLOEXEC` (flags are accepted and not modelled further). */
export const O_CLOEXEC = 0o2000000;

/** The soft `RLIMIT_NOFILE` a thread starts with. */
export const RLIMIT_NOFILE_DEFAULT = 1024;

/** `struct file_operations`: what `__fput` calls. */
export interface FileOperations {
  /** Identifies the kind of file (`is_dma_buf_file()` compares it). */
  readonly name: string;
  /** `->release`, called by `__fput` before the dentry is dropped. */
  release?(t: Task, file: File): KGen;
  /** `->poll` (`vfs_poll`): the ready events among `events`; it may arm wake-ups of its own. */
  poll?(t: Task, file: File, events: number): KGen<number>;
}

/** `struct dentry_operations` of the file's (pseudo-fs) dentry. */
export interface DentryOperations {
  /** `->d_dname`: the name a path lookup (readlink /proc/self/fd/N) prints. */
  d_dname?(t: Task, file: File): KGen<string>;
  /** `->d_release`: the dentry's last reference is gone (the dma-buf's release, [LT2]). */
  d_release?(t: Task, file: File): KGen;
}

/** `struct file`: a reference count and what the file stands for. */
export class File extends KObject {
  readonly type = 'file';
  /** `f_count` (`f_ref`): the file's references; 1 for the creator. */
  f_count = 1;
  /** Where the count last reached 0 (the final put). */
  zeroed: Origin | null = null;
  /** Where `__fput` started: the file is being or has been released. */
  released: Origin | null = null;
  /** `__fput` finished (`file_free`): a use now is a use after release, no longer a resurrection. */
  freed = false;
  /** A reference was taken at count 0 (reported once): the extra release it causes is not reported again. */
  resurrected = false;
  /** `file->f_ep`: the epoll items watching this file (eventpoll.ts); under `f_lock`, steps declare the file. */
  readonly f_ep: EpItem[] = [];

  constructor(
    k: Kernel,
    name: string,
    readonly f_op: FileOperations,
    /** The object whose lifetime this file carries (`private_data`); its steps declare it too. */
    readonly private_data: KObject | null,
    readonly d_op: DentryOperations | null = null,
  ) {
    super(k, name);
  }

  override snapshot(): Record<string, unknown> {
    return { f_count: this.f_count, released: this.released !== null, freed: this.freed };
  }
}

/**
 * `alloc_file_pseudo()`: a file on a pseudo filesystem (anon inode, dmabuf
 * fs) holding the caller's reference. Not a step: nobody else sees it yet.
 */
export function alloc_file_pseudo(
  k: Kernel,
  name: string,
  f_op: FileOperations,
  private_data: KObject | null,
  d_op: DentryOperations | null = null,
): File {
  return new File(k, name, f_op, private_data, d_op);
}

/** Declares a step on `file`'s count (and on what it carries). */
function fileStep(t: Task, fn: string, kind: 'read' | 'write', file: File): Step {
  const s = t.at(fn, kind, file);
  if (file.private_data) s.touch(file.private_data, kind);
  return s;
}

/** A reference taken at count 0 ([LT1], [I7]); also for `get_dma_buf`. */
export function resurrection(t: Task, file: File, call: string): void {
  file.resurrected = true;
  t.k.report(t, {
    code: 'refcount',
    what: file.freed ? 'use-after-release' : 'resurrection',
    object: file.name,
    released: file.freed ? file.released : file.zeroed,
    rules: ['LT1', 'I7'],
    message: file.freed
      ? `${call} on ${file.name} after its release`
      : `${call} on ${file.name} whose f_count is 0: resurrects a file whose release is ${file.released ? 'running' : 'pending'} (only get_file_active may take a reference without holding one)`,
  });
}

/**
 * `get_file()`: take a reference the caller is entitled to. The kernel
 * increments blindly; at count 0 the model records a resurrection (or a use
 * after release once `__fput` has started) and increments too ([LT1], [I7]).
 * Locking: none; the caller must already own a reference or otherwise keep
 * the file alive.
 */
export const get_file = kfn('get_file', function* (t: Task, file: File): KGen<File> {
  yield fileStep(t, 'get_file', 'write', file);
  if (file.f_count <= 0) resurrection(t, file, 'get_file');
  file.f_count++;
  return file;
});

/**
 * `get_file_active()`: a reference only if the count is not 0 (`file_ref_get`);
 * null for a file whose last reference is gone, even if `__fput` has not run
 * yet ([LT1], [V5] 1). Locking: none; the caller keeps the memory valid (RCU,
 * or a lock that the release path takes before freeing).
 */
export const get_file_active = kfn('get_file_active', function* (t: Task, file: File): KGen<File | null> {
  yield fileStep(t, 'get_file_active', 'write', file);
  if (file.f_count <= 0) return null;
  file.f_count++;
  return file;
});

/** The drop itself: underflow check, decrement, and the final put's task work. */
function fputLocked(t: Task, file: File): void {
  if (file.f_count <= 0) {
    t.k.report(t, {
      code: 'refcount',
      what: 'underflow',
      object: file.name,
      released: file.released ?? file.zeroed,
      rules: ['I7', 'LT1'],
      message: `fput on ${file.name} with no reference left`,
    });
    return;
  }
  if (--file.f_count === 0) {
    file.zeroed = origin(t);
    // task_work_add(current, &file->f_task_work, TWA_RESUME)
    t.deferred.push((t) => __fput(t, file));
  }
}

/**
 * `fput()`: drop a reference. The last one queues `____fput` as task work,
 * run when the thread returns to user space (after the scenario op): the
 * release never runs under the caller's locks ([LT2]). A put at count 0 is a
 * `refcount` underflow ([LT1], [I7]). Locking: any; may be called with locks
 * held (that is what deferring the release is for).
 */
export const fput = kfn('fput', function* (t: Task, file: File): KGen {
  yield fileStep(t, 'fput', 'write', file);
  fputLocked(t, file);
});

/**
 * `fput()` called from code that runs inside another step, such as a fence
 * callback run by the signaller (`dma_buf_poll_cb`): the same drop, and the
 * final `__fput` queued to the running thread's task work ([LT1], [LT2]). The
 * step it runs in must declare a write of the file or of its `private_data`
 * (a global step does). Locking: any (the callback runs under the fence's lock).
 */
export function fput_in_step(t: Task, file: File): void {
  t.stack.push('fput');
  fputLocked(t, file);
  t.stack.pop();
}

/**
 * `__fput()`: the final put's work, from task work: `eventpoll_release` (the
 * file leaves every epoll set, under each set's `ep->mtx`, [C9]), then
 * `f_op->release`, then the dentry's `d_release` ([LT2]). A step that may
 * touch anything (the release runs the owner's callbacks), so a global one. A
 * second `__fput` of a file (after a resurrection, already reported) does
 * nothing.
 */
export const __fput = kfn('__fput', function* (t: Task, file: File): KGen {
  const s = fileStep(t, '__fput', 'write', file);
  s.global = true;
  yield s;
  if (file.released) {
    if (!file.resurrected) {
      t.k.report(t, {
        code: 'refcount',
        what: 'use-after-release',
        object: file.name,
        released: file.released,
        rules: ['I7', 'LT2'],
        message: `__fput on ${file.name} after its release`,
      });
    }
    return;
  }
  file.released = origin(t);
  if (file.f_ep.length > 0) yield* eventpoll_release(t, file);
  if (file.f_op.release) yield* file.f_op.release(t, file);
  if (file.d_op?.d_release) yield* file.d_op.d_release(t, file);
  file.freed = true;
});

/**
 * `task_work_run()`: runs the work queued for the thread's return to user
 * space (deferred `__fput`s), in order. The scenario runs it after every op.
 */
export const task_work_run = kfn('task_work_run', function* (t: Task): KGen {
  while (t.deferred.length > 0) yield* (t.deferred.shift() as (t: Task) => KGen)(t);
});

/** `struct files_struct`: the process's fd table. */
export class FilesStruct extends KObject {
  readonly type = 'files_struct';
  /** `files->file_lock` (spinlock): serialises fd allocation and close. */
  readonly file_lock: Lock;
  /** `fdt->fd[]`: read by `fget` without the lock (RCU); every write is a declared step. */
  readonly fd: (File | null)[] = [];
  /** `fdt->open_fds`: allocated fds, installed or not; under `file_lock`. */
  readonly open_fds: boolean[] = [];

  constructor(k: Kernel, name: string) {
    super(k, name);
    this.file_lock = new Lock(k, `${name}->file_lock`, 'files->file_lock', 'spinlock');
  }

  override snapshot(): Record<string, unknown> {
    return { fd: this.fd.map((f) => f?.name ?? null), open: this.open_fds.map((o) => o) };
  }
}

const processFiles = new WeakMap<Kernel, FilesStruct>();
const rlimits = new WeakMap<Task, number>();

/**
 * `current->files`: every thread of the scenario belongs to one process and
 * shares its fd table (CLONE_FILES). Created on first use (its creation is
 * not a step: the table starts empty, whoever asks first).
 */
export function current_files(t: Task): FilesStruct {
  let f = processFiles.get(t.k);
  if (!f) {
    f = new FilesStruct(t.k, 'files');
    processFiles.set(t.k, f);
  }
  return f;
}

/** The process's fd table if anything used it (teardown closes it at exit). */
export function files_if_any(k: Kernel): FilesStruct | null {
  return processFiles.get(k) ?? null;
}

/** `rlimit(RLIMIT_NOFILE)` as this thread sees it. */
export function rlimit_nofile(t: Task): number {
  return rlimits.get(t) ?? RLIMIT_NOFILE_DEFAULT;
}

/** `setrlimit(RLIMIT_NOFILE)`, kept per thread (see the module comment). */
export function setrlimit_nofile(t: Task, n: number): void {
  rlimits.set(t, n);
}

/**
 * `get_unused_fd_flags()` (`alloc_fd(0, rlimit(RLIMIT_NOFILE), flags)`): the
 * lowest fd not in use, marked allocated but not installed; `-EMFILE` when
 * every fd below the limit is taken. Locking: takes `file_lock`.
 */
export const get_unused_fd_flags = kfn('get_unused_fd_flags', function* (t: Task, _flags: number): KGen<number> {
  const files = current_files(t);
  yield* spin_lock(t, files.file_lock);
  let fd = -EMFILE;
  const end = rlimit_nofile(t);
  for (let i = 0; i < end; i++) {
    if (files.open_fds[i]) continue;
    files.open_fds[i] = true;
    fd = i;
    break;
  }
  yield* spin_unlock(t, files.file_lock);
  return fd;
});

/**
 * `put_unused_fd()`: gives back an fd allocated and never installed.
 * Locking: takes `file_lock`.
 */
export const put_unused_fd = kfn('put_unused_fd', function* (t: Task, fd: number): KGen {
  const files = current_files(t);
  yield* spin_lock(t, files.file_lock);
  files.open_fds[fd] = false;
  yield* spin_unlock(t, files.file_lock);
});

/**
 * `fd_install()`: publishes `file` at an fd from `get_unused_fd_flags`; the
 * table now owns the caller's reference ([LT1]). Locking: none (RCU publish);
 * the slot must be empty (the kernel BUGs otherwise: `api-misuse`, nothing
 * installed).
 */
export const fd_install = kfn('fd_install', function* (t: Task, fd: number, file: File): KGen {
  const files = current_files(t);
  yield t.at('fd_install', 'write', files);
  if (files.fd[fd]) {
    apiMisuse(t, 'fd_install', `fd ${fd} is already installed (BUG_ON(fdt->fd[fd] != NULL))`, ['LT1']);
    return;
  }
  files.fd[fd] = file;
});

/**
 * `fget()` (`__fget_files_rcu`): the file at `fd` with a new reference, or
 * null (-EBADF). Lockless: load the slot; take a reference only if the count
 * is not 0 (`file_ref_get`); re-check that the slot still holds the file,
 * else drop it and retry. A file still installed with a count of 0 means the
 * table's own reference was dropped by someone else: `refcount` ([LT1], [I7]).
 * Locking: none (RCU).
 */
export const fget = kfn('fget', function* (t: Task, fd: number): KGen<File | null> {
  const files = current_files(t);
  for (;;) {
    yield t.at('fget', 'read', files);
    const file = files.fd[fd] ?? null;
    if (!file) return null;
    const s = fileStep(t, 'get_file_rcu', 'write', file);
    s.touch(files, 'read');
    yield s;
    const now = files.fd[fd] ?? null;
    if (file.f_count <= 0) {
      if (now !== file) continue;
      t.k.report(t, {
        code: 'refcount',
        what: 'use-after-release',
        object: file.name,
        released: file.released ?? file.zeroed,
        rules: ['LT1', 'I7'],
        message: `fget: fd ${fd} holds ${file.name}, whose last reference is gone: the fd table's reference was dropped by someone else`,
      });
      return null;
    }
    file.f_count++;
    if (now === file) return file;
    // The fd was closed (and maybe reused) meanwhile: undo and retry. Not the
    // last reference: the count was above 0 before this step's increment.
    file.f_count--;
  }
});

/** `filp_close()`: `f_op->flush` (none modelled), then drop the table's reference. */
export const filp_close = kfn('filp_close', function* (t: Task, file: File): KGen {
  yield* fput(t, file);
});

/**
 * `close_fd()` (close(2)): under `file_lock` take the file out of the table
 * and free the fd, then `filp_close` outside the lock; -EBADF for an fd that
 * holds no file. Locking: takes `file_lock`.
 */
export const close_fd = kfn('close_fd', function* (t: Task, fd: number): KGen<number> {
  const files = current_files(t);
  yield* spin_lock(t, files.file_lock);
  yield t.at('file_close_fd_locked', 'write', files);
  const file = fd >= 0 ? (files.fd[fd] ?? null) : null;
  if (file) {
    files.fd[fd] = null;
    files.open_fds[fd] = false;
  }
  yield* spin_unlock(t, files.file_lock);
  if (!file) return -EBADF;
  yield* filp_close(t, file);
  return 0;
});

/**
 * `close_files()` (process exit, `put_files_struct` on the last user): every
 * installed file is taken out of the table and closed, in fd order. No lock:
 * no other thread of the process is left.
 */
export const close_files = kfn('close_files', function* (t: Task, files: FilesStruct): KGen {
  for (let fd = 0; fd < files.fd.length; fd++) {
    yield t.at('close_files', 'write', files);
    const file = files.fd[fd];
    if (!file) continue;
    files.fd[fd] = null;
    files.open_fds[fd] = false;
    yield* filp_close(t, file);
  }
});
