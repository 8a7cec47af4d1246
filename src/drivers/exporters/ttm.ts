/**
 * The `ttm` exporter: a TTM-like buffer object that can move between VRAM
 * and system memory. A dynamic exporter (pin/unpin); its CPU mmap is a
 * faulting mapping that takes resv and is zapped with unmap_mapping_range on
 * move ([C4], [LT8]).
 *
 * `move` ([LT8]): lock resv; if pinned (a dynamic pin or a static mapping)
 * fail with -EBUSY and change nothing; else invalidate every dynamic
 * attachment, zap the CPU mappings of the buffer's address_space, wait for
 * BOOKKEEP fences, allocate the new placement, publish the move as a KERNEL
 * fence, copy, switch the backing, signal, free the old frames, unlock.
 * With `async_move` the move is pipelined (ttm_bo_move_accel_cleanup): the
 * copy is queued for the copy engine (op `copy`), which signals the fence and
 * then frees the old placement; CPU faults that find it pending wait with
 * mmap_lock dropped and return VM_FAULT_RETRY (ttm_bo_vm_fault_idle).
 *
 * CPU access through the kernel (amdgpu_dma_buf.c, [C6], [C7]):
 * - `vmap` (resv held) pins the BO, then maps its current placement
 *   (`amdgpu_dma_buf_vmap`: amdgpu_bo_pin + drm_gem_dmabuf_vmap, from
 *   "drm/amdgpu: Pin buffer while vmap'ing exported dma-buf objects", Thomas
 *   Zimmermann, Aug 2025); `vunmap` unmaps and unpins. With `vmap_pin: false`
 *   (kernels before that fix: drm_gem_ttm_vmap → ttm_bo_vmap, no pin) a move
 *   frees the pages under the kernel mapping;
 * - `begin_cpu_access` (`amdgpu_dma_buf_begin_cpu_access`, resv not held):
 *   for a CPU read (DMA_FROM_DEVICE or DMA_BIDIRECTIONAL) reserves the BO
 *   and, unless it is pinned, validates it into GTT (here: moves it from VRAM
 *   to system memory) — what amdgpu does when the display can scan out of GTT
 *   (`amdgpu_display_supported_domains`, APUs). `cpu_access_migrate: false`
 *   is the VRAM-only case: begin_cpu_access returns 0 at once. There is no
 *   `end_cpu_access`.
 *
 * Models: drivers/gpu/drm/ttm/ttm_bo.c (ttm_bo_validate,
 * ttm_bo_handle_move_mem), ttm_bo_vm.c (ttm_bo_vm_fault, ttm_bo_vm_reserve,
 * ttm_bo_vm_fault_idle),
 * drivers/gpu/drm/drm_prime.c and amdgpu_dma_buf.c (the dma_buf_ops)
 */

