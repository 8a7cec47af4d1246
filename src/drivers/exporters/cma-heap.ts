/**
 * The `cma-heap` exporter: one physically contiguous allocation from a CMA
 * area (`cma_alloc`), never moved, so every mapping stays valid until release
 * ([LT6] trivially); a static exporter (no pin/unpin).
 *
 * - `cma_heap_allocate` takes `pagecount` contiguous frames from the `cma`
 *   pool and kmallocs `buffer->pages`, one entry per page (KASAN knows its
 *   bounds);
 * - mmap (`cma_heap_mmap`) refuses a private mapping (-EINVAL) and installs
 *   `dma_heap_vm_ops`, whose fault handler (`cma_heap_vm_fault`) bounds
 *   `vmf->pgoff` against `pagecount` and maps `pages[pgoff]`, with no lock
 *   (the pages never move, [C2] b, [C4] trivially):
 *   - `mmap: pfnmap` (since 6.8, "dma-buf: heaps: Don't track CMA dma-buf
 *     pages under RssFile", Jan 2024): the VMA is VM_IO | VM_PFNMAP |
 *     VM_DONTEXPAND | VM_DONTDUMP and the fault inserts the PFN
 *     (`vmf_insert_pfn`): no struct page is touched, and mremap cannot grow
 *     the VMA;
 *   - `mmap: page` (5.11 – 6.7): no VM flags; the fault hands back the page
 *     (`vmf->page = pages[pgoff]; get_page()`), so the PTE is a struct-page
 *     mapping holding a reference and a mapcount (`finish_fault`), and
 *     mremap can grow the VMA past the buffer;
 *   - `fault_bound: '>='` is the check since "dma-buf: heaps: Fix off-by-one
 *     in CMA heap fault handler" (Aug 2024, CVE-2024-46852); `'>'` is the
 *     off-by-one before it: a fault at `pgoff == pagecount` — reachable once
 *     mremap grew the VMA, which `dma_buf_mmap`'s size check never sees again
 *     ([C1]) — reads `pages[pagecount]`, one past the array (KASAN
 *     slab-out-of-bounds; the kernel would then map whatever page pointer lies
 *     there, the model gives SIGBUS after the report);
 * - vmap/vunmap (`cma_heap_vmap`, resv held) map the pages under
 *   `buffer->lock` ([C6]); begin/end_cpu_access (`cma_heap_dma_buf_begin/
 *   end_cpu_access`, resv not held) take only `buffer->lock` ([C7]);
 * - release (`cma_heap_dma_buf_release`) gives the range back with
 *   `cma_release` → `free_contig_range`, which drops one reference per page
 *   and WARNs when a page had more (a page still in use stays allocated until
 *   its last reference goes).
 *
 * Simplifications: cache maintenance has no effect; the attachment list is
 * not modelled (map_dma_buf maps every page for the attachment's device);
 * the CMA area is a pool of its own (`cma`) that never runs out.
 *
 * Models: drivers/dma-buf/heaps/cma_heap.c, mm/cma.c (cma_alloc, cma_release)
 */
import { apiMisuse } from '../../checkers/api.ts';
import { KasanArray } from '../../checkers/kasan.ts';
import { type DmaBuf, dma_buf_export } from '../../kernel/dma-buf.ts';
import type { DmaBufOps, IosysMap } from '../../kernel/dma-buf-ops.ts';
import { dma_resv_assert_held } from '../../kernel/dma-resv.ts';
import { EINVAL, isErr, type Result } from '../../kernel/errno.ts';
import { Lock, mutex_lock, mutex_unlock } from '../../kernel/locking.ts';
import {
  finish_fault,
  VM_FAULT_SIGBUS,
  VM_PFNMAP_FLAGS,
  VM_SHARED,
  type Vma,
  type VmFault,
  vma_link,
  vmf_insert_pfn,
} from '../../kernel/memory.ts';
import {
  type Frame,
  freeStep,
  fs_reclaim,
  might_alloc,
  type PfnRef,
  pfnRef,
  put_page,
  takeContiguous,
} from '../../kernel/page-alloc.ts';
import { type KGen, kfn, type Task } from '../../kernel/sched.ts';
import { defineExporter } from '../driver.ts';
import { mapFrames, unmapFrames, vmapFrames, vunmapFrames } from './common.ts';

