/**
 * The `udmabuf` exporter: a dma-buf made from a range of a memfd's pages
 * (`UDMABUF_CREATE`). The pages are pinned at create (`memfd_pin_folios`,
 * FOLL_LONGTERM) and never move, so every mapping stays valid until release;
 * a static exporter (no pin/unpin).
 *
 * - create (`udmabuf_create`): the range must be page aligned and inside the
 *   memfd; `check_memfd_seals` wants `F_SEAL_SHRINK` and refuses
 *   `F_SEAL_WRITE` / `F_SEAL_FUTURE_WRITE` (-EINVAL); then one pin per folio
 *   (`ubuf->pinned_folios`) and, per page, its folio and its offset in the
 *   folio (`ubuf->folios[i]`, `ubuf->offsets[i]`): a huge folio (a hugetlbfs
 *   memfd, option `folio_order`) gives several pages, and page i's PFN is
 *   `folio_pfn(folio) + offset`;
 * - map_dma_buf builds an sg_table of the pages (`get_sg_table`);
 * - mmap (`mmap_udmabuf`) refuses a private mapping and installs
 *   `udmabuf_vm_ops`, whose fault handler bounds `vmf->pgoff` against
 *   `pagecount` (SIGBUS past it) and maps the page with no lock — the pages
 *   never move ([C2] b, [C4] trivially):
 *   - `mmap: pfnmap` (since 6.11, "udmabuf: use vmf_insert_pfn and VM_PFNMAP
 *     for handling mmap"): VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP, and the
 *     fault inserts `folio_pfn + offset` (`vmf_insert_pfn`): the PTE holds no
 *     reference — the udmabuf's pins keep the page alive — and mremap cannot
 *     grow the VMA;
 *   - `mmap: page` (2018 – 6.10): no VM flags; the fault hands back the page
 *     (`vmf->page = ubuf->pages[pgoff]; get_page()`): a struct-page PTE with a
 *     reference on the folio and a mapcount on the page, and mremap can grow
 *     the VMA past the buffer;
 *   - `fault_bound: none` is the handler before "udmabuf: add back sanity
 *     check" (5.19, 2022): a fault past the buffer — possible once mremap grew
 *     the VMA, [C1] — reads `ubuf->pages[pgoff]` past the array (KASAN
 *     slab-out-of-bounds; the model gives SIGBUS after the report);
 * - vmap (resv held) maps the pages with vm_map_ram, vunmap undoes it
 *   (`vmap_udmabuf` / `vunmap_udmabuf`, both dma_resv_assert_held, [C6]);
 * - begin_cpu_access (`begin_cpu_udmabuf`) maps the pages for the udmabuf
 *   misc device the first time (ubuf->sg) and syncs them for the CPU after
 *   that; end_cpu_access (`end_cpu_udmabuf`) syncs them for the device, or
 *   returns -EINVAL when no begin made ubuf->sg yet ([C7]). Neither takes a
 *   lock (ubuf->sg is an object of its own for the explorer);
 * - release puts ubuf->sg and unpins the folios: a folio is freed when its
 *   last reference goes (`unpin_folio`).
 *
 * The memfd (kernel/memfd.ts): by default userspace closes it right after
 * UDMABUF_CREATE (the usual pattern), so the pins are then the pages' only
 * references and release frees them. With `memfd: open` it stays open and
 * the buffer has the ops `memfd_close`, `memfd_truncate` and
 * `memfd_add_seals`: a truncate or close drops the page cache's references,
 * and the pins keep the udmabuf's pages alive — seals are not what keeps them
 * ([I2]). `pin_folios: false` is a udmabuf that records the folios without
 * pinning them (no kernel did): the memfd's close then frees pages the
 * udmabuf still maps.
 *
 * Simplifications: one memfd range per buffer (UDMABUF_CREATE, not _LIST);
 * the size limit (`size_limit_mb`) is not modelled; cache maintenance has no
 * effect in the model; the fault maps one page (no pre-fault of the whole
 * VMA); the race of the seal check with a concurrent `memfd_add_seals`
 * (fixed in Dec 2024 by taking the inode lock around check and pin) is not
 * reachable, since the buffer is created at setup.
 *
 * Models: drivers/dma-buf/udmabuf.c, mm/gup.c (memfd_pin_folios)
 */