import { apiMisuse } from '../../checkers/api.ts';
import { kasan_check } from '../../checkers/kasan.ts';
import {
  type DmaBuf,
  type DmaBufAttachment,
  dma_buf_check_alive,
  dma_buf_export,
  dma_buf_invalidate_mappings,
  dma_buf_put,
  get_dma_buf,
} from '../../kernel/dma-buf.ts';
import type { DmaBufOps, DmaDataDirection, IosysMap, PfnResult, SgTable } from '../../kernel/dma-buf-ops.ts';
import {
  type DmaFence,
  dma_fence_init,
  dma_fence_signal,
  dma_fence_test_signaled_flag,
  dma_fence_wait,
} from '../../kernel/dma-fence.ts';
import {
  DMA_RESV_USAGE_BOOKKEEP,
  DMA_RESV_USAGE_KERNEL,
  dma_resv_add_fence,
  dma_resv_assert_held,
  dma_resv_lock,
  dma_resv_lock_interruptible,
  dma_resv_reserve_fences,
  dma_resv_test_signaled,
  dma_resv_trylock,
  dma_resv_unlock,
  dma_resv_wait_timeout,
} from '../../kernel/dma-resv.ts';
import { EBUSY, EINVAL, isErr, type Result } from '../../kernel/errno.ts';
import type { Shrinker } from '../../kernel/kernel.ts';
import { lock_release } from '../../kernel/locking.ts';
import {
  fault_flag_allow_retry_first,
  installTranslation,
  unmap_mapping_range,
  VM_FAULT_NOPAGE,
  VM_FAULT_RETRY,
  VM_FAULT_SIGBUS,
  VM_PFNMAP_FLAGS,
  type Vma,
  type VmFault,
  type VmOperations,
  vma_link,
  vmf_insert_pfn,
  zapTranslation,
} from '../../kernel/memory.ts';
import {
  alloc_pages,
  type Frame,
  free_pages,
  freeStep,
  type PagePool,
  pfnRef,
  register_shrinker,
  releaseFrames,
  type Translation,
  unregister_shrinker,
} from '../../kernel/page-alloc.ts';
import { type Blocker, type KGen, KObject, kfn, type Task } from '../../kernel/sched.ts';
import { defineExporter } from '../driver.ts';
import { mapFrames, unmapFrames, vmapFrames, vunmapFrames } from './common.ts';

/** `struct ttm_buffer_object`, the parts the model needs. Protected by resv. */
/** A pipelined move: the copy engine's DMA mappings of both placements, and the move fence. */
interface CopyJob {
  readonly fence: DmaFence;
  readonly src: readonly Translation[];
  readonly dst: readonly Translation[];
  /** The old placement, freed once the fence signalled (empty when already freed). */
  readonly old: readonly Frame[];
}

/**
 * The copy engine's ring: the move queues a job, the engine (op `copy`)
 * waits until one is queued ([LT8] 4 with pipelining).
 */
class CopyQueue extends KObject implements Blocker {
  readonly type = 'ttm_copy_queue';
  readonly jobs: CopyJob[] = [];

  ready(): boolean {
    return this.jobs.length > 0;
  }

  override snapshot(): Record<string, unknown> {
    return { jobs: this.jobs.length };
  }
}

export class TtmBufferObject {
  pin_count = 0;
  /** Fence of the last move (KERNEL usage); faults and pins wait for it. */
  moving: DmaFence | null = null;
  moves = 0;
  /** The BO's shrinker, while registered (option `shrinker`). */
  shrinker: Shrinker | null = null;
  /** Option `async_move`: moves are pipelined, the copy engine (op `copy`) runs them. */
  asyncMove = false;
  /** Option `free_old_on_signal` (with `async_move`): false frees the old placement at once. */
  freeOldOnSignal = true;
  /** Option `fault_retry_ref`: the fault holds a BO reference while it waits with mmap_lock dropped. */
  faultRetryRef = true;
  /** Released while a pipelined move was pending: the copy engine frees the memory after it. */
  deferredFree = false;
  /** The copy engine's queue of pipelined moves (`async_move`). */
  copyQueue: CopyQueue | null = null;

  constructor(
    readonly name: string,
    public placement: PagePool,
    public frames: Frame[],
    readonly pools: { readonly vram: PagePool; readonly system: PagePool },
  ) {}
}

// Every generator function here is made once, not per buffer: a generator
// function made per buffer costs V8 a fresh prototype and object shape the
// first time it runs, in every execution.

