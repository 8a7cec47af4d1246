/**
 * An example importer written as a TypeScript module: an iommufd-like
 * "pinned but revocable" importer ([V4], [V7], Jason's contract 2 in [K7]).
 *
 * It attaches dynamically with an invalidate callback (so vfio-pci accepts it
 * as revocable), pins the buffer, and maps it into an IO page table. Its
 * invalidate callback treats the event as a revoke: it tears the mapping down
 * and unmaps before returning. Option `unmap_on_revoke: false` forgets that,
 * which dmabuf-check reports.
 *
 * It is a sketch of how a driver module is written, mapping through
 * `dma_buf_map_attachment`. The built-in `iommufd` importer
 * (src/drivers/importers/iommufd.ts) models iommufd itself: the private
 * interconnect `vfio_pci_dma_buf_iommufd_map` ([V7]), `pages->mutex`, the IO
 * page table (`IommuDomain`, `iommu_map`, `iommu_unmap`, all exported from
 * `dmabuf-check` for modules like this one).
 *
 * A scenario names it by a path relative to the scenario file:
 *
 *     importers:
 *       ioas: { driver: ./iommufd-importer.ts, buffer: mmio }
 *
 * Driver modules default-export `defineImporter({...})` (or
 * `defineExporter({...})`). Ops are generator functions over the model's
 * kernel API: every call that touches shared state is a step the explorer
 * interleaves (`yield*` it). Whatever a thread can call is listed in `ops`,
 * with its arguments, so scenarios are validated before they run.
 */
import {
  type DmaBufAttachment,
  type DmaBufAttachOps,
  defineImporter,
  dma_buf_detach,
  dma_buf_dynamic_attach,
  dma_buf_map_attachment,
  dma_buf_pin,
  dma_buf_put,
  dma_buf_unmap_attachment,
  dma_buf_unpin,
  dma_resv_lock,
  dma_resv_unlock,
  get_dma_buf,
  type ImporterEnv,
  type ImporterInstance,
  isErr,
  type KGen,
  kasan_check,
  kfn,
  type OpArgs,
  PAGE_ARG,
  type SgTable,
  type Task,
} from 'dmabuf-check';

/**
 * The invalidate callback. Locking: called with resv held by the exporter.
 * For iommufd an invalidate is a revoke: unmap now, never remap on its own
 * ([V6]). Defined once, here: a generator function made in the constructor
 * would be a new one in every execution, which V8 makes slow to run.
 */
const iopt_revoke_notify = kfn(
  'iopt_revoke_notify',
  function* (t: Task, a: DmaBufAttachment, self: IommufdImporter, unmapOnRevoke: boolean): KGen {
    if (!unmapOnRevoke || !self.sgt) return;
    yield* dma_buf_unmap_attachment(t, a, self.sgt, 'DMA_BIDIRECTIONAL');
    self.sgt = null;
  },
);

class IommufdImporter implements ImporterInstance {
  readonly attachCall = 'dma_buf_dynamic_attach';
  /** Everything below is protected by the buffer's resv: ops take it first ([L9]: resv → importer locks). */
  att: DmaBufAttachment | null = null;
  /** The IO page table's mapping of the buffer. */
  sgt: SgTable | null = null;
  pinned = false;
  readonly attachOps: DmaBufAttachOps;

  constructor(readonly env: ImporterEnv) {
    const unmapOnRevoke = env.options.unmap_on_revoke !== false;
    this.attachOps = {
      allow_peer2peer: true,
      invalidate_mappings: (t: Task, a: DmaBufAttachment) => iopt_revoke_notify(t, a, this, unmapOnRevoke),
    };
  }

  *attach(t: Task): KGen<number> {
    const buf = this.env.buffer;
    yield* get_dma_buf(t, buf);
    const a = yield* dma_buf_dynamic_attach(t, buf, this.env.name, this.attachOps, this, this.env.name);
    if (isErr(a)) {
      yield* dma_buf_put(t, buf);
      return a;
    }
    yield* dma_resv_lock(t, buf.resv, null);
    this.att = a;
    yield* dma_resv_unlock(t, buf.resv);
    return 0;
  }

  *detach(t: Task): KGen {
    const buf = this.env.buffer;
    yield* dma_resv_lock(t, buf.resv, null);
    const a = this.att;
    this.att = null;
    if (a && this.sgt) yield* dma_buf_unmap_attachment(t, a, this.sgt, 'DMA_BIDIRECTIONAL');
    this.sgt = null;
    if (a && this.pinned) yield* dma_buf_unpin(t, a);
    this.pinned = false;
    yield* dma_resv_unlock(t, buf.resv);
    // dma_buf_detach takes resv itself: called unlocked ([L2]).
    if (a) {
      yield* dma_buf_detach(t, buf, a);
      yield* dma_buf_put(t, buf);
    }
  }

  *teardown(t: Task): KGen {
    yield* this.detach(t);
  }

  readonly ops = {
    /** IOMMU_IOAS_MAP_FILE: pin, then map into the IO page table, under resv. */
    map: kfn('iopt_map_dmabuf', (t: Task) => this.map(t)),
    /** A device DMA through the IO page table (nothing happens once revoked: no mapping). */
    dma: kfn('iommufd_device_dma', (t: Task, args: OpArgs) => this.dma(t, Number(args.page))),
  };

  private *map(t: Task): KGen {
    const resv = this.env.buffer.resv;
    yield* dma_resv_lock(t, resv, null);
    const a = this.att;
    if (a) {
      if (!this.pinned && (yield* dma_buf_pin(t, a)) === 0) this.pinned = true;
      if (!this.sgt) {
        const r = yield* dma_buf_map_attachment(t, a, 'DMA_BIDIRECTIONAL');
        if (!isErr(r)) this.sgt = r;
      }
    }
    yield* dma_resv_unlock(t, resv);
  }

  private *dma(t: Task, page: number): KGen {
    // The DMA is issued and completes while resv is held, so the revoke's
    // invalidate (which needs resv) cannot tear the mapping down under it.
    const resv = this.env.buffer.resv;
    yield* dma_resv_lock(t, resv, null);
    const entry = this.sgt?.entries[page] ?? null;
    if (entry) {
      // The device access is a step that reads physical memory: what KASAN checks.
      yield t.at('iommufd_device_dma', 'read', entry.frame);
      kasan_check(t, entry, 'dma');
    }
    yield* dma_resv_unlock(t, resv);
  }
}

export default defineImporter({
  name: 'iommufd-example',
  summary: 'a pinned but revocable importer (iommufd-like), written as a module',
  options: {
    unmap_on_revoke: {
      type: 'boolean',
      default: true,
      doc: 'false: the revoke notification leaves the IO page table mapped',
    },
  },
  ops: {
    map: { doc: 'pin and map the buffer into the IO page table' },
    dma: { doc: 'device DMA to a page through the IO page table', args: PAGE_ARG },
  },
  create: (env) => new IommufdImporter(env),
});
