/**
 * The two contracts of dma-buf: the exporter's `struct dma_buf_ops` and the
 * importer's `struct dma_buf_attach_ops`, each op documented with its locking
 * rule as the kernel-doc in include/linux/dma-buf.h states it ([O3], [O6],
 * [L3], [L10]).
 *
 * Ops are generator functions over the model's kernel API; a driver written
 * as a TypeScript module implements them the same way.
 *
 * Models: include/linux/dma-buf.h
 */
import type { DmaBuf, DmaBufAttachment } from './dma-buf.ts';
import type { Result } from './errno.ts';
import type { Vma } from './memory.ts';
import type { PfnRef, Translation } from './page-alloc.ts';
import type { KGen, Task } from './sched.ts';

export type DmaDataDirection = 'DMA_BIDIRECTIONAL' | 'DMA_TO_DEVICE' | 'DMA_FROM_DEVICE';

/**
 * `struct sg_table` as the importer sees it: one DMA translation per page,
 * valid from map until unmap ([O7], [LT10]).
 */
export class SgTable {
  unmapped = false;

  constructor(
    readonly attach: DmaBufAttachment,
    readonly dir: DmaDataDirection,
    readonly entries: readonly Translation[],
  ) {}
}

/**
 * `struct iosys_map` as dma_buf_vmap returns it: a kernel virtual mapping of
 * the whole buffer, one kernel PTE (vmalloc space) per page ([C6]). The map
 * is identified by the object: dma_buf_vunmap must be given the one
 * dma_buf_vmap returned (the core caches it and hands it to every vmapper).
 * A CPU access through it is checked by KASAN like any other translation.
 */
export class IosysMap {
  constructor(
    /** The buffer mapped (for reports). */
    readonly dmabuf: string,
    /** The kernel PTE of each page, in page order. */
    readonly vaddr: readonly Translation[],
  ) {}
}

/** What `get_pfn` returns: the PFN (with the generation it is valid for) and `max_order` ([P1]). */
export interface PfnResult {
  readonly pfn: PfnRef;
  readonly max_order: number;
}

/**
 * `struct dma_buf_ops` — the exporter's contract.
 *
 * Ops called with `dmabuf->resv` **unlocked** (the exporter may take it):
 * `attach`, `detach`, `release`, `begin_cpu_access`, `end_cpu_access`,
 * `mmap`. Ops called with `dmabuf->resv` **locked** (the exporter must not
 * take it): `pin`, `unpin`, `map_dma_buf`, `unmap_dma_buf`, `vmap`, `vunmap`,
 * `get_pfn` ([L3]).
 */