/**
 * `ttm_bo_vm_fault()`. Locking: mmap_lock held for read.
 *
 * `ttm_bo_vm_reserve`: trylocks resv; if contended on the first attempt
 * (fault_flag_allow_retry_first) it takes a BO reference, drops mmap_lock,
 * waits for resv by locking and unlocking it, puts the reference and returns
 * VM_FAULT_RETRY; on a retry it blocks
 * on resv with mmap_lock held (mmap_lock → resv is the documented order,
 * [C4]).
 *
 * `ttm_bo_vm_fault_idle`: a pipelined move still pending ([LT8] 4, the KERNEL
 * fence unsignalled) is waited for with mmap_lock dropped on the first
 * attempt — holding a reference on the BO (drm_gem_object_get), since once
 * mmap_lock is gone a munmap may drop the VMA's file reference and with it
 * the last one — then resv is unlocked and the fault returns VM_FAULT_RETRY;
 * on a retry it waits with mmap_lock held. With synchronous moves the move
 * fence is always signalled by the time the fault holds resv (the move
 * signals it under resv), so only `async_move` BOs take that path.
 *
 * Then inserts the PFN and unlocks resv before returning ([L14]).
 */
const ttm_bo_vm_fault = kfn(
  'ttm_bo_vm_fault',
  function* (t: Task, vmf: VmFault, bo: TtmBufferObject, buf: DmaBuf): KGen<number> {
    if (!(yield* dma_resv_trylock(t, buf.resv))) {
      if (!fault_flag_allow_retry_first(vmf.flags)) {
        if ((yield* dma_resv_lock_interruptible(t, buf.resv, null)) !== 0) return VM_FAULT_NOPAGE;
      } else {
        // With mmap_lock gone only the reference keeps the BO (and its resv) alive.
        yield* get_dma_buf(t, buf); // drm_gem_object_get
        yield* lock_release(t, vmf.vma.mm.mmap_lock, 'mmap_read_unlock');
        yield* dma_resv_lock(t, buf.resv, null);
        yield* dma_resv_unlock(t, buf.resv);
        yield* dma_buf_put(t, buf); // drm_gem_object_put
        return VM_FAULT_RETRY;
      }
    }
    if (bo.asyncMove) {
      if ((yield* ttm_bo_vm_fault_idle(t, vmf, bo, buf)) === VM_FAULT_RETRY) return VM_FAULT_RETRY;
    } else if (bo.moving) yield* dma_fence_wait(t, bo.moving, true);
    const f = bo.frames[vmf.pgoff];
    let ret = VM_FAULT_SIGBUS;
    if (f) ret = yield* vmf_insert_pfn(t, vmf.vma, vmf.page, pfnRef(f));
    yield* dma_resv_unlock(t, buf.resv);
    return ret;
  },
);

/**
 * `ttm_bo_vm_fault_idle()`: waits for a pipelined move still pending (the
 * KERNEL fence unsignalled); 0 when idle, VM_FAULT_RETRY when it waited with
 * mmap_lock dropped. Locking: resv and mmap_lock (read) held; on the first
 * attempt (fault_flag_allow_retry_first) takes a BO reference, drops
 * mmap_lock, waits, unlocks resv and puts the reference; on a retry waits with
 * both held. Option `fault_retry_ref: false` forgets the BO reference: a
 * munmap racing the wait can then drop the last one and free the BO the
 * handler still waits on and unlocks.
 */
function* ttm_bo_vm_fault_idle(t: Task, vmf: VmFault, bo: TtmBufferObject, buf: DmaBuf): KGen<number> {
  if (yield* dma_resv_test_signaled(t, buf.resv, DMA_RESV_USAGE_KERNEL)) return 0;
  if (!fault_flag_allow_retry_first(vmf.flags)) {
    yield* dma_resv_wait_timeout(t, buf.resv, DMA_RESV_USAGE_KERNEL, true);
    return 0;
  }
  if (bo.faultRetryRef) yield* get_dma_buf(t, buf); // drm_gem_object_get
  yield* lock_release(t, vmf.vma.mm.mmap_lock, 'mmap_read_unlock');
  // bo->base.resv is dereferenced from here on: the BO must still be there.
  if (!dma_buf_check_alive(t, buf, 'ttm_bo_vm_fault_idle')) return VM_FAULT_RETRY;
  yield* dma_resv_wait_timeout(t, buf.resv, DMA_RESV_USAGE_KERNEL, true);
  if (!dma_buf_check_alive(t, buf, 'ttm_bo_vm_fault_idle')) return VM_FAULT_RETRY;
  yield* dma_resv_unlock(t, buf.resv);
  if (bo.faultRetryRef) yield* dma_buf_put(t, buf); // drm_gem_object_put
  return VM_FAULT_RETRY;
}

