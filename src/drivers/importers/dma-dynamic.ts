/**
 * The `dma-dynamic` importer: a GPU-like device with a dynamic attachment.
 *
 * - `map` maps under resv; `dma` (after a `map`) submits a job under resv:
 *   re-maps if the mapping was invalidated, waits for KERNEL fences itself ([LT7]), adds its
 *   job fence, unlocks, then the device accesses the page and the job fence
 *   signals ([LT9], [L12]);
 * - `invalidate_mappings` (with `respect_invalidate: true`, the default) waits
 *   for its last job and unmaps every mapping, under the exporter's resv hold
 *   ([L10], [LT9]); with `respect_invalidate: false` it ignores the callback
 *   and keeps using the old mapping — the bug the option exists to show.
 *
 * Models: a typical dynamic importer (amdgpu/xe importing a dma-buf)
 */
import { apiMisuse } from '../../checkers/api.ts';
import {
  type DmaBufAttachment,
  dma_buf_dynamic_attach,
  dma_buf_map_attachment,
  dma_buf_unmap_attachment,
} from '../../kernel/dma-buf.ts';
import type { DmaBufAttachOps, SgTable } from '../../kernel/dma-buf-ops.ts';
import {
  type DmaFence,
  dma_fence_begin_signalling,
  dma_fence_end_signalling,
  dma_fence_init,
  dma_fence_signal,
  dma_fence_wait,
} from '../../kernel/dma-fence.ts';
import {
  DMA_RESV_USAGE_KERNEL,
  DMA_RESV_USAGE_WRITE,
  dma_resv_add_fence,
  dma_resv_lock,
  dma_resv_reserve_fences,
  dma_resv_unlock,
  dma_resv_wait_timeout,
} from '../../kernel/dma-resv.ts';
import { isErr, type Result } from '../../kernel/errno.ts';
import { mutex_lock, mutex_unlock } from '../../kernel/locking.ts';
import { type KGen, kfn, type Task } from '../../kernel/sched.ts';
import { defineImporter, type ImporterEnv, type OpArgs, PAGE_ARG } from '../driver.ts';
import { DeviceImporter } from './device.ts';
import { device_dma } from './device-dma.ts';

class DmaDynamicImporter extends DeviceImporter {
  readonly attachCall = 'dma_buf_dynamic_attach';
  /** The current mapping; protected by resv (the callback changes it). */
  sgt: SgTable | null = null;
  /** `map` ops minus `unmap` ops, whether or not the exporter granted the map (I11 accounting). */
  userMaps = 0;
  lastJob: DmaFence | null = null;
  jobs = 0;
  readonly respect: boolean;
  readonly attachOps: DmaBufAttachOps;

  constructor(env: ImporterEnv) {
    super(env, 'dma_dynamic_dev->lock');
    this.respect = env.options.respect_invalidate !== false;
    const self = this;
    this.attachOps = {
      allow_peer2peer: true,
      invalidate_mappings: kfn('dma_dynamic_invalidate_mappings', function* (t: Task, a: DmaBufAttachment): KGen {
        if (!self.respect) return;
        // Wait for the last job (a fence wait under resv is allowed, [L10]),
        // then drop the mapping: the next job maps again ([LT9]).
        if (self.lastJob) yield* dma_fence_wait(t, self.lastJob, false);
        if (self.sgt) {
          yield* dma_buf_unmap_attachment(t, a, self.sgt, 'DMA_BIDIRECTIONAL');
          self.sgt = null;
        }
      }),
    };
  }

  protected *attachBuffer(t: Task): KGen<Result<DmaBufAttachment>> {
    return yield* dma_buf_dynamic_attach(t, this.env.buffer, this.env.name, this.attachOps, this, this.env.name);
  }

  readonly ops = {
    map: kfn('dma_dynamic_map', (t: Task) => this.map(t)),
    dma: kfn('dma_dynamic_submit', (t: Task, args: OpArgs) => this.submit(t, Number(args.page))),
    unmap: kfn('dma_dynamic_unmap', (t: Task) => this.unmap(t)),
  };

