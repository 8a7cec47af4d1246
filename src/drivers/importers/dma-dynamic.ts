/**
 * The `dma-dynamic` importer: a GPU-like device with a dynamic attachment.
 *
 * - `map` maps under resv; `dma` (after a `map`) submits a job under resv:
 *   re-maps if the mapping was invalidated, waits for KERNEL fences itself ([LT7]), adds its
 *   job fence, unlocks, then the device accesses the page and the job fence
 *   signals ([LT9], [L12]);
 * - `invalidate_mappings` (with `respect_invalidate: true`, the default) waits
 *   for its last job and drops the mapping, under the exporter's resv hold
 *   ([L10], [LT9]); with `respect_invalidate: false` it ignores the callback
 *   and keeps using the old mapping — the bug the option exists to show.
 *
 * When the callback unmaps (`invalidate_unmap`, [LT9], [V4], [V5]):
 * - `callback` (default): `dma_buf_unmap_attachment` inside the callback;
 * - `worker`: the callback stops using the mapping (its translations enter
 *   the wind-down window of [LT9] (ii), `invalidate_translations`) and queues
 *   the unmap to a work item (`queue_work`); the `unmap_work` op is the
 *   kworker that runs it: it sleeps until the work is queued, then takes resv
 *   and unmaps every mapping the callback set aside. A revocable importer
 *   that unmaps *later* than the callback, but within vfio's bound;
 * - `none`: as `worker`, but nothing is queued: the set-aside mapping is
 *   unmapped only by the `unmap` op (userspace-driven, like iommufd, [V6]) or
 *   never — an importer that claims to be revocable and is not ([V4]).
 *
 * `revocable: false` attaches without an invalidate_mappings callback and
 * pins the buffer from `map` to `unmap` instead (`dma_buf_pin`, [LT4]): a
 * pinned importer that cannot be revoked ([LT9], [V4]); exporters that need
 * revoke refuse it at attach (`dma_buf_attach_revocable()`).
 *
 * Models: a typical dynamic importer (amdgpu/xe importing a dma-buf)
 */