function ttmVmOps(bo: TtmBufferObject, buf: DmaBuf): VmOperations {
  return {
    name: 'ttm_bo_vm_fault',
    fault: (t: Task, vmf: VmFault) => ttm_bo_vm_fault(t, vmf, bo, buf),
  };
}

/** `ttm_bo_validate()` to the other placement: the `move` op. */
const ttm_bo_validate = kfn('ttm_bo_validate', function* (t: Task, buf: DmaBuf, bo: TtmBufferObject): KGen<number> {
  yield* dma_resv_lock(t, buf.resv, null);
  // The BO's last reference went with the dma-buf's release: its memory is gone.
  if (!dma_buf_check_alive(t, buf, 'ttm_bo_validate')) {
    yield* dma_resv_unlock(t, buf.resv);
    return -EINVAL;
  }
  if (bo.pin_count > 0) {
    yield* dma_resv_unlock(t, buf.resv);
    return -EBUSY;
  }
  yield* ttm_bo_handle_move_mem(t, buf, bo, otherPlacement(bo));
  yield* dma_resv_unlock(t, buf.resv);
  return 0;
});

function otherPlacement(bo: TtmBufferObject): PagePool {
  return bo.placement === bo.pools.vram ? bo.pools.system : bo.pools.vram;
}

/** `ttm_bo_pin()` (amdgpu_bo_pin): waits for a pending move, then the BO stays put. Caller holds resv. */
function* ttm_bo_pin(t: Task, bo: TtmBufferObject): KGen {
  if (bo.moving) yield* dma_fence_wait(t, bo.moving, false);
  bo.pin_count++;
}

const ttm_bo_handle_move_mem = kfn(
  'ttm_bo_handle_move_mem',
  function* (t: Task, buf: DmaBuf, bo: TtmBufferObject, to: PagePool): KGen {
    // amdgpu_bo_move_notify → dma_buf_invalidate_mappings, under resv ([LT8] 3).
    yield* dma_buf_invalidate_mappings(t, buf);
    // ttm_bo_unmap_virtual: zap every CPU PTE through the address_space ([C3]).
    yield* unmap_mapping_range(t, buf.f_mapping);
    // ttm_bo_wait_ctx: no importer access may still be in flight ([LT9] i).
    yield* dma_resv_wait_timeout(t, buf.resv, DMA_RESV_USAGE_BOOKKEEP, false);
    const n = ++bo.moves;
    const frames = yield* alloc_pages(t, to, bo.frames.length, (i) => `${bo.name} (ttm, ${to.name}) page ${i}`);
    if (bo.asyncMove) {
      yield* ttm_bo_move_pipelined(t, buf, bo, to, frames, n);
      return;
    }
    const fence = yield* ttm_bo_publish_move_fence(t, buf, bo, n);
    // ttm_bo_move_memcpy, then switch the backing and free the old frames.
    const copy = t.at('ttm_bo_move_memcpy', 'write', frames[0] ?? to);
    for (const f of bo.frames) copy.touch(f, 'read');
    for (const f of frames) copy.touch(f, 'write');
    yield copy;
    const old = bo.frames;
    bo.frames = frames;
    bo.placement = to;
    yield* dma_fence_signal(t, fence);
    yield* free_pages(t, old);
  },
);

/**
 * Publishes move number `n` as a KERNEL fence in the BO's resv, which faults,
 * pins and static importers wait for ([LT8] 4). Locking: resv held.
 */