import { KasanArray } from '../../checkers/kasan.ts';
import { type DmaBuf, dma_buf_export } from '../../kernel/dma-buf.ts';
import type { DmaBufOps, IosysMap } from '../../kernel/dma-buf-ops.ts';
import { dma_resv_assert_held } from '../../kernel/dma-resv.ts';
import { EBADF, EINVAL, isErr, type Result } from '../../kernel/errno.ts';
import type { Kernel } from '../../kernel/kernel.ts';
import {
  F_SEAL_FUTURE_WRITE,
  F_SEAL_GROW,
  F_SEAL_SEAL,
  F_SEAL_SHRINK,
  F_SEAL_WRITE,
  Memfd,
  type MemfdInode,
  memfd_add_seals,
  memfd_close,
  memfd_create,
  memfd_evict,
  memfd_pin_folios,
  memfd_truncate,
  unpin_folio,
} from '../../kernel/memfd.ts';
import {
  finish_fault,
  installTranslation,
  VM_DONTDUMP,
  VM_DONTEXPAND,
  VM_FAULT_SIGBUS,
  VM_PFNMAP,
  VM_SHARED,
  type Vma,
  type VmFault,
  type VmOperations,
  vma_link,
  vmf_insert_pfn,
  zapTranslation,
} from '../../kernel/memory.ts';
import {
  type Frame,
  folio_page,
  folioPages,
  freeStep,
  type PfnRef,
  pfnRef,
  type Translation,
} from '../../kernel/page-alloc.ts';
import { type KGen, KObject, kfn, type Task } from '../../kernel/sched.ts';
import { defineExporter, type OpArgs } from '../driver.ts';
import { mapFrames, unmapFrames, vmapFrames, vunmapFrames } from './common.ts';

/** `struct udmabuf`: the part that changes after create (`sg`, written without a lock). */
export class Udmabuf extends KObject {
  readonly type = 'udmabuf';
  /** The misc device's mapping made by the first begin_cpu_access. */
  sg: Translation[] | null = null;
  syncs = 0;
  /** What create recorded (pages, folios, offsets, pins); never changes afterwards. */
  state: UdmabufState | null = null;

  constructor(k: Kernel, name: string) {
    super(k, name);
  }

  override snapshot(): Record<string, unknown> {
    return { sg: this.sg !== null, syncs: this.syncs };
  }
}

/** What an exported udmabuf's ops work on. */
export interface UdmabufState {
  /** Per page: the page itself (`folio_page(folio, offset)`). */
  readonly frames: readonly Frame[];
  /** `ubuf->folios` (`ubuf->pages` before folios, with `mmap: page`): per page, its folio, or the page itself. */
  readonly folios: KasanArray<Frame>;
  /** `ubuf->offsets`: per page, its offset in its folio, in pages. */
  readonly offsets: readonly number[];
  /**
   * Per page, `folio_page(folio, offset)` — the PFN `folio_pfn + offset` —
   * with the page's generation when create recorded it: the fault maps what
   * create recorded, so a page freed since is a stale mapping.
   */
  readonly refs: readonly PfnRef[];
  /** `ubuf->pinned_folios`: what release unpins. */
  readonly pinned: readonly Frame[];
  readonly pagecount: number;
  readonly ubuf: Udmabuf;
  /** The misc device that begin_cpu_access maps the pages for. */
  readonly device: string;
  /** Option `mmap`: pfnmap (VM_PFNMAP, vmf_insert_pfn) or page (vmf->page + get_page). */
  readonly pfnmap: boolean;
  /** Option `fault_bound`: the fault handler checks pgoff against pagecount. */
  readonly bounded: boolean;
}

// The ops are generator functions made once, here, and not per export: a
// generator function made per buffer costs V8 a fresh prototype and object
// shape the first time it runs, in every execution.

/**
 * `udmabuf_vm_fault`. Locking: mmap_lock held for read; takes nothing (the
 * pages never move). SIGBUS past the buffer (unless `fault_bound: none`);
 * then the PFN `folio_pfn(folios[pgoff]) + offsets[pgoff]` (computed once,
 * at create: `refs`), or, with `mmap: page`, the page itself with a
 * reference.
 */
