/**
 * The `iommufd` importer: an IOAS of iommufd into which the VMM maps a
 * vfio-pci dma-buf with IOMMU_IOAS_MAP_FILE, so that an assigned device can
 * DMA to another device's BAR (P2P). The pinned but revocable importer of
 * [V4], mapping through vfio's private interconnect ([V7]); Jason
 * Gunthorpe's "iommufd cannot fault and can only support revoke" ([K7]).
 *
 * - `map` (IOMMU_IOAS_MAP_FILE → `iopt_map_file_pages`):
 *   `iopt_alloc_dmabuf_pages` → `iopt_map_dmabuf`: `dma_buf_get`,
 *   `dma_buf_dynamic_attach` with `iopt_dmabuf_attach_revoke_ops` (an
 *   invalidate callback, so vfio-pci accepts it); under resv: take and drop
 *   `pages->mutex` once so lockdep learns resv → pages->mutex, `dma_buf_pin`
 *   (2026), then `vfio_pci_dma_buf_iommufd_map` for the BAR range ([V7]).
 *   Then `iopt_map_pages` → `iopt_fill_domain`: under `pages->mutex`, unless
 *   revoked, track the domain and `iommu_map` the range into the IO page
 *   table;
 * - `dma {page}`: the assigned device's DMA through the IO page table
 *   (KASAN-checked); an unmapped IOVA is an IOMMU fault, not a finding;
 * - revoke (`iopt_revoke_notify`, the invalidate callback, resv held): under
 *   `pages->mutex`, `iommu_unmap` every tracked domain, then mark the pages
 *   revoked (`phys.len = 0`). iommufd never maps again on its own: the VMM
 *   unmaps before and maps after operations it knows revoke ([V6]);
 * - `unmap` (IOMMU_IOAS_UNMAP → `iopt_unmap_iova_range`): under
 *   `pages->mutex` unmap the domain unless revoked and untrack it; then
 *   `iopt_release_pages`: `dma_buf_unpin` under resv, `dma_buf_detach`,
 *   `dma_buf_put`. Teardown (`iommufd_ioas_destroy`) and `detach` do the same.
 *
 * Bugs the options make expressible:
 * - `unmap_on_revoke: false`: the callback only marks the pages revoked and
 *   leaves the IO page table mapped (the callback before domain tracking was
 *   added): the device keeps reaching the BAR after the revoke (`stale-mapping`
 *   when the BAR stops decoding, `access-after-revoke` on the next DMA,
 *   [V4], [V6], [I25]), and a later unmap skips the revoked range for ever;
 * - `fill_takes_resv: true`: the domain fill asks vfio for the range again
 *   (`vfio_pci_dma_buf_iommufd_map`, resv) while holding `pages->mutex`,
 *   inverting the resv → pages->mutex order that `iopt_map_dmabuf` primes
 *   and the revoke callback follows (`lock-order`, then a deadlock against a
 *   concurrent revoke, [L9], [I16]);
 * - `unpin_under_resv: false`: `iopt_release_pages` calls `dma_buf_unpin`
 *   without resv, as "iommufd: Add dma_buf_pin()" was merged (fixed by
 *   "iommufd: take dma_resv lock before dma_buf_unpin() in release path"):
 *   `lock-not-held` on every unmap or IOAS destroy ([L1], [LT4]).
 *
 * Simplifications: one IOAS with one IOMMU domain and one area (IOVA page i
 * is buffer page i); the `iopt_pages` object is reused by the next
 * IOMMU_IOAS_MAP_FILE after an unmap instead of allocated afresh; the IOAS's
 * `iova_rwsem` (taken for write) covers the whole map and unmap, which also
 * serialises the allocation half that the kernel runs before taking it.
 *
 * Models: drivers/iommu/iommufd/pages.c (iopt_map_dmabuf,
 * iopt_revoke_notify, iopt_release_pages), io_pagetable.c
 * (iopt_map_file_pages, iopt_fill_domain, iopt_unmap_iova_range), v6.19 and
 * the 2026 revoke series
 */
