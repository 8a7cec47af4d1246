/**
 * The `system-heap` exporter: pages allocated at export and never moved, so
 * every mapping stays valid until release ([LT6] holds trivially). A static
 * exporter (no pin/unpin); mmap maps every page eagerly.
 *
 * vmap/vunmap (`system_heap_vmap`, called with resv held) map the pages into
 * the kernel under the heap buffer's own mutex (`buffer->lock`); the pages
 * never move, so nothing needs pinning ([C6]). begin/end_cpu_access
 * (`system_heap_dma_buf_begin/end_cpu_access`, called without resv) do cache
 * maintenance for the vmap and every mapped attachment under `buffer->lock`
 * and never take resv ([C7]); cache state is not modelled, so only the lock
 * is.
 *
 * Models: drivers/dma-buf/heaps/system_heap.c
 */
import { type DmaBuf, type DmaBufAttachment, dma_buf_export } from '../../kernel/dma-buf.ts';
import type { DmaBufOps, IosysMap, PfnResult } from '../../kernel/dma-buf-ops.ts';
import { dma_resv_assert_held } from '../../kernel/dma-resv.ts';
import { EINVAL, isErr, type Result } from '../../kernel/errno.ts';
import { Lock, mutex_lock, mutex_unlock } from '../../kernel/locking.ts';
import { installTranslation, VM_PFNMAP_FLAGS, type Vma, vma_link } from '../../kernel/memory.ts';
import { alloc_pages, type Frame, free_pages, pfnRef } from '../../kernel/page-alloc.ts';
import type { KGen, Task } from '../../kernel/sched.ts';
import { defineExporter } from '../driver.ts';
import { mapFrames, unmapFrames, vmapFrames, vunmapFrames } from './common.ts';

// Every generator function here is made once, not per buffer: a generator
// function made per buffer costs V8 a fresh prototype and object shape the
// first time it runs, in every execution.

/**
 * Eager mapping (remap_pfn_range) is fine: the pages never move ([C2] a).
 * remap_pfn_range makes the VMA VM_IO | VM_PFNMAP | VM_DONTEXPAND |
 * VM_DONTDUMP, so mremap cannot grow it.
 */
function* system_heap_mmap(t: Task, frames: readonly Frame[], buf: DmaBuf, vma: Vma): KGen<number> {
  vma.vm_flags |= VM_PFNMAP_FLAGS;
  const s = t.at('remap_pfn_range', 'write', vma);
  for (let i = 0; i < vma.pages; i++) {
    const f = frames[vma.vm_pgoff + i];
    if (f) s.touch(f, 'write');
  }
  yield s;
  for (let i = 0; i < vma.pages; i++) {
    const f = frames[vma.vm_pgoff + i];
    if (f) vma.ptes[i] = installTranslation(t, 'pte', vma.owner, buf.name, vma.vm_pgoff + i, pfnRef(f));
  }
  yield* vma_link(t, vma, buf.f_mapping);
  return 0;
}

/** Locking: resv held ([L3]); vm_map_ram of the pages under buffer->lock ([C6]). */
function* system_heap_vmap(t: Task, frames: readonly Frame[], lock: Lock, buf: DmaBuf): KGen<Result<IosysMap>> {
  dma_resv_assert_held(t, buf.resv, 'system_heap_vmap', ['L3', 'C6']);
  yield* mutex_lock(t, lock);
  const map = yield* vmapFrames(t, 'system_heap_do_vmap', buf, frames);
  yield* mutex_unlock(t, lock);
  return map;
}

/** Locking: resv held ([L3]). */
function* system_heap_vunmap(t: Task, lock: Lock, buf: DmaBuf, map: IosysMap): KGen {
  dma_resv_assert_held(t, buf.resv, 'system_heap_vunmap', ['L3', 'C6']);
  yield* mutex_lock(t, lock);
  yield* vunmapFrames(t, 'vunmap', map);
  yield* mutex_unlock(t, lock);
}

/**
 * begin_cpu_access: invalidate_kernel_vmap_range + dma_sync_sgtable_for_cpu;
 * end_cpu_access: flush_kernel_vmap_range + dma_sync_sgtable_for_device; both
 * under buffer->lock, resv not held ([C7]).
 */
function* system_heap_cpu_access(t: Task, lock: Lock): KGen<number> {
  yield* mutex_lock(t, lock);
  yield* mutex_unlock(t, lock);
  return 0;
}

/** RFC get_pfn for a heap buffer: the page never moves, max_order 0. */
function* system_heap_get_pfn(
  t: Task,
  frames: readonly Frame[],
  attach: DmaBufAttachment,
  pgoff: number,
): KGen<Result<PfnResult>> {
  dma_resv_assert_held(t, attach.dmabuf.resv, 'system_heap_get_pfn', ['P1', 'L3']);
  const f = frames[pgoff];
  if (!f) return -EINVAL;
  return { pfn: pfnRef(f), max_order: 0 };
}

export const systemHeap = defineExporter({
  name: 'system-heap',
  exportCall: 'system_heap_allocate',
  summary: 'pages allocated at export, never moved',
  options: {},
  ops: {},
  *export(t, env) {
    const pool = env.k.physmem.pools.get('system');
    if (!pool) throw new Error('no system pool');
    const frames = yield* alloc_pages(t, pool, env.pages, (i) => `${env.name} (system-heap) page ${i}`);
    // struct system_heap_buffer's lock: vmap count, vaddr, the attachment list.
    const lock = new Lock(env.k, `${env.name}:system_heap_buffer->lock`, 'system_heap_buffer->lock', 'mutex');
    const ops: DmaBufOps = {
      map_dma_buf: (t, attach, dir) => mapFrames(t, 'system_heap_map_dma_buf', attach, frames, dir),
      unmap_dma_buf: (t, _attach, sgt) => unmapFrames(t, 'system_heap_unmap_dma_buf', sgt),
      release: (t) => free_pages(t, frames),
      mmap: (t, buf, vma) => system_heap_mmap(t, frames, buf, vma),
      vmap: (t, buf) => system_heap_vmap(t, frames, lock, buf),
      vunmap: (t, buf, map) => system_heap_vunmap(t, lock, buf, map),
      begin_cpu_access: (t) => system_heap_cpu_access(t, lock),
      end_cpu_access: (t) => system_heap_cpu_access(t, lock),
      get_pfn: (t, attach, pgoff) => system_heap_get_pfn(t, frames, attach, pgoff),
    };
    const buf = yield* dma_buf_export(t, env.name, {
      exp_name: 'system-heap',
      ops,
      pages: env.pages,
      priv: frames,
      backing: () => frames,
    });
    if (isErr(buf)) return buf;
    return { buf, pool, ops: {} };
  },
});