function* ttm_bo_publish_move_fence(t: Task, buf: DmaBuf, bo: TtmBufferObject, n: number): KGen<DmaFence> {
  dma_resv_reserve_fences(t, buf.resv, 1);
  const fence = dma_fence_init(
    t,
    `${bo.name}:ttm-move#${n}`,
    { driverName: 'ttm', timelineName: 'move' },
    t.k.fenceContextAlloc(),
    n,
  );
  yield* dma_resv_add_fence(t, buf.resv, fence, DMA_RESV_USAGE_KERNEL);
  bo.moving = fence;
  return fence;
}

/**
 * A pipelined move (`ttm_bo_move_accel_cleanup`): the copy is queued for the
 * copy engine through its DMA mappings of both placements, the move fence is
 * published (KERNEL usage) and the BO switches to the new placement at once;
 * the old one is freed when the fence signals (a ghost object), so faults,
 * pins and static importers wait for the fence ([LT7], [LT8] 4). Locking:
 * resv held. With `free_old_on_signal: false` the old placement is freed at
 * once, while the copy engine still reads it (the bug).
 */
function* ttm_bo_move_pipelined(
  t: Task,
  buf: DmaBuf,
  bo: TtmBufferObject,
  to: PagePool,
  frames: Frame[],
  n: number,
): KGen {
  const fence = yield* ttm_bo_publish_move_fence(t, buf, bo, n);
  const queue = bo.copyQueue as CopyQueue;
  const old = bo.frames;
  const s = t.at('amdgpu_job_submit', 'write', queue);
  for (const f of old) s.touch(f, 'write');
  for (const f of frames) s.touch(f, 'write');
  yield s;
  const engine = `${bo.name}:copy-engine`;
  const src = old.map((f, i) => installTranslation(t, 'dma', engine, buf.name, i, pfnRef(f)));
  const dst = frames.map((f, i) => installTranslation(t, 'dma', engine, buf.name, i, pfnRef(f)));
  queue.jobs.push({ fence, src, dst, old: bo.freeOldOnSignal ? old : [] });
  bo.frames = frames;
  bo.placement = to;
  if (!bo.freeOldOnSignal) yield* free_pages(t, old);
}

/**
 * The copy engine (the GPU scheduler's `amdgpu_job_run` of the copy job
 * `amdgpu_copy_buffer` queued by `amdgpu_job_submit`) runs the next
 * pipelined move: waits until one is queued,
 * copies through its DMA mappings (checked like any DMA), tears them down,
 * signals the move fence, then frees the old placement (the ghost object's
 * release). Signalling path: takes no lock ([L11]).
 */
const amdgpu_job_run = kfn('amdgpu_job_run', function* (t: Task, bo: TtmBufferObject): KGen {
  const queue = bo.copyQueue;
  if (!queue) {
    apiMisuse(t, 'amdgpu_job_run', `${bo.name} has no copy engine queue: its moves are not pipelined (async_move)`, [
      'LT8',
    ]);
    return;
  }
  yield t.at('amdgpu_job_run', 'write', queue, queue);
  const job = queue.jobs.shift();
  if (!job) return;
  const s = t.at('amdgpu_copy_buffer', 'read', job.src[0]?.frame ?? queue);
  // Writes: the copy's reads and writes, and the teardown of the engine's mappings of both.
  for (const tr of job.src) s.touch(tr.frame, 'write');
  for (const tr of job.dst) s.touch(tr.frame, 'write');
  yield s;
  for (const tr of job.src) kasan_check(t, tr, 'dma');
  for (const tr of job.dst) kasan_check(t, tr, 'dma');
  for (const tr of [...job.src, ...job.dst]) zapTranslation(tr);
  yield* dma_fence_signal(t, job.fence);
  if (job.old.length > 0) yield* free_pages(t, job.old);
  // The BO was released while its move was queued: the delayed delete's free.
  if (bo.deferredFree && job.fence === bo.moving) {
    bo.deferredFree = false;
    yield freeStep(t, 'ttm_bo_delayed_delete', bo.frames);
    releaseFrames(t, bo.frames);
    bo.frames = [];
  }
});