import type { DmaBufAttachment } from '../../kernel/dma-buf.ts';
import {
  dma_buf_detach,
  dma_buf_dynamic_attach,
  dma_buf_pin,
  dma_buf_put,
  dma_buf_unpin,
  get_dma_buf,
} from '../../kernel/dma-buf.ts';
import type { DmaBufAttachOps } from '../../kernel/dma-buf-ops.ts';
import { dma_resv_assert_held, dma_resv_lock, dma_resv_unlock } from '../../kernel/dma-resv.ts';
import { EBUSY, ENOENT, isErr } from '../../kernel/errno.ts';
import { device_dma_table, IommuDomain, iommu_map, iommu_unmap } from '../../kernel/iommu.ts';
import type { Kernel } from '../../kernel/kernel.ts';
import { down_write, Lock, mutex_lock, mutex_unlock, up_write } from '../../kernel/locking.ts';
import type { PfnRef } from '../../kernel/page-alloc.ts';
import { type KGen, KObject, kfn, type Task } from '../../kernel/sched.ts';
import {
  defineImporter,
  type ImporterEnv,
  type ImporterInstance,
  type OpArgs,
  type OptionValues,
  PAGE_ARG,
} from '../driver.ts';
import { vfio_pci_dma_buf_iommufd_map } from '../exporters/vfio-pci.ts';

interface IommufdOptions {
  readonly unmapOnRevoke: boolean;
  readonly fillTakesResv: boolean;
  readonly unpinUnderResv: boolean;
}

function iommufdOptions(o: OptionValues): IommufdOptions {
  return {
    unmapOnRevoke: o.unmap_on_revoke !== false,
    fillTakesResv: o.fill_takes_resv === true,
    unpinUnderResv: o.unpin_under_resv !== false,
  };
}

/**
 * `struct iopt_pages` of type IOPT_ADDRESS_DMABUF, the parts the model needs.
 * `phys` and `tracked` are protected by `mutex` (the revoke callback writes
 * them under resv and the mutex); `attach` and `pinned` by the IOAS's
 * `iova_rwsem` and resv.
 */
export class IoptPages extends KObject {
  readonly type = 'iopt_pages';
  /** `pages->mutex`, its own lockdep class for dma-buf pages (taken inside resv). */
  readonly mutex: Lock;
  /** `pages->dmabuf.attach`. */
  attach: DmaBufAttachment | null = null;
  /** `pages->dmabuf.phys`: the BAR range; null once revoked (`phys.len == 0`). */
  phys: readonly PfnRef[] | null = null;
  /** The dma_buf_pin taken at map (2026). */
  pinned = false;
  /** `pages->dmabuf.tracker`: the IOMMU domain the area is mapped into. */
  tracked = false;

  constructor(
    k: Kernel,
    name: string,
    readonly ioas: IommufdIoas,
  ) {
    super(k, `${name}:iopt_pages`);
    this.mutex = new Lock(k, `${name}:iopt_pages->mutex`, 'iopt_pages->mutex (dmabuf)', 'mutex');
  }

  override snapshot(): Record<string, unknown> {
    return {
      attached: this.attach !== null,
      revoked: this.attach !== null && this.phys === null,
      tracked: this.tracked,
    };
  }
}

/** The IOAS (`struct iommufd_ioas` with its `io_pagetable`), one domain and one area. */
export class IommufdIoas {
  /** `iopt->iova_rwsem`. */
  readonly iova_rwsem: Lock;
  /** The IOMMU domain of the hw_pagetable the device is attached to. */
  readonly domain: IommuDomain;
  readonly pages: IoptPages;
  /** An area maps the pages at IOVA 0 (between MAP_FILE and UNMAP). Protected by iova_rwsem. */
  area = false;

  constructor(
    k: Kernel,
    readonly name: string,
    npages: number,
    readonly o: IommufdOptions,
  ) {
    this.iova_rwsem = new Lock(k, `${name}:iopt->iova_rwsem`, 'iopt->iova_rwsem', 'rwsem');
    this.domain = new IommuDomain(k, `${name}:iommu_domain`, npages);
    this.pages = new IoptPages(k, name, this);
  }
}

/**
 * `iopt_revoke_notify()`: the invalidate callback — for iommufd a revoke.
 * Under `pages->mutex`: once, unmap every tracked domain (unless
 * `unmap_on_revoke: false`) and mark the pages revoked; nothing is mapped
 * again until the VMM maps anew ([V4], [V6], [V7]). Locking: resv held by the
 * exporter; takes `pages->mutex` inside it. Made once for the module.
 */
const iopt_revoke_notify = kfn('iopt_revoke_notify', function* (t: Task, attach: DmaBufAttachment): KGen {
  const pages = attach.importer_priv as IoptPages;
  const ioas = pages.ioas;
  dma_resv_assert_held(t, attach.dmabuf.resv, 'iopt_revoke_notify', ['L10', 'V4']);
  yield* mutex_lock(t, pages.mutex);
  if (pages.phys !== null) {
    if (pages.tracked && ioas.o.unmapOnRevoke) {
      t.stack.push('iopt_area_unmap_domain_range');
      yield* iommu_unmap(t, ioas.domain);
      t.stack.pop();
    }
    pages.phys = null;
  }
  yield* mutex_unlock(t, pages.mutex);
});