/** Where the CMA area's frames start (a pool of its own, made on first use). */
const CMA_BASE_PFN = 0x180000;

/** `struct cma_heap_buffer`: what the fault handler and the other ops use. */
interface CmaHeapBuffer {
  /** The contiguous range (`buffer->cma_pages`). */
  readonly frames: readonly Frame[];
  /** `buffer->pages`: one entry per page of the contiguous range (with its generation at allocation). */
  readonly pages: KasanArray<PfnRef>;
  readonly pagecount: number;
  /** `buffer->lock`: vmap count, the attachment list. */
  readonly lock: Lock;
  /** Option `mmap`: 'pfnmap' (VM_PFNMAP, vmf_insert_pfn) or 'page' (vmf->page + get_page). */
  readonly pfnmap: boolean;
  /** Option `fault_bound`: the fixed `>=` check, or the off-by-one `>`. */
  readonly boundInclusive: boolean;
}

// The generator functions are made once, here, not per buffer (see udmabuf.ts).

/**
 * `cma_heap_vm_fault`. Locking: mmap_lock held for read; takes nothing (the
 * pages never move). Bounds pgoff, then maps `pages[pgoff]` by PFN or hands
 * the page back with a reference.
 */
const cma_heap_vm_fault = kfn(
  'cma_heap_vm_fault',
  function* (t: Task, vmf: VmFault, buffer: CmaHeapBuffer): KGen<number> {
    const pgoff = vmf.pgoff;
    if (buffer.boundInclusive ? pgoff >= buffer.pagecount : pgoff > buffer.pagecount) return VM_FAULT_SIGBUS;
    const page = buffer.pages.at(t, pgoff);
    // Past the array: reported; what the kernel would map from there is not modelled.
    if (!page) return VM_FAULT_SIGBUS;
    if (buffer.pfnmap) return yield* vmf_insert_pfn(t, vmf.vma, vmf.page, page);
    // vmf->page = buffer->pages[pgoff]; get_page(vmf->page); return 0 — finish_fault maps it.
    return yield* finish_fault(t, vmf.vma, vmf.page, page);
  },
);

/** `cma_heap_mmap`: a shared mapping only; the VM flags of the `mmap` option; `dma_heap_vm_ops`. */
function* cma_heap_mmap(t: Task, buffer: CmaHeapBuffer, dmabuf: DmaBuf, vma: Vma): KGen<number> {
  if ((vma.vm_flags & VM_SHARED) === 0) return -EINVAL;
  if (buffer.pfnmap) vma.vm_flags |= VM_PFNMAP_FLAGS;
  vma.vm_ops = { name: 'cma_heap_vm_fault', fault: (t, vmf) => cma_heap_vm_fault(t, vmf, buffer) };
  vma.vm_private_data = buffer;
  yield* vma_link(t, vma, dmabuf.f_mapping);
  return 0;
}

/** `cma_heap_vmap`. Locking: resv held ([L3]); vmap of the pages under buffer->lock ([C6]). */
function* cma_heap_vmap(t: Task, buffer: CmaHeapBuffer, dmabuf: DmaBuf): KGen<Result<IosysMap>> {
  dma_resv_assert_held(t, dmabuf.resv, 'cma_heap_vmap', ['L3', 'C6']);
  yield* mutex_lock(t, buffer.lock);
  const map = yield* vmapFrames(t, 'cma_heap_do_vmap', dmabuf, buffer.frames);
  yield* mutex_unlock(t, buffer.lock);
  return map;
}

/** `cma_heap_vunmap`. Locking: resv held ([L3]). */
function* cma_heap_vunmap(t: Task, buffer: CmaHeapBuffer, dmabuf: DmaBuf, map: IosysMap): KGen {
  dma_resv_assert_held(t, dmabuf.resv, 'cma_heap_vunmap', ['L3', 'C6']);
  yield* mutex_lock(t, buffer.lock);
  yield* vunmapFrames(t, 'vunmap', map);
  yield* mutex_unlock(t, buffer.lock);
}