/** What an exported BO's ops work on: the BO and the export options. */
interface TtmState {
  readonly bo: TtmBufferObject;
  readonly vmapPin: boolean;
  readonly cpuAccessMigrate: boolean;
}

/** Locking: resv held. Waits for a pending move before returning ([O3] pin). */
function* ttm_pin(t: Task, bo: TtmBufferObject): KGen<number> {
  yield* ttm_bo_pin(t, bo);
  return 0;
}

function* ttm_unpin(bo: TtmBufferObject): KGen {
  bo.pin_count--;
}

function* amdgpu_dma_buf_map(
  t: Task,
  bo: TtmBufferObject,
  attach: DmaBufAttachment,
  dir: DmaDataDirection,
): KGen<Result<SgTable>> {
  dma_resv_assert_held(t, attach.dmabuf.resv, 'amdgpu_dma_buf_map', ['L3']);
  return yield* mapFrames(t, 'amdgpu_dma_buf_map', attach, bo.frames, dir);
}

/**
 * The TTM shrinker's eviction of this BO (`ttm_bo_shrink` / the LRU walk):
 * runs in direct reclaim, under fs_reclaim, in whatever thread allocated.
 * Locking: resv by trylock only — a shrinker must never block on it ([L8] d);
 * a BO that is busy, pinned or already in system memory is skipped. The
 * eviction is a move to system memory, so the importers' invalidate callbacks
 * run here, in reclaim ([LT8] 3).
 */
const ttm_bo_shrink = kfn('ttm_bo_shrink', function* (t: Task, buf: DmaBuf, bo: TtmBufferObject): KGen {
  if (!(yield* dma_resv_trylock(t, buf.resv))) return;
  if (bo.pin_count === 0 && bo.placement === bo.pools.vram && bo.frames.length > 0)
    yield* ttm_bo_handle_move_mem(t, buf, bo, bo.pools.system);
  yield* dma_resv_unlock(t, buf.resv);
});

/**
 * The BO's release with the dma-buf's (`ttm_bo_release`). A BO that is not
 * idle is not freed at once (ttm_bo_delayed_delete frees it once its fences
 * have signalled): with a pipelined move still pending, the copy engine
 * frees the BO's memory right after signalling the move fence (see
 * amdgpu_job_run), as the delayed delete would. The check runs in the final
 * put's step, which is ordered against every other step.
 */
function* ttm_bo_release(t: Task, bo: TtmBufferObject): KGen {
  if (bo.moving && !dma_fence_test_signaled_flag(bo.moving)) {
    bo.deferredFree = true;
    if (bo.shrinker) {
      unregister_shrinker(t.k, bo.shrinker);
      bo.shrinker = null;
    }
    return;
  }
  // unregister_shrinker: the BO is gone.
  if (bo.shrinker) {
    unregister_shrinker(t.k, bo.shrinker);
    bo.shrinker = null;
  }
  yield freeStep(t, 'ttm_bo_release', bo.frames);
  releaseFrames(t, bo.frames);
  bo.frames = [];
}

/**
 * A faulting mapping linked into the buffer's address_space ([C2] b);
 * `ttm_bo_mmap_obj` makes it VM_PFNMAP | VM_IO | VM_DONTEXPAND | VM_DONTDUMP.
 */
function* ttm_mmap(t: Task, bo: TtmBufferObject, dmabuf: DmaBuf, vma: Vma): KGen<number> {
  vma.vm_flags |= VM_PFNMAP_FLAGS;
  vma.vm_ops = ttmVmOps(bo, dmabuf);
  yield* vma_link(t, vma, dmabuf.f_mapping);
  return 0;
}

/**
 * `amdgpu_dma_buf_vmap`. Locking: resv held ([L3]). Pins (unless
 * `vmap_pin: false`), then maps the current placement ([C6]).
 */