const udmabuf_vm_fault = kfn('udmabuf_vm_fault', function* (t: Task, vmf: VmFault, u: UdmabufState): KGen<number> {
  const pgoff = vmf.pgoff;
  if (u.bounded && pgoff >= u.pagecount) return VM_FAULT_SIGBUS;
  // Past the array: reported; what the kernel would map from there is not modelled.
  const ref = u.folios.at(t, pgoff) ? u.refs[pgoff] : undefined;
  if (!ref) return VM_FAULT_SIGBUS;
  // vmf->page = ubuf->pages[pgoff]; get_page(vmf->page); return 0 — finish_fault maps it.
  if (!u.pfnmap) return yield* finish_fault(t, vmf.vma, vmf.page, ref);
  return yield* vmf_insert_pfn(t, vmf.vma, vmf.page, ref);
});

/**
 * `release_udmabuf`: put ubuf->sg, then unpin every pinned folio; a folio
 * whose last reference that was is freed.
 */
function* release_udmabuf(t: Task, u: UdmabufState): KGen {
  const { frames, ubuf } = u;
  const s = freeStep(t, 'release_udmabuf', frames).touch(ubuf, 'write');
  // The pages of a huge folio outside the range: freed with it.
  for (const folio of u.pinned) {
    if (folio.order === 0) continue;
    for (const p of folioPages(folio)) if (!frames.includes(p)) s.touch(p, 'write');
  }
  yield s;
  if (ubuf.sg) for (const tr of ubuf.sg) zapTranslation(tr);
  ubuf.sg = null;
  for (const folio of u.pinned) unpin_folio(t, folio);
}

/** `mmap_udmabuf`: a shared mapping only; a faulting mapping (udmabuf_vm_ops), linked into the buffer's address_space. */
function* mmap_udmabuf(t: Task, u: UdmabufState, fault: VmOperations['fault'], dmabuf: DmaBuf, vma: Vma): KGen<number> {
  if ((vma.vm_flags & VM_SHARED) === 0) return -EINVAL;
  vma.vm_ops = { name: 'udmabuf_vm_fault', fault };
  vma.vm_private_data = u.ubuf;
  if (u.pfnmap) vma.vm_flags |= VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP;
  yield* vma_link(t, vma, dmabuf.f_mapping);
  return 0;
}

/** `vmap_udmabuf`. Locking: resv held ([L3], [C6]). */
function* vmap_udmabuf(t: Task, u: UdmabufState, dmabuf: DmaBuf): KGen<Result<IosysMap>> {
  dma_resv_assert_held(t, dmabuf.resv, 'vmap_udmabuf', ['L3', 'C6']);
  return yield* vmapFrames(t, 'vm_map_ram', dmabuf, u.frames);
}

/** `vunmap_udmabuf`. Locking: resv held ([L3], [C6]). */
function* vunmap_udmabuf(t: Task, dmabuf: DmaBuf, map: IosysMap): KGen {
  dma_resv_assert_held(t, dmabuf.resv, 'vunmap_udmabuf', ['L3', 'C6']);
  yield* vunmapFrames(t, 'vm_unmap_ram', map);
}

/** `begin_cpu_udmabuf`. Locking: resv not held, takes nothing ([C7]). */
function* begin_cpu_udmabuf(t: Task, u: UdmabufState, dmabuf: DmaBuf): KGen<number> {
  const { frames, ubuf } = u;
  const s = t.at('begin_cpu_udmabuf', 'write', ubuf);
  for (const f of frames) s.touch(f, 'write');
  yield s;
  if (!ubuf.sg) {
    // get_sg_table(): dma_map_sgtable for the udmabuf misc device.
    ubuf.sg = frames.map((f, i) => installTranslation(t, 'dma', u.device, dmabuf.name, i, pfnRef(f)));
  } else {
    // dma_sync_sg_for_cpu()
    ubuf.syncs++;
  }
  return 0;
}

/** `end_cpu_udmabuf`: -EINVAL before any begin_cpu_access. Locking: resv not held ([C7]). */
function* end_cpu_udmabuf(t: Task, ubuf: Udmabuf): KGen<number> {
  yield t.at('end_cpu_udmabuf', 'write', ubuf);
  if (!ubuf.sg) return -EINVAL;
  // dma_sync_sg_for_device()
  ubuf.syncs++;
  return 0;
}