/**
 * begin_cpu_access: invalidate_kernel_vmap_range + dma_sync_sgtable_for_cpu;
 * end_cpu_access: flush + dma_sync_sgtable_for_device; under buffer->lock,
 * resv not held ([C7]).
 */
function* cma_heap_cpu_access(t: Task, buffer: CmaHeapBuffer): KGen<number> {
  yield* mutex_lock(t, buffer.lock);
  yield* mutex_unlock(t, buffer.lock);
  return 0;
}

/**
 * `cma_heap_dma_buf_release` → `cma_release` → `free_contig_range`: one
 * reference dropped per page; pages that had more stay allocated until their
 * last reference goes, and the WARN says how many.
 */
function* cma_heap_dma_buf_release(t: Task, buffer: CmaHeapBuffer): KGen {
  const frames = buffer.frames;
  yield freeStep(t, 'cma_release', frames);
  let busy = 0;
  for (const f of frames) {
    if (f.head.refcount !== 1) busy++;
    put_page(t, f, 'free_contig_range');
  }
  if (busy > 0) {
    apiMisuse(t, 'free_contig_range', `${busy} pages are still in use!`, ['I2']);
  }
}

export const cmaHeap = defineExporter({
  name: 'cma-heap',
  exportCall: 'cma_heap_allocate',
  summary: 'one contiguous CMA allocation, never moved; faulting mmap',
  options: {
    mmap: {
      type: 'enum',
      values: ['pfnmap', 'page'],
      default: 'pfnmap',
      doc: 'pfnmap: VM_IO|VM_PFNMAP|VM_DONTEXPAND|VM_DONTDUMP and vmf_insert_pfn (since 6.8); page: the fault hands back vmf->page with get_page (a struct-page mapping) and nothing stops mremap from growing the VMA (5.11 to 6.7)',
    },
    fault_bound: {
      type: 'enum',
      values: ['>=', '>'],
      default: '>=',
      doc: "the fault handler's bound on vmf->pgoff: '>=' pagecount gives SIGBUS (since Aug 2024); '>' is the off-by-one before it, which reads pages[pagecount]",
    },
  },
  ops: {},
  *export(t, env) {
    const pool = env.k.physmem.pool('cma', 'system', CMA_BASE_PFN);
    // cma_alloc(cma, pagecount, align): a contiguous range, zeroed.
    might_alloc(t, 'GFP_KERNEL');
    yield* fs_reclaim(t);
    yield t.at('cma_alloc', 'alloc', pool);
    const frames = takeContiguous(t, pool, env.pages, (i) => `${env.name} (cma-heap) page ${i}`);
    const buffer: CmaHeapBuffer = {
      frames,
      pages: new KasanArray(t, 'cma_heap_buffer->pages', env.name, frames.map(pfnRef)),
      pagecount: env.pages,
      lock: new Lock(env.k, `${env.name}:cma_heap_buffer->lock`, 'cma_heap_buffer->lock', 'mutex'),
      pfnmap: env.options.mmap !== 'page',
      boundInclusive: env.options.fault_bound !== '>',
    };
    const ops: DmaBufOps = {
      map_dma_buf: (t, attach, dir) => mapFrames(t, 'cma_heap_map_dma_buf', attach, frames, dir),
      unmap_dma_buf: (t, _attach, sgt) => unmapFrames(t, 'cma_heap_unmap_dma_buf', sgt),
      release: (t) => cma_heap_dma_buf_release(t, buffer),
      mmap: (t, dmabuf, vma) => cma_heap_mmap(t, buffer, dmabuf, vma),
      vmap: (t, dmabuf) => cma_heap_vmap(t, buffer, dmabuf),
      vunmap: (t, dmabuf, map) => cma_heap_vunmap(t, buffer, dmabuf, map),
      begin_cpu_access: (t) => cma_heap_cpu_access(t, buffer),
      end_cpu_access: (t) => cma_heap_cpu_access(t, buffer),
    };
    const buf = yield* dma_buf_export(t, env.name, {
      exp_name: 'cma-heap',
      ops,
      pages: env.pages,
      priv: buffer,
      backing: () => frames,
    });
    if (isErr(buf)) return buf;
    return { buf, pool, ops: {} };
  },
});
