/**
 * sync_file: a file that carries one fence to and from user space ([C9]).
 * The file is file.ts's `struct file`: its count, the fd table, `fget`,
 * `fput` and the release from task work are the ones every file has.
 *
 * - `sync_file_create(fence)` takes a reference on the fence and wraps it in a
 *   new sync_file whose file (`anon_inode_getfile("sync_file",
 *   &sync_file_fops)`) holds the caller's one reference; the caller installs
 *   it at an fd (`fd_install`). Not yet visible to other threads: no step of
 *   its own besides the fence reference.
 * - `sync_file_get_fence(fd)`: `fget(fd)`; NULL unless the file is a
 *   sync_file (then the reference `fget` took is dropped); else a new
 *   reference on its fence, and `fput`.
 * - Closing the last fd (`close_fd` → `fput`) queues `__fput` as task work;
 *   the file's release (`sync_file_release`) puts the fence ([C9], [F8]).
 *
 * Not modelled: `sync_file_merge`, the sync_file's own poll (`vfs_poll` of a
 * sync_file returns `DEFAULT_POLLMASK`) and `SYNC_IOC_FILE_INFO`, names and
 * timestamps.
 *
 * Models: drivers/dma-buf/sync_file.c, include/linux/sync_file.h
 */
import { type DmaFence, dma_fence_get, dma_fence_put } from './dma-fence.ts';
import { alloc_file_pseudo, type File, type FileOperations, fget, fput } from './file.ts';
import type { Kernel } from './kernel.ts';
import { type KGen, KObject, kfn, type Task } from './sched.ts';

/** `struct sync_file`: its file and the fence it carries. */
export class SyncFile extends KObject {
  readonly type = 'sync_file';
  /** `sync_file->file`: `f_count` is the fd table's reference plus any `fget`. */
  readonly file: File;

  constructor(
    k: Kernel,
    name: string,
    /** `sync_file->fence`: holds one reference until the file's release. */
    readonly fence: DmaFence,
  ) {
    super(k, name);
    this.file = alloc_file_pseudo(k, `${name}->file`, sync_file_fops, this);
  }

  override snapshot(): Record<string, unknown> {
    return { fence: this.fence.name };
  }
}

/** `sync_file_release()`: the file's last reference is gone (from `__fput`): put the fence ([C9], [F8]). */
const sync_file_release = kfn('sync_file_release', function* (t: Task, file: File): KGen {
  yield* dma_fence_put(t, (file.private_data as SyncFile).fence);
});

/** `sync_file_fops`: `sync_file_fdget` recognises a sync_file by them. */
export const sync_file_fops: FileOperations = { name: 'sync_file_fops', release: sync_file_release };

/**
 * `sync_file_create()`: a new sync_file holding a reference on `fence` ([C9]),
 * its file holding the caller's reference. The file is not yet published (the
 * caller's `fd_install` publishes it).
 * Locking: none (it may sleep: a GFP_KERNEL allocation in the kernel).
 */
export const sync_file_create = kfn('sync_file_create', function* (t: Task, fence: DmaFence): KGen<SyncFile> {
  yield* dma_fence_get(t, fence);
  return new SyncFile(t.k, `${fence.name}:sync_file#${++t.created}`, fence);
});

/**
 * `sync_file_get_fence()`: a new reference on the fence of the sync_file at
 * `fd`, or null when the fd holds no sync_file (closed, or another kind of
 * file) ([C9]). `fget` keeps the file alive while the fence is referenced;
 * the caller puts the fence.
 * Locking: none.
 */
export const sync_file_get_fence = kfn('sync_file_get_fence', function* (t: Task, fd: number): KGen<DmaFence | null> {
  // sync_file_fdget(): fget(), then the file must be a sync_file.
  const file = fd >= 0 ? yield* fget(t, fd) : null;
  if (!file) return null;
  if (file.f_op !== sync_file_fops) {
    yield* fput(t, file);
    return null;
  }
  const fence = yield* dma_fence_get(t, (file.private_data as SyncFile).fence);
  yield* fput(t, file);
  return fence;
});