const SEALS: Readonly<Record<string, number>> = {
  shrink: F_SEAL_SHRINK,
  grow: F_SEAL_GROW,
  write: F_SEAL_WRITE,
  'future-write': F_SEAL_FUTURE_WRITE,
  seal: F_SEAL_SEAL,
  none: 0,
  'shrink+write': F_SEAL_SHRINK | F_SEAL_WRITE,
};

/** `check_memfd_seals`: F_SEAL_SHRINK wanted; F_SEAL_WRITE and F_SEAL_FUTURE_WRITE denied. */
function check_memfd_seals(inode: MemfdInode): number {
  if ((inode.seals & F_SEAL_SHRINK) === 0) return -EINVAL;
  if (inode.seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) return -EINVAL;
  return 0;
}

/** The memfd ops on the buffer: -EBADF once userspace has closed the memfd (always, with `memfd: closed`). */
const memfdOps = {
  close: kfn('memfd_fput', function* (t: Task, memfd: Memfd | null): KGen<number> {
    return memfd ? yield* memfd_close(t, memfd) : -EBADF;
  }),
  truncate: kfn('do_sys_ftruncate', function* (t: Task, memfd: Memfd | null, args: OpArgs): KGen<number> {
    return memfd ? yield* memfd_truncate(t, memfd, Number(args.pages)) : -EBADF;
  }),
  addSeals: kfn('memfd_fcntl', function* (t: Task, memfd: Memfd | null, args: OpArgs): KGen<number> {
    return memfd ? yield* memfd_add_seals(t, memfd, SEALS[String(args.seal)] ?? 0) : -EBADF;
  }),
};