export interface DmaBufOps {
  /**
   * @attach: [optional] Check that `attach->dev` can reach the backing store;
   * may refuse with -EBUSY, -EOPNOTSUPP or -ENODEV.
   * Locking: called without dmabuf->resv held.
   */
  attach?(t: Task, dmabuf: DmaBuf, attach: DmaBufAttachment): KGen<number>;
  /**
   * @detach: [optional] Housekeeping for a departing attachment.
   * Locking: called without dmabuf->resv held.
   */
  detach?(t: Task, dmabuf: DmaBuf, attach: DmaBufAttachment): KGen;
  /**
   * @pin: [optional, with unpin] The buffer must not move until unpinned; on
   * return the memory is usable. Presence makes the exporter dynamic ([O10]).
   * Locking: called with dmabuf->resv held.
   */
  pin?(t: Task, attach: DmaBufAttachment): KGen<number>;
  /**
   * @unpin: [optional, with pin] Undo one pin.
   * Locking: called with dmabuf->resv held.
   */
  unpin?(t: Task, attach: DmaBufAttachment): KGen;
  /**
   * @map_dma_buf: Return a freshly built sg_table for `attach->dev`; never a
   * cached one. May sleep.
   * Locking: called with dmabuf->resv held.
   */
  map_dma_buf?(t: Task, attach: DmaBufAttachment, dir: DmaDataDirection): KGen<Result<SgTable>>;
  /**
   * @unmap_dma_buf: Tear down a table returned by map_dma_buf.
   * Locking: called with dmabuf->resv held.
   */
  unmap_dma_buf?(t: Task, attach: DmaBufAttachment, sgt: SgTable, dir: DmaDataDirection): KGen;
  /**
   * @release: Free the backing store once the last reference is gone.
   * Locking: called without dmabuf->resv held ([LT2]).
   */
  release(t: Task, dmabuf: DmaBuf): KGen;
  /**
   * @begin_cpu_access: [optional] Prepare the buffer for CPU access in
   * direction `dir` (cache maintenance, or moving it somewhere the CPU can
   * reach); the core then waits for the implicit-sync fences ([C7]). A
   * non-zero return skips that wait and is returned to the caller.
   * Locking: called without dmabuf->resv held; the exporter may take it.
   */
  begin_cpu_access?(t: Task, dmabuf: DmaBuf, dir: DmaDataDirection): KGen<number>;
  /**
   * @end_cpu_access: [optional] CPU access in direction `dir` is over (flush
   * caches for the device) ([C7]).
   * Locking: called without dmabuf->resv held; the exporter may take it.
   */
  end_cpu_access?(t: Task, dmabuf: DmaBuf, dir: DmaDataDirection): KGen<number>;
  /**
   * @vmap: [optional] Map the whole buffer into the kernel's address space;
   * the mapping must stay valid until vunmap (an exporter that can move the
   * buffer pins it, [C6]). Called only when the core has no cached mapping.
   * Locking: called with dmabuf->resv held.
   */
  vmap?(t: Task, dmabuf: DmaBuf): KGen<Result<IosysMap>>;
  /**
   * @vunmap: [optional, with vmap] Undo the vmap (the core's vmapping_counter
   * dropped to 0).
   * Locking: called with dmabuf->resv held.
   */
  vunmap?(t: Task, dmabuf: DmaBuf, map: IosysMap): KGen;
  /**
   * @mmap: [optional] Set up a user mapping in `vma` (eagerly, or with a
   * faulting `vm_ops` for movable or revocable memory, [C2]).
   * Locking: called without dmabuf->resv held.
   */
  mmap?(t: Task, dmabuf: DmaBuf, vma: Vma): KGen<number>;
  /**
   * @get_pfn: [optional, RFC] Translate page `pgoff` of the buffer to a PFN
   * and `max_order`. -ENODEV when revoked, -EINVAL out of range ([P1], [P5]).
   * Locking: called with dmabuf->resv held.
   */
  get_pfn?(t: Task, attach: DmaBufAttachment, pgoff: number): KGen<Result<PfnResult>>;
}

/**
 * `struct dma_buf_attach_ops` — the importer's contract ([O6]).
 */
export interface DmaBufAttachOps {
  /** The importer can handle memory without struct page (PCI BARs). */
  readonly allow_peer2peer: boolean;
  /**
   * @invalidate_mappings: [optional] The exporter is about to move or revoke
   * the backing store: drop or refresh every translation before the next
   * access; may add fences or wait for its own DMA ([L10], [LT9]).
   * Locking: called with dmabuf->resv held; must not take it again, must not
   * call a resv-taking dma-buf API, must not take mmap_lock ([I15]).
   */
  invalidate_mappings?(t: Task, attach: DmaBufAttachment): KGen;
  /** The pre-2026 name of {@link invalidate_mappings}; accepted as an alias. */
  move_notify?(t: Task, attach: DmaBufAttachment): KGen;
}

/** `struct dma_buf_export_info`. */
export interface DmaBufExportInfo {
  readonly exp_name: string;
  readonly ops: DmaBufOps;
  /** Size in pages. */
  readonly pages: number;
  readonly priv: unknown;
  /** Shared reservation object; null embeds a fresh one. */
  readonly resv?: import('./dma-resv.ts').DmaResv | null;
  /** The frames backing the buffer now (the model's own addition, for traces and the viewer). */
  readonly backing?: () => readonly import('./page-alloc.ts').Frame[];
}
