/**
 * sync_file: a file that carries one fence to and from user space ([C9]).
 *
 * - `sync_file_create(fence)` takes a reference on the fence and wraps it in a
 *   new file holding one file reference (the caller installs it in an fd
 *   table, `fd_install`). Not yet visible to other threads: no step of its own.
 * - `sync_file_get_fence(fd)` returns a new reference on the file's fence, or
 *   NULL when the fd is not an open sync_file.
 * - The last `fput` releases the file (`sync_file_release`), which puts the
 *   fence.
 *
 * Simplifications: the model passes the {@link SyncFile} where the kernel
 * passes an fd, and `sync_file_get_fence`'s `fget` / `fput` of the file are
 * one atomic step with the `dma_fence_get` (a file whose last reference is
 * gone reads as a closed fd). Not modelled: `sync_file_merge`, the sync_file's
 * own poll and `SYNC_IOC_FILE_INFO`, names and timestamps.
 *
 * Models: drivers/dma-buf/sync_file.c, include/linux/sync_file.h
 */
import type { Origin } from '../checkers/finding.ts';
import { origin } from '../checkers/lockdep.ts';
import { type DmaFence, dma_fence_get, dma_fence_put } from './dma-fence.ts';
import type { Kernel } from './kernel.ts';
import { type KGen, KObject, kfn, type Task } from './sched.ts';

/** `struct sync_file`: its file's reference count and the fence it carries. */
export class SyncFile extends KObject {
  readonly type = 'sync_file';
  /** The file's reference count (`file->f_count`): the fd table's, plus any `fget`. */
  refcount = 1;
  /** Where the last `fput` released the file; null while open. */
  released: Origin | null = null;

  constructor(
    k: Kernel,
    name: string,
    /** `sync_file->fence`: holds one reference until the release. */
    readonly fence: DmaFence,
  ) {
    super(k, name);
  }

  override snapshot(): Record<string, unknown> {
    return { fence: this.fence.name, refcount: this.refcount, released: this.released !== null };
  }
}

/**
 * `sync_file_create()`: a new sync_file holding a reference on `fence` ([C9]).
 * The file is not yet published (the caller's `fd_install` publishes it).
 * Locking: none (it may sleep: a GFP_KERNEL allocation in the kernel).
 */
export const sync_file_create = kfn('sync_file_create', function* (t: Task, fence: DmaFence): KGen<SyncFile> {
  yield* dma_fence_get(t, fence);
  return new SyncFile(t.k, `${fence.name}:sync_file#${++t.created}`, fence);
});

/**
 * `sync_file_get_fence()`: a new reference on the fence of the sync_file, or
 * null when the file is already released (a closed fd) ([C9]). The caller puts
 * the fence. One step: the `fget`, `dma_fence_get` and `fput` of the kernel.
 * Locking: none.
 */
export const sync_file_get_fence = kfn('sync_file_get_fence', function* (t: Task, sf: SyncFile): KGen<DmaFence | null> {
  yield t.at('sync_file_get_fence', 'write', sf.fence).touch(sf, 'read');
  if (sf.released !== null || sf.refcount <= 0) return null;
  sf.fence.refcount++;
  return sf.fence;
});

/**
 * `fput()` of a sync_file: drops a file reference; the last one runs
 * `sync_file_release`, which puts the fence ([C9], [F8]); one below zero is a
 * `refcount` finding.
 * Locking: none (the release runs in the caller, as task work would).
 */
export const sync_file_fput = kfn('fput', function* (t: Task, sf: SyncFile): KGen {
  yield t.at('fput', 'write', sf);
  if (sf.refcount <= 0) {
    t.k.report(t, {
      code: 'refcount',
      what: 'underflow',
      object: sf.name,
      released: sf.released,
      rules: ['I7', 'C9'],
      message: `fput on ${sf.name} with no reference left`,
    });
    return;
  }
  if (--sf.refcount === 0) yield* sync_file_release(t, sf);
});

/** `sync_file_release()`: the file's last reference is gone: put the fence. */
const sync_file_release = kfn('sync_file_release', function* (t: Task, sf: SyncFile): KGen {
  sf.released = origin(t);
  yield* dma_fence_put(t, sf.fence);
});