/** `iopt_dmabuf_attach_revoke_ops`. */
const iopt_dmabuf_attach_revoke_ops: DmaBufAttachOps = {
  allow_peer2peer: true,
  invalidate_mappings: iopt_revoke_notify,
};

/**
 * `iopt_map_dmabuf()` (from `iopt_alloc_dmabuf_pages`): attach, then under
 * resv prime the lock order, pin, and get the BAR range from vfio ([V7]).
 * 0 or -errno, with nothing left attached on error. Locking: resv not held.
 */
const iopt_map_dmabuf = kfn('iopt_map_dmabuf', function* (t: Task, ioas: IommufdIoas, env: ImporterEnv): KGen<number> {
  const pages = ioas.pages;
  const buf = env.buffer;
  yield* get_dma_buf(t, buf);
  const a = yield* dma_buf_dynamic_attach(t, buf, 'iommufd', iopt_dmabuf_attach_revoke_ops, pages, env.name);
  if (isErr(a)) {
    yield* dma_buf_put(t, buf);
    return a;
  }
  yield* dma_resv_lock(t, buf.resv, null);
  // "Lock ordering requires the mutex to be taken inside the reservation,
  // make sure lockdep sees this" (CONFIG_LOCKDEP).
  yield* mutex_lock(t, pages.mutex);
  yield* mutex_unlock(t, pages.mutex);
  let rc = yield* dma_buf_pin(t, a);
  if (rc === 0) {
    const phys = yield* vfio_pci_dma_buf_iommufd_map(t, a);
    if (!isErr(phys)) {
      pages.phys = phys;
      pages.attach = a;
      pages.pinned = true;
      yield* dma_resv_unlock(t, buf.resv);
      return 0;
    }
    rc = phys;
    yield* dma_buf_unpin(t, a);
  }
  yield* dma_resv_unlock(t, buf.resv);
  yield* dma_buf_detach(t, buf, a);
  yield* dma_buf_put(t, buf);
  return rc;
});

/**
 * `iopt_fill_domain()` for the new area: under `pages->mutex`, unless the
 * pages were revoked meanwhile, track the domain and map the range. With
 * `fill_takes_resv` it first asks vfio for the range again, taking resv
 * inside `pages->mutex` (the inversion). Locking: iova_rwsem held for write.
 */
const iopt_fill_domain = kfn('iopt_fill_domain', function* (t: Task, ioas: IommufdIoas, env: ImporterEnv): KGen {
  const pages = ioas.pages;
  yield* mutex_lock(t, pages.mutex);
  const a = pages.attach;
  if (ioas.o.fillTakesResv && a) {
    yield* dma_resv_lock(t, env.buffer.resv, null);
    const phys = yield* vfio_pci_dma_buf_iommufd_map(t, a);
    if (isErr(phys)) pages.phys = null;
    yield* dma_resv_unlock(t, env.buffer.resv);
  }
  const phys = pages.phys;
  if (phys) {
    pages.tracked = true;
    t.stack.push('iopt_area_fill_domain');
    yield* iommu_map(t, ioas.domain, `${env.name}:iopt`, env.buffer.name, phys);
    t.stack.pop();
  }
  yield* mutex_unlock(t, pages.mutex);
});

/**
 * `iopt_release_pages()`: the last reference to the pages: unpin (under
 * resv, unless `unpin_under_resv: false`), detach, put. Locking: resv not
 * held; iova_rwsem held (the unmap path).
 */
const iopt_release_pages = kfn('iopt_release_pages', function* (t: Task, ioas: IommufdIoas): KGen {
  const pages = ioas.pages;
  const a = pages.attach;
  if (!a) return;
  const buf = a.dmabuf;
  if (pages.pinned) {
    if (ioas.o.unpinUnderResv) yield* dma_resv_lock(t, buf.resv, null);
    yield* dma_buf_unpin(t, a);
    if (ioas.o.unpinUnderResv) yield* dma_resv_unlock(t, buf.resv);
    pages.pinned = false;
  }
  yield* dma_buf_detach(t, buf, a);
  yield* dma_buf_put(t, buf);
  pages.attach = null;
  pages.phys = null;
});

export class IommufdImporter implements ImporterInstance {
  /** Creating the IOAS attaches nothing: the dma-buf is attached by IOMMU_IOAS_MAP_FILE. */
  readonly attachCall = 'iommufd_ioas_alloc';
  readonly ioas: IommufdIoas;

  constructor(readonly env: ImporterEnv) {
    this.ioas = new IommufdIoas(env.k, env.name, env.pages, iommufdOptions(env.options));
  }