export const udmabuf = defineExporter({
  name: 'udmabuf',
  exportCall: 'udmabuf_create',
  summary: 'memfd pages pinned at UDMABUF_CREATE, never moved',
  options: {
    memfd: {
      type: 'enum',
      values: ['closed', 'open'],
      default: 'closed',
      late: true,
      doc: 'closed: userspace closes the memfd right after UDMABUF_CREATE; open: it keeps it open, and the ops memfd_close, memfd_truncate and memfd_add_seals act on it',
    },
    folio_order: {
      type: 'int',
      min: 0,
      max: 2,
      default: 0,
      late: true,
      doc: 'the memfd is hugetlbfs (MFD_HUGETLB) with folios of 2^order pages; 0: shmem, order-0 pages',
    },
    memfd_offset: {
      type: 'int',
      min: 0,
      max: 3,
      default: 0,
      late: true,
      doc: 'the page of the memfd where the udmabuf range starts (inside a huge folio when not a multiple of its size)',
    },
    seals: {
      type: 'enum',
      values: ['shrink', 'none', 'shrink+write'],
      default: 'shrink',
      late: true,
      doc: 'the seals userspace put on the memfd before UDMABUF_CREATE (create wants F_SEAL_SHRINK and refuses F_SEAL_WRITE)',
    },
    check_seals: {
      type: 'boolean',
      default: true,
      late: true,
      doc: 'udmabuf_create checks the seals (check_memfd_seals); false: it does not, and takes any memfd',
    },
    pin_folios: {
      type: 'boolean',
      default: true,
      late: true,
      doc: 'create pins the folios (memfd_pin_folios); false: it records them without a reference (no kernel did: the memfd then owns the pages alone)',
    },
    mmap: {
      type: 'enum',
      values: ['pfnmap', 'page'],
      default: 'pfnmap',
      late: true,
      doc: 'pfnmap: VM_PFNMAP|VM_DONTEXPAND|VM_DONTDUMP and vmf_insert_pfn of folio_pfn + offset (since 6.11); page: the fault hands back vmf->page with get_page (a struct-page mapping), and mremap may grow the VMA (2018 to 6.10)',
    },
    fault_bound: {
      type: 'enum',
      values: ['>=', 'none'],
      default: '>=',
      late: true,
      doc: "the fault handler's check of vmf->pgoff: '>=' pagecount gives SIGBUS; none: no check (before \"udmabuf: add back sanity check\", 2022)",
    },
  },
  ops: {
    memfd_close: {
      doc: "close the memfd (its last fput evicts the inode: the page cache's references go, whatever the seals)",
    },
    memfd_truncate: {
      doc: 'ftruncate the memfd to a number of pages (-EPERM under F_SEAL_SHRINK when shrinking)',
      args: { pages: { type: 'int', min: 0, max: 64, required: true, doc: 'the new size in pages' } },
    },
    memfd_add_seals: {
      doc: 'fcntl(F_ADD_SEALS) on the memfd (-EBUSY for write seals while pages are pinned)',
      args: {
        seal: {
          type: 'enum',
          values: ['shrink', 'grow', 'write', 'future-write', 'seal'],
          required: true,
          doc: 'the seal',
        },
      },
    },
  },
  *export(t, env) {
    const pool = env.k.physmem.pools.get('system');
    if (!pool) throw new Error('no system pool');
    const order = Number(env.options.folio_order ?? 0);
    const offset = Number(env.options.memfd_offset ?? 0);
    const span = 1 << order;
    const size = Math.ceil((offset + env.pages) / span) * span;
    // memfd_create + ftruncate + the pages touched: the memfd's page cache.
    const inode = yield* memfd_create(t, pool, size, order, (i) => `${env.name} (udmabuf memfd) page ${i}`);
    inode.seals = SEALS[String(env.options.seals ?? 'shrink')] ?? F_SEAL_SHRINK;
    // udmabuf_create: check_memfd_seals, then memfd_pin_folios for the range.
    if (env.options.check_seals !== false) {
      const r = check_memfd_seals(inode);
      if (r < 0) return r;
    }
    const pinned = memfd_pin_folios(inode, offset, env.pages, env.options.pin_folios !== false);
    if (typeof pinned === 'number') return pinned;
    const keep = env.options.memfd === 'open';
    const memfd = keep ? new Memfd(env.k, `${env.name}:memfd`, inode) : null;
    // The usual pattern: userspace closes the memfd once the udmabuf exists.
    if (!keep) memfd_evict(t, inode);
    const pfnmap = env.options.mmap !== 'page';
    const frames = pinned.pages.map((p) => folio_page(p.folio, p.offset));
    const ubuf = new Udmabuf(env.k, `${env.name}:udmabuf`);
    const u: UdmabufState = {
      frames,
      // Before folios, ubuf->pages held the pages themselves.
      folios: pfnmap
        ? new KasanArray(
            t,
            'udmabuf->folios',
            env.name,
            pinned.pages.map((p) => p.folio),
          )
        : new KasanArray(t, 'udmabuf->pages', env.name, frames),
      offsets: pinned.pages.map((p) => p.offset),
      refs: frames.map(pfnRef),
      pinned: pinned.pinned,
      pagecount: env.pages,
      ubuf,
      device: `${env.name}:udmabuf-misc`,
      pfnmap,
      bounded: env.options.fault_bound !== 'none',
    };
    ubuf.state = u;
    const fault = (t: Task, vmf: VmFault) => udmabuf_vm_fault(t, vmf, u);

    const ops: DmaBufOps = {
      map_dma_buf: (t, attach, dir) => mapFrames(t, 'map_udmabuf', attach, frames, dir),
      unmap_dma_buf: (t, _attach, sgt) => unmapFrames(t, 'unmap_udmabuf', sgt),
      release: (t) => release_udmabuf(t, u),
      mmap: (t, dmabuf, vma) => mmap_udmabuf(t, u, fault, dmabuf, vma),
      vmap: (t, dmabuf) => vmap_udmabuf(t, u, dmabuf),
      vunmap: (t, dmabuf, map) => vunmap_udmabuf(t, dmabuf, map),
      begin_cpu_access: (t, dmabuf) => begin_cpu_udmabuf(t, u, dmabuf),
      end_cpu_access: (t) => end_cpu_udmabuf(t, ubuf),
    };
    const buf = yield* dma_buf_export(t, env.name, {
      exp_name: 'udmabuf',
      ops,
      pages: env.pages,
      priv: ubuf,
      backing: () => frames,
    });
    if (isErr(buf)) return buf;
    return {
      buf,
      pool,
      ops: {
        memfd_close: (t: Task) => memfdOps.close(t, memfd),
        memfd_truncate: (t: Task, args: OpArgs) => memfdOps.truncate(t, memfd, args),
        memfd_add_seals: (t: Task, args: OpArgs) => memfdOps.addSeals(t, memfd, args),
      },
    };
  },
});
