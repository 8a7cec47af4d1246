/**
 * RDMA's dma-buf import layer: the `ib_umem_dmabuf` an RDMA driver builds a
 * memory region (MR) on, as `drivers/infiniband/core/umem_dmabuf.c` has it in
 * 2026.
 *
 * Three ways to import ([LT9], [V4]):
 * - dynamic (`ib_umem_dmabuf_get` with the driver's attach ops, whose
 *   invalidate callback is mandatory in practice): the driver maps on demand
 *   with `ib_umem_dmabuf_map_pages` (resv held) from its page-fault path
 *   (ODP NICs, mlx5) and zaps its device translations and unmaps in the
 *   callback;
 * - pinned (`ib_umem_dmabuf_get_pinned`): pin and map at creation. Since the
 *   2026 revoke series its attach ops have **no** invalidate callback, so an
 *   exporter that needs revoke (vfio-pci) refuses it ([V4]);
 * - pinned but revocable (`ib_umem_dmabuf_get_pinned_revocable_and_lock`,
 *   rdma-next March 2026, irdma and erdma): pin and map, and return with resv
 *   still held so the driver can finish building its MR and install its revoke
 *   callback (`ib_umem_dmabuf_set_revoke_locked`) before any revoke can run.
 *   The attach ops' callback is `ib_umem_dmabuf_revoke_locked`: the driver's
 *   revoke callback (which must stop all hardware access before it returns),
 *   then unmap and unpin; a revoked umem never maps again.
 *
 * `ib_umem_dmabuf_map_pages` waits for the buffer's KERNEL fences after
 * mapping, so the device never sees pages a pipelined move has not finished
 * copying ([LT7]). The model adds one switch, `wait_kernel_fence`: false leaves
 * the wait out (the bug) and records the unsignalled KERNEL fences, which the
 * driver's device access checks.
 *
 * The umem's fields are protected by the buffer's resv.
 *
 * Models: drivers/infiniband/core/umem_dmabuf.c, include/rdma/ib_umem.h
 */
import type { DmaBuf, DmaBufAttachment } from '../dma-buf.ts';
import {
  dma_buf_detach,
  dma_buf_dynamic_attach,
  dma_buf_map_attachment,
  dma_buf_pin,
  dma_buf_put,
  dma_buf_unmap_attachment,
  dma_buf_unpin,
  get_dma_buf,
} from '../dma-buf.ts';
import type { DmaBufAttachOps, SgTable } from '../dma-buf-ops.ts';
import type { DmaFence } from '../dma-fence.ts';
import {
  DMA_RESV_USAGE_KERNEL,
  dma_resv_assert_held,
  dma_resv_for_each_fence,
  dma_resv_iter_begin,
  dma_resv_lock,
  dma_resv_unlock,
  dma_resv_wait_timeout,
} from '../dma-resv.ts';
import { EINVAL, isErr, type Result } from '../errno.ts';
import { type KGen, kfn, type Task } from '../sched.ts';

/** The driver's revoke callback of a pinned revocable umem: stop all device access to the region before returning. */
export type IbUmemRevokeFn = (t: Task, priv: unknown) => KGen;

/** `struct ib_umem_dmabuf`, the parts the model needs. Protected by the buffer's resv. */
export class IbUmemDmabuf {
  attach: DmaBufAttachment | null = null;
  /** The mapping `ib_umem_dmabuf_map_pages` made, until unmapped. */
  sgt: SgTable | null = null;
  pinned = false;
  revoked = false;
  /** The driver's MR (`umem_dmabuf->private`). */
  private: unknown = null;
  /** The driver's revoke callback (pinned revocable only). */
  pinned_revoke: IbUmemRevokeFn | null = null;
  /**
   * Model switch: whether `ib_umem_dmabuf_map_pages` waits for the KERNEL
   * fences ([LT7]). False is the bug; the fences left unwaited are then kept
   * in {@link unwaited}.
   */
  waitKernelFence = true;
  /** KERNEL fences that were unsignalled when the last map_pages returned without waiting. */
  unwaited: DmaFence[] = [];

  constructor(
    readonly dmabuf: DmaBuf,
    /** The umem's name in reports (the importer's). */
    readonly name: string,
  ) {}
}

/**
 * `ib_umem_dmabuf_get()`: `dma_buf_get` and a dynamic attachment with the
 * driver's `ops` (`importer_priv` is the umem). -EINVAL without ops.
 * Locking: resv not held ([L2]).
 */