function* amdgpu_dma_buf_vmap(t: Task, st: TtmState, dmabuf: DmaBuf): KGen<Result<IosysMap>> {
  dma_resv_assert_held(t, dmabuf.resv, 'amdgpu_dma_buf_vmap', ['L3', 'C6']);
  if (st.vmapPin) yield* ttm_bo_pin(t, st.bo);
  return yield* vmapFrames(t, 'ttm_bo_vmap', dmabuf, st.bo.frames);
}

/** `amdgpu_dma_buf_vunmap`. Locking: resv held ([L3]). Unmaps, then unpins. */
function* amdgpu_dma_buf_vunmap(t: Task, st: TtmState, dmabuf: DmaBuf, map: IosysMap): KGen {
  dma_resv_assert_held(t, dmabuf.resv, 'amdgpu_dma_buf_vunmap', ['L3', 'C6']);
  yield* vunmapFrames(t, 'ttm_bo_vunmap', map);
  if (st.vmapPin) st.bo.pin_count--;
}

/**
 * `amdgpu_dma_buf_begin_cpu_access`. Locking: resv not held; takes it
 * (amdgpu_bo_reserve) for a CPU read, and moves an unpinned BO out of
 * VRAM ([C7], [LT8]).
 */
const amdgpu_dma_buf_begin_cpu_access = kfn(
  'amdgpu_dma_buf_begin_cpu_access',
  function* (t: Task, dmabuf: DmaBuf, dir: DmaDataDirection, st: TtmState): KGen<number> {
    const bo = st.bo;
    const reads = dir === 'DMA_BIDIRECTIONAL' || dir === 'DMA_FROM_DEVICE';
    if (!reads || !st.cpuAccessMigrate) return 0;
    // amdgpu_bo_reserve(bo, false)
    yield* dma_resv_lock_interruptible(t, dmabuf.resv, null);
    if (dma_buf_check_alive(t, dmabuf, 'amdgpu_dma_buf_begin_cpu_access')) {
      // ttm_bo_validate() into GTT unless pinned (a no-op when already there).
      if (bo.pin_count === 0 && bo.placement === bo.pools.vram) {
        yield* ttm_bo_handle_move_mem(t, dmabuf, bo, bo.pools.system);
      }
    }
    yield* dma_resv_unlock(t, dmabuf.resv);
    return 0;
  },
);

/** RFC get_pfn on a TTM BO: the current placement's frame. Locking: resv held. */
function* ttm_bo_get_pfn(
  t: Task,
  bo: TtmBufferObject,
  attach: DmaBufAttachment,
  pgoff: number,
): KGen<Result<PfnResult>> {
  dma_resv_assert_held(t, attach.dmabuf.resv, 'ttm_bo_get_pfn', ['P1', 'L3']);
  const f = bo.frames[pgoff];
  if (!f) return -EINVAL;
  return { pfn: pfnRef(f), max_order: 0 };
}