  /** Maps under resv unless a valid mapping exists. Caller holds resv. */
  private *ensureMapped(t: Task, a: DmaBufAttachment): KGen<SgTable | null> {
    if (this.sgt) return this.sgt;
    const r = yield* dma_buf_map_attachment(t, a, 'DMA_BIDIRECTIONAL');
    if (isErr(r)) return null;
    this.sgt = r;
    return r;
  }

  private *map(t: Task): KGen {
    yield* mutex_lock(t, this.lock);
    const a = this.att;
    if (a) {
      yield* dma_resv_lock(t, a.dmabuf.resv, null);
      if (this.userMaps > 0) apiMisuse(t, 'dma_dynamic_map', 'mapped again while already mapped', ['LT5']);
      else {
        this.userMaps++;
        // A refused map (-ENODEV while revoked) leaves no mapping; the next job maps again.
        yield* this.ensureMapped(t, a);
      }
      yield* dma_resv_unlock(t, a.dmabuf.resv);
    }
    yield* mutex_unlock(t, this.lock);
  }

  private *submit(t: Task, page: number): KGen {
    yield* mutex_lock(t, this.lock);
    const a = this.att;
    if (a && this.userMaps === 0) {
      apiMisuse(t, 'dma_dynamic_submit', `device DMA to page ${page} of ${this.env.buffer.name} without a mapping`, [
        'LT5',
        'LT10',
      ]);
    } else if (a) {
      const resv = a.dmabuf.resv;
      yield* dma_resv_lock(t, resv, null);
      const sgt = yield* this.ensureMapped(t, a);
      if (!sgt) {
        yield* dma_resv_unlock(t, resv);
      } else {
        // A dynamic importer waits for the exporter's KERNEL fences itself ([LT7]).
        yield* dma_resv_wait_timeout(t, resv, DMA_RESV_USAGE_KERNEL, false);
        dma_resv_reserve_fences(t, resv, 1);
        const n = ++this.jobs;
        const job = dma_fence_init(
          t,
          `${this.env.name}:job#${n}`,
          { driverName: this.env.name, timelineName: 'gfx' },
          t.k.fenceContextAlloc(),
          n,
        );
        yield* dma_resv_add_fence(t, resv, job, DMA_RESV_USAGE_WRITE);
        this.lastJob = job;
        // From add_fence the job fence is published: signalling section ([L12]).
        const cookie = dma_fence_begin_signalling(t);
        yield* dma_resv_unlock(t, resv);
        const entry = sgt.entries[page];
        if (entry) yield* device_dma(t, entry);
        yield* dma_fence_signal(t, job);
        dma_fence_end_signalling(t, cookie);
      }
    }
    yield* mutex_unlock(t, this.lock);
  }

  private *unmap(t: Task): KGen {
    yield* mutex_lock(t, this.lock);
    const a = this.att;
    if (a) {
      if (this.userMaps === 0) {
        apiMisuse(t, 'dma_dynamic_unmap', 'unmap without a mapping', ['LT5', 'I11']);
      } else {
        this.userMaps--;
        yield* dma_resv_lock(t, a.dmabuf.resv, null);
        if (this.sgt) {
          yield* dma_buf_unmap_attachment(t, a, this.sgt, 'DMA_BIDIRECTIONAL');
          this.sgt = null;
        }
        yield* dma_resv_unlock(t, a.dmabuf.resv);
      }
    }
    yield* mutex_unlock(t, this.lock);
  }
}

export const dmaDynamic = defineImporter({
  name: 'dma-dynamic',
  summary: 'a GPU-like dynamic importer: invalidate drops its mapping, DMA is submitted under resv with a fence',
  options: {
    respect_invalidate: {
      type: 'boolean',
      default: true,
      doc: 'false: the invalidate callback does nothing and the old mapping stays in use',
    },
  },
  ops: {
    map: { doc: 'map under resv (dma_buf_map_attachment)' },
    dma: {
      doc: 'submit a job: under resv re-map if needed, wait KERNEL fences, add the job fence; then DMA and signal',
      args: PAGE_ARG,
    },
    unmap: { doc: 'unmap under resv' },
  },
  create: (env) => new DmaDynamicImporter(env),
});