export const ib_umem_dmabuf_get = kfn(
  'ib_umem_dmabuf_get',
  function* (
    t: Task,
    device: string,
    buf: DmaBuf,
    ops: DmaBufAttachOps | null,
    name: string,
  ): KGen<Result<IbUmemDmabuf>> {
    if (!ops) return -EINVAL;
    yield* get_dma_buf(t, buf);
    const umem = new IbUmemDmabuf(buf, name);
    const a = yield* dma_buf_dynamic_attach(t, buf, device, ops, umem, name);
    if (isErr(a)) {
      yield* dma_buf_put(t, buf);
      return a;
    }
    umem.attach = a;
    return umem;
  },
);

/**
 * `ib_umem_dmabuf_map_pages()`: maps the attachment unless already mapped,
 * then waits for the buffer's KERNEL fences: the pages' content may not be
 * up to date until a pending move finished ([LT7]). -EINVAL once revoked.
 * Locking: resv held ([L1]).
 */
export const ib_umem_dmabuf_map_pages = kfn(
  'ib_umem_dmabuf_map_pages',
  function* (t: Task, umem: IbUmemDmabuf): KGen<number> {
    const resv = umem.dmabuf.resv;
    dma_resv_assert_held(t, resv, 'ib_umem_dmabuf_map_pages', ['L1', 'LT5']);
    const a = umem.attach;
    if (umem.revoked || !a) return -EINVAL;
    if (!umem.sgt) {
      const sgt = yield* dma_buf_map_attachment(t, a, 'DMA_BIDIRECTIONAL');
      if (isErr(sgt)) return sgt;
      umem.sgt = sgt;
    }
    if (umem.waitKernelFence) {
      const ret = yield* dma_resv_wait_timeout(t, resv, DMA_RESV_USAGE_KERNEL, false);
      return Math.min(ret, 0);
    }
    const pending: DmaFence[] = [];
    for (const f of dma_resv_for_each_fence(t, dma_resv_iter_begin(resv, DMA_RESV_USAGE_KERNEL))) {
      if (!f.signaled) pending.push(f);
    }
    umem.unwaited = pending;
    return 0;
  },
);

/** `ib_umem_dmabuf_unmap_pages()`: unmaps the mapping, if any. Locking: resv held ([L1]). */
export const ib_umem_dmabuf_unmap_pages = kfn(
  'ib_umem_dmabuf_unmap_pages',
  function* (t: Task, umem: IbUmemDmabuf): KGen {
    dma_resv_assert_held(t, umem.dmabuf.resv, 'ib_umem_dmabuf_unmap_pages', ['L1', 'LT5']);
    const sgt = umem.sgt;
    if (!sgt || !umem.attach) return;
    yield* dma_buf_unmap_attachment(t, umem.attach, sgt, 'DMA_BIDIRECTIONAL');
    umem.sgt = null;
    umem.unwaited = [];
  },
);

/**
 * `ib_umem_dmabuf_attach_pinned_ops`: since 2026 no invalidate callback, so
 * exporters that need revoke refuse the attachment ([V4]).
 */
export const ib_umem_dmabuf_attach_pinned_ops: DmaBufAttachOps = { allow_peer2peer: true };

/**
 * Pins and maps a fresh umem made with `ops`; returns with resv held, or an
 * error with nothing left attached. (`ib_umem_dmabuf_get_pinned_and_lock`.)
 */
const ib_umem_dmabuf_get_pinned_and_lock = kfn(
  'ib_umem_dmabuf_get_pinned_and_lock',
  function* (t: Task, device: string, buf: DmaBuf, ops: DmaBufAttachOps, name: string): KGen<Result<IbUmemDmabuf>> {
    const umem = yield* ib_umem_dmabuf_get(t, device, buf, ops, name);
    if (isErr(umem)) return umem;
    const a = umem.attach as DmaBufAttachment;
    yield* dma_resv_lock(t, buf.resv, null);
    let err = yield* dma_buf_pin(t, a);
    if (err === 0) {
      umem.pinned = true;
      err = yield* ib_umem_dmabuf_map_pages(t, umem);
      if (err === 0) return umem;
      yield* dma_buf_unpin(t, a);
      umem.pinned = false;
    }
    yield* dma_resv_unlock(t, buf.resv);
    yield* ib_umem_dmabuf_release(t, umem);
    return err;
  },
);

/**
 * `ib_umem_dmabuf_get_pinned()`: a pinned import for a device that cannot
 * fault: pin and map at creation; no invalidate callback ([LT4], [V4]).
 * Locking: resv not held; taken inside.
 */