  *attach(_t: Task): KGen<number> {
    return 0;
  }

  *detach(t: Task): KGen {
    yield* IommufdImporter.kops.unmap(t, this);
  }

  /** The VMM closes the iommufd: `iommufd_ioas_destroy` → `iopt_unmap_all`. */
  *teardown(t: Task): KGen {
    t.stack.push('iommufd_ioas_destroy', 'iopt_unmap_all');
    yield* this.unmapRange(t);
    t.stack.pop();
    t.stack.pop();
  }

  readonly ops = {
    map: (t: Task) => IommufdImporter.kops.map(t, this),
    dma: (t: Task, args: OpArgs) => IommufdImporter.kops.dma(t, this, Number(args.page)),
    unmap: (t: Task) => IommufdImporter.kops.unmap(t, this),
  };

  /** The ops as kernel functions, made once for the class. */
  private static readonly kops = {
    map: kfn('iommufd_ioas_map_file', (t: Task, self: IommufdImporter) => self.mapFile(t)),
    dma: kfn('iommufd_device_dma', (t: Task, self: IommufdImporter, page: number) =>
      device_dma_table(t, self.ioas.domain, page),
    ),
    unmap: kfn('iommufd_ioas_unmap', (t: Task, self: IommufdImporter) => self.unmapRange(t)),
  };

  /**
   * IOMMU_IOAS_MAP_FILE of the dma-buf at IOVA 0 (IOMMU_IOAS_MAP_FIXED_IOVA). 0, or the
   * error; the model's one area already in use gives -EBUSY.
   */
  private *mapFile(t: Task): KGen<number> {
    const ioas = this.ioas;
    t.stack.push('iopt_map_file_pages');
    yield* down_write(t, ioas.iova_rwsem);
    let rc = -EBUSY;
    if (!ioas.area) {
      rc = yield* iopt_map_dmabuf(t, ioas, this.env);
      if (rc === 0) {
        ioas.area = true;
        yield* iopt_fill_domain(t, ioas, this.env);
      }
    }
    yield* up_write(t, ioas.iova_rwsem);
    t.stack.pop();
    return rc;
  }

  /** IOMMU_IOAS_UNMAP of the area (`iopt_unmap_iova_range`). 0 or -ENOENT. */
  private *unmapRange(t: Task): KGen<number> {
    const ioas = this.ioas;
    const pages = ioas.pages;
    t.stack.push('iopt_unmap_iova_range');
    yield* down_write(t, ioas.iova_rwsem);
    let rc = -ENOENT;
    if (ioas.area) {
      rc = 0;
      // iopt_area_unfill_domains: a revoked range was unmapped by the revoke.
      t.stack.push('iopt_area_unfill_domains');
      yield* mutex_lock(t, pages.mutex);
      if (pages.tracked && pages.phys !== null) yield* iommu_unmap(t, ioas.domain);
      pages.tracked = false;
      yield* mutex_unlock(t, pages.mutex);
      t.stack.pop();
      ioas.area = false;
      yield* iopt_release_pages(t, ioas);
    }
    yield* up_write(t, ioas.iova_rwsem);
    t.stack.pop();
    return rc;
  }
}

export const iommufd = defineImporter({
  name: 'iommufd',
  summary:
    'an iommufd IOAS mapping a vfio-pci dma-buf (IOMMU_IOAS_MAP_FILE): pinned, revocable, no faults ([V4], [V7])',
  options: {
    unmap_on_revoke: {
      type: 'boolean',
      default: true,
      doc: 'the revoke callback unmaps the IO page table; false: it only marks the pages revoked and the device keeps reaching the BAR',
    },
    fill_takes_resv: {
      type: 'boolean',
      default: false,
      doc: 'true: the domain fill asks vfio for the range again under pages->mutex, taking resv inside it (the inverse of the order the revoke callback uses)',
    },
    unpin_under_resv: {
      type: 'boolean',
      default: true,
      doc: 'iopt_release_pages takes resv around dma_buf_unpin; false: it does not (as first merged), a lock-not-held on every unmap',
    },
  },
  ops: {
    map: {
      doc: 'IOMMU_IOAS_MAP_FILE of the dma-buf: attach, pin and get the BAR range under resv, then map it into the IO page table under pages->mutex',
    },
    dma: {
      doc: "the assigned device's DMA to a page through the IO page table (an IOMMU fault when unmapped)",
      args: PAGE_ARG,
    },
    unmap: {
      doc: 'IOMMU_IOAS_UNMAP: unmap the IO page table (unless revoked), then unpin under resv, detach and put',
    },
  },
  create: (env) => new IommufdImporter(env),
});