export const ttm = defineExporter({
  name: 'ttm',
  exportCall: 'ttm_bo_init_reserved',
  summary: 'TTM-like buffer object that moves between VRAM and system memory',
  options: {
    placement: { type: 'enum', values: ['vram', 'system'], default: 'vram', doc: 'initial placement' },
    vmap_pin: {
      type: 'boolean',
      default: true,
      doc: 'vmap pins the BO until vunmap (amdgpu since Aug 2025); false: it does not, so a move frees the pages under the kernel mapping',
    },
    cpu_access_migrate: {
      type: 'boolean',
      default: true,
      doc: 'begin_cpu_access for a CPU read reserves the BO and moves it to system memory (GTT) unless pinned; false: it does nothing',
    },
    async_move: {
      type: 'boolean',
      default: false,
      late: true,
      doc: 'pipelined moves: the move queues the copy for the copy engine (op copy) and publishes the KERNEL fence; the old placement is freed when it signals',
    },
    free_old_on_signal: {
      type: 'boolean',
      default: true,
      late: true,
      doc: 'with async_move: free the old placement when the move fence signals; false frees it at once, while the copy engine still reads it',
    },
    fault_retry_ref: {
      type: 'boolean',
      default: true,
      late: true,
      doc: 'with async_move: a CPU fault that finds the move pending takes a BO reference before it drops mmap_lock to wait (VM_FAULT_RETRY); false forgets it, so a racing munmap can free the BO under the wait',
    },
    shrinker: {
      type: 'boolean',
      default: false,
      late: true,
      doc: "register a shrinker: any GFP_KERNEL allocation (direct reclaim, under fs_reclaim) may evict the BO from VRAM — resv by trylock, then a move, so the importers' invalidate callbacks run in reclaim ([L8] d)",
    },
  },
  ops: {
    move: { doc: 'move the buffer to the other placement (ttm_bo_validate); -EBUSY while pinned' },
    copy: {
      doc: 'the copy engine (with async_move): waits for a queued move, copies, signals its fence, frees the old placement',
    },
  },
  *export(t, env) {
    const vram = env.k.physmem.pools.get('vram');
    const system = env.k.physmem.pools.get('system');
    if (!vram || !system) throw new Error('missing pools');
    const from = env.options.placement === 'system' ? system : vram;
    const frames = yield* alloc_pages(t, from, env.pages, (i) => `${env.name} (ttm, ${from.name}) page ${i}`);
    const bo = new TtmBufferObject(env.name, from, frames, { vram, system });
    bo.asyncMove = env.options.async_move === true;
    bo.freeOldOnSignal = env.options.free_old_on_signal !== false;
    bo.faultRetryRef = env.options.fault_retry_ref !== false;
    if (bo.asyncMove) bo.copyQueue = new CopyQueue(env.k, `${env.name}:copy-queue`);
    const vmapPin = env.options.vmap_pin !== false;
    const cpuAccessMigrate = env.options.cpu_access_migrate !== false;
    let buf: DmaBuf | null = null;
    const st: TtmState = { bo, vmapPin, cpuAccessMigrate };
    const ops: DmaBufOps = {
      pin: (t) => ttm_pin(t, bo),
      unpin: () => ttm_unpin(bo),
      map_dma_buf: (t, attach, dir) => amdgpu_dma_buf_map(t, bo, attach, dir),
      unmap_dma_buf: (t, _attach, sgt) => unmapFrames(t, 'amdgpu_dma_buf_unmap', sgt),
      release: (t) => ttm_bo_release(t, bo),
      mmap: (t, dmabuf, vma) => ttm_mmap(t, bo, dmabuf, vma),
      vmap: (t, dmabuf) => amdgpu_dma_buf_vmap(t, st, dmabuf),
      vunmap: (t, dmabuf, map) => amdgpu_dma_buf_vunmap(t, st, dmabuf, map),
      begin_cpu_access: (t, dmabuf, dir) => amdgpu_dma_buf_begin_cpu_access(t, dmabuf, dir, st),
      get_pfn: (t, attach, pgoff) => ttm_bo_get_pfn(t, bo, attach, pgoff),
    };
    const r = yield* dma_buf_export(t, env.name, {
      exp_name: 'ttm',
      ops,
      pages: env.pages,
      priv: bo,
      backing: () => bo.frames,
    });
    if (isErr(r)) return r;
    buf = r;
    const exported = buf;
    if (env.options.shrinker === true) {
      bo.shrinker = { name: `${env.name}:ttm-shrinker`, scan: (t: Task) => ttm_bo_shrink(t, exported, bo) };
      register_shrinker(env.k, bo.shrinker);
    }
    return {
      buf: exported,
      pool: from,
      ops: {
        move: (t: Task) => ttm_bo_validate(t, exported, bo),
        copy: (t: Task) => amdgpu_job_run(t, bo),
      },
    };
  },
});