import { apiMisuse } from '../../checkers/api.ts';
import {
  type DmaBufAttachment,
  dma_buf_dynamic_attach,
  dma_buf_map_attachment,
  dma_buf_pin,
  dma_buf_unmap_attachment,
  dma_buf_unpin,
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
import type { Kernel } from '../../kernel/kernel.ts';
import { mutex_lock, mutex_unlock } from '../../kernel/locking.ts';
import { invalidate_translations } from '../../kernel/memory.ts';
import { type Blocker, type KGen, KObject, kfn, type Task } from '../../kernel/sched.ts';
import { defineImporter, type ImporterEnv, type OpArgs, PAGE_ARG } from '../driver.ts';
import { DeviceImporter } from './device.ts';
import { device_dma } from './device-dma.ts';

/**
 * The importer's unmap `work_struct`: whether it is queued. Written by
 * `queue_work` in the invalidate callback (under the exporter's resv hold)
 * and by the kworker without resv, so it is an object of its own.
 */
export class UnmapWork extends KObject {
  readonly type = 'work_struct';
  pending = false;
  /** What the kworker sleeps on: the work is queued. */
  readonly queued: Blocker = { ready: () => this.pending };

  constructor(k: Kernel, name: string) {
    super(k, name);
  }

  override snapshot(): Record<string, unknown> {
    return { pending: this.pending };
  }
}

type InvalidateUnmap = 'callback' | 'worker' | 'none';

class DmaDynamicImporter extends DeviceImporter {
  readonly attachCall = 'dma_buf_dynamic_attach';
  /** The current mapping; protected by resv (the callback changes it). */
  sgt: SgTable | null = null;
  /** Mappings the callback stopped using and has not unmapped yet (`worker`, `none`); protected by resv. */
  readonly setAside: SgTable[] = [];
  /** The pin a non-revocable importer holds while mapped; protected by resv. */
  pinned = false;
  readonly work: UnmapWork;
  readonly unmapMode: InvalidateUnmap;
  readonly revocable: boolean;
  /** `map` ops minus `unmap` ops, whether or not the exporter granted the map (I11 accounting). */
  userMaps = 0;
  lastJob: DmaFence | null = null;
  jobs = 0;
  readonly respect: boolean;
  readonly attachOps: DmaBufAttachOps;

  constructor(env: ImporterEnv) {
    super(env, 'dma_dynamic_dev->lock');
    this.respect = env.options.respect_invalidate !== false;
    this.unmapMode = (env.options.invalidate_unmap as InvalidateUnmap | undefined) ?? 'callback';
    this.revocable = env.options.revocable !== false;
    this.work = new UnmapWork(env.k, `${env.name}:unmap_work`);
    const invalidate = (t: Task, a: DmaBufAttachment) => DmaDynamicImporter.invalidate_mappings(t, a, this);
    // Without the callback the attachment is not revocable ([V4]).
    this.attachOps = this.revocable
      ? { allow_peer2peer: true, invalidate_mappings: invalidate }
      : { allow_peer2peer: true };
  }

  /**
   * The invalidate callback. Made once for the class, not per importer: a
   * generator function made per instance costs V8 a fresh prototype and object
   * shape the first time it runs.
   */
  private static readonly invalidate_mappings = kfn(
    'dma_dynamic_invalidate_mappings',
    function* (t: Task, a: DmaBufAttachment, self: DmaDynamicImporter): KGen {
      if (!self.respect) return;
      // Wait for the last job (a fence wait under resv is allowed, [L10]),
      // then drop the mapping: the next job maps again ([LT9]).
      if (self.lastJob) yield* dma_fence_wait(t, self.lastJob, false);
      const sgt = self.sgt;
      self.sgt = null;
      if (self.unmapMode === 'callback') {
        if (sgt) yield* dma_buf_unmap_attachment(t, a, sgt, 'DMA_BIDIRECTIONAL');
        return;
      }
      // Unmap later: the mapping is no longer used from here on, only kept
      // until the unmap (the wind-down window of [LT9] (ii)).
      if (sgt) {
        yield* invalidate_translations(t, sgt.entries);
        self.setAside.push(sgt);
      }
      if (self.unmapMode === 'worker') {
        // queue_work(): unconditionally; the work unmaps whatever is set aside.
        yield t.at('queue_work', 'write', self.work);
        self.work.pending = true;
      }
    },
  );

  protected *attachBuffer(t: Task): KGen<Result<DmaBufAttachment>> {
    return yield* dma_buf_dynamic_attach(t, this.env.buffer, this.env.name, this.attachOps, this, this.env.name);
  }

  readonly ops = {
    map: (t: Task) => DmaDynamicImporter.kops.map(t, this),
    dma: (t: Task, args: OpArgs) => DmaDynamicImporter.kops.dma(t, this, args),
    unmap: (t: Task) => DmaDynamicImporter.kops.unmap(t, this),
    unmap_work: (t: Task) => DmaDynamicImporter.kops.unmap_work(t, this),
  };

  /** The ops as kernel functions, made once for the class: made per instance, they would be made in every execution. */
  private static readonly kops = {
    map: kfn('dma_dynamic_map', (t: Task, self: DmaDynamicImporter) => self.map(t)),
    dma: kfn('dma_dynamic_submit', (t: Task, self: DmaDynamicImporter, args: OpArgs) =>
      self.submit(t, Number(args.page)),
    ),
    unmap: kfn('dma_dynamic_unmap', (t: Task, self: DmaDynamicImporter) => self.unmap(t)),
    unmap_work: kfn('dma_dynamic_unmap_work', (t: Task, self: DmaDynamicImporter) => self.unmapWork(t)),
  };

  /** Unmaps every mapping the callback set aside. Caller holds resv. */
  private *unmapSetAside(t: Task): KGen {
    for (const sgt of this.setAside.splice(0)) {
      yield* dma_buf_unmap_attachment(t, sgt.attach, sgt, 'DMA_BIDIRECTIONAL');
    }
  }

  /**
   * The kworker running the unmap work (`worker_thread` → `process_one_work`):
   * sleeps until the invalidate callback queues the work, then unmaps under
   * resv. Only with `invalidate_unmap: worker`; otherwise nothing is ever
   * queued and the op returns at once.
   */
  private *unmapWork(t: Task): KGen {
    if (this.unmapMode !== 'worker') return;
    yield t.at('worker_thread', 'write', this.work, this.work.queued);
    this.work.pending = false;
    const resv = this.env.buffer.resv;
    yield* dma_resv_lock(t, resv, null);
    yield* this.unmapSetAside(t);
    yield* dma_resv_unlock(t, resv);
  }

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
        // A non-revocable importer keeps the buffer where it is instead ([LT4], [LT9]).
        if (!this.revocable && !this.pinned) this.pinned = (yield* dma_buf_pin(t, a)) === 0;
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
        // The scheduler's run_job (drm_sched_run_job → the driver) runs inside the
        // job fence's signalling section: it must not wait for other fences
        // there ([L11] a). `wait_in_job` models a driver that does.
        if (this.env.options.wait_in_job === true) {
          yield* dma_resv_wait_timeout(t, resv, DMA_RESV_USAGE_KERNEL, false);
        }
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
        // Also whatever the invalidate callback set aside (invalidate_unmap: worker | none).
        yield* this.unmapSetAside(t);
        if (this.pinned) {
          yield* dma_buf_unpin(t, a);
          this.pinned = false;
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
    wait_in_job: {
      type: 'boolean',
      default: false,
      doc: "true: the job waits for the buffer's KERNEL fences while running, inside its own fence's signalling section ([L11] a, [I21])",
    },
    respect_invalidate: {
      type: 'boolean',
      default: true,
      doc: 'false: the invalidate callback does nothing and the old mapping stays in use',
    },
    invalidate_unmap: {
      type: 'enum',
      values: ['callback', 'worker', 'none'],
      default: 'callback',
      doc: 'when the invalidated mapping is unmapped: in the callback; by the unmap_work op (a kworker) after the callback queued it; or only by the unmap op',
    },
    revocable: {
      type: 'boolean',
      default: true,
      doc: 'false: attach without an invalidate_mappings callback and pin the buffer while mapped (not revocable, [V4])',
    },
  },
  ops: {
    map: { doc: 'map under resv (dma_buf_map_attachment)' },
    dma: {
      doc: 'submit a job: under resv re-map if needed, wait KERNEL fences, add the job fence; then DMA and signal',
      args: PAGE_ARG,
    },
    unmap: { doc: 'unmap under resv (also what the invalidate callback set aside; unpin if not revocable)' },
    unmap_work: {
      doc: 'the kworker: sleep until the invalidate callback queues the unmap work, then unmap under resv (invalidate_unmap: worker; otherwise returns at once)',
    },
  },
  checkOptions(o) {
    if (o.revocable === false && (o.respect_invalidate === false || o.invalidate_unmap !== 'callback')) {
      return {
        option: 'revocable',
        message:
          'revocable: false attaches without an invalidate callback, so respect_invalidate and invalidate_unmap have nothing to act on',
      };
    }
    if (o.respect_invalidate === false && o.invalidate_unmap !== 'callback') {
      return {
        option: 'invalidate_unmap',
        message: 'respect_invalidate: false ignores the callback, so invalidate_unmap has nothing to act on',
      };
    }
    return null;
  },
  create: (env) => new DmaDynamicImporter(env),
});