export const ib_umem_dmabuf_get_pinned = kfn(
  'ib_umem_dmabuf_get_pinned',
  function* (t: Task, device: string, buf: DmaBuf, name: string): KGen<Result<IbUmemDmabuf>> {
    const umem = yield* ib_umem_dmabuf_get_pinned_and_lock(t, device, buf, ib_umem_dmabuf_attach_pinned_ops, name);
    if (!isErr(umem)) yield* dma_resv_unlock(t, buf.resv);
    return umem;
  },
);

/**
 * `ib_umem_dmabuf_revoke_locked()`: the invalidate callback of a pinned
 * revocable umem, and what release does. Once only: the driver's revoke
 * callback (all device access stopped when it returns), then unmap and unpin
 * ([LT9], [V4], [V6]). Locking: resv held ([L10]).
 */
export const ib_umem_dmabuf_revoke_locked = kfn(
  'ib_umem_dmabuf_revoke_locked',
  function* (t: Task, attach: DmaBufAttachment): KGen {
    const umem = attach.importer_priv as IbUmemDmabuf;
    dma_resv_assert_held(t, attach.dmabuf.resv, 'ib_umem_dmabuf_revoke_locked', ['L10', 'V4']);
    if (umem.revoked) return;
    if (umem.pinned_revoke) yield* umem.pinned_revoke(t, umem.private);
    yield* ib_umem_dmabuf_unmap_pages(t, umem);
    if (umem.pinned) {
      yield* dma_buf_unpin(t, attach);
      umem.pinned = false;
    }
    umem.revoked = true;
  },
);

/** `ib_umem_dmabuf_attach_pinned_revocable_ops`: the callback revokes ([V4]). */
export const ib_umem_dmabuf_attach_pinned_revocable_ops: DmaBufAttachOps = {
  allow_peer2peer: true,
  invalidate_mappings: ib_umem_dmabuf_revoke_locked,
};

/**
 * `ib_umem_dmabuf_get_pinned_revocable_and_lock()`: pin and map, and return
 * with resv **held**: the driver builds its MR and installs its revoke
 * callback with {@link ib_umem_dmabuf_set_revoke_locked} before unlocking, so
 * no revoke can run in between ([V4], [LT9]).
 */
export const ib_umem_dmabuf_get_pinned_revocable_and_lock = kfn(
  'ib_umem_dmabuf_get_pinned_revocable_and_lock',
  function* (t: Task, device: string, buf: DmaBuf, name: string): KGen<Result<IbUmemDmabuf>> {
    return yield* ib_umem_dmabuf_get_pinned_and_lock(t, device, buf, ib_umem_dmabuf_attach_pinned_revocable_ops, name);
  },
);

/**
 * `ib_umem_dmabuf_set_revoke_locked()`: installs the driver's revoke callback
 * and its argument. Locking: resv held (`dma_resv_assert_held`, [L1]).
 */
export function ib_umem_dmabuf_set_revoke_locked(
  t: Task,
  umem: IbUmemDmabuf,
  revoke: IbUmemRevokeFn,
  priv: unknown,
): void {
  dma_resv_assert_held(t, umem.dmabuf.resv, 'ib_umem_dmabuf_set_revoke_locked', ['L1', 'V4']);
  umem.pinned_revoke = revoke;
  umem.private = priv;
}

/** `ib_umem_dmabuf_revoke()`: {@link ib_umem_dmabuf_revoke_locked} under resv. Locking: resv not held. */
export const ib_umem_dmabuf_revoke = kfn('ib_umem_dmabuf_revoke', function* (t: Task, umem: IbUmemDmabuf): KGen {
  const a = umem.attach;
  if (!a) return;
  yield* dma_resv_lock(t, umem.dmabuf.resv, null);
  yield* ib_umem_dmabuf_revoke_locked(t, a);
  yield* dma_resv_unlock(t, umem.dmabuf.resv);
});

/**
 * `ib_umem_dmabuf_release()` (from `ib_umem_release`): revoke (unmap and
 * unpin under resv), then detach and put ([LT3]). Locking: resv not held.
 */
export const ib_umem_dmabuf_release = kfn('ib_umem_dmabuf_release', function* (t: Task, umem: IbUmemDmabuf): KGen {
  const a = umem.attach;
  if (!a) return;
  yield* ib_umem_dmabuf_revoke(t, umem);
  yield* dma_buf_detach(t, umem.dmabuf, a);
  yield* dma_buf_put(t, umem.dmabuf);
});
