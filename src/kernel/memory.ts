/**
 * CPU mappings: mm_struct with its mmap_lock, VMAs with PTEs, the
 * address_space an exporter zaps with `unmap_mapping_range()`, and the page
 * fault path that calls a VMA's `vm_ops->fault` ([C1]–[C5], [L14]).
 *
 * Translations (PTEs here, SPTEs and DMA mappings elsewhere) are installed
 * and removed with {@link installTranslation} / {@link zapTranslation} inside
 * a step that declared a write of the table and of the frame. A step that
 * reads or zaps a table declares the frames the table maps *when the step
 * runs* ({@link tableStep}): the explorer recomputes that before every
 * dependence test.
 *
 * Models: mm/memory.c (vmf_insert_pfn, zap, unmap_mapping_range,
 * handle_mm_fault), include/linux/mm_types.h, include/linux/fs.h (address_space)
 */
import { kasan_check } from '../checkers/kasan.ts';
import { heldInfo, LOCK_CLASS, origin } from '../checkers/lockdep.ts';
import { EFAULT } from './errno.ts';
import type { Kernel } from './kernel.ts';
import { down_write, EXCLUSIVE, Lock, lock_acquire, lock_release, SHARED, up_write } from './locking.ts';
import {
  folio_page,
  frameInfo,
  get_page,
  hexPfn,
  type PfnRef,
  put_page,
  staleMapping,
  Translation,
  translationInfo,
} from './page-alloc.ts';
import { type KGen, KObject, kfn, SharedObject, type Step, type Task } from './sched.ts';

export const VM_FAULT_SIGBUS = 0x0002;
export const VM_FAULT_NOPAGE = 0x0100;
export const VM_FAULT_RETRY = 0x0400;

/** `vma->vm_flags` bits the model reads (include/linux/mm.h values). */
export const VM_SHARED = 0x0000_0008;
export const VM_PFNMAP = 0x0000_0400;
export const VM_IO = 0x0000_4000;
export const VM_DONTEXPAND = 0x0004_0000;
export const VM_DONTDUMP = 0x0400_0000;
/** What `remap_pfn_range()` sets, and what PFN-mapping exporters set in their mmap. */
export const VM_PFNMAP_FLAGS = VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP;

/** `struct mm_struct`: one per process (or per VM for KVM's userspace). */
export class MmStruct extends KObject {
  readonly type = 'mm_struct';
  readonly mmap_lock: Lock;

  constructor(k: Kernel, name: string) {
    super(k, name);
    this.mmap_lock = new Lock(k, `${name}->mmap_lock`, LOCK_CLASS.mmap_lock, 'rwsem');
  }
}

/** `struct address_space`: the VMAs mapping a file, for `unmap_mapping_range()` ([C3]). */
export class AddressSpace extends KObject {
  readonly type = 'address_space';
  /** Protected by i_mmap_rwsem. */
  readonly i_mmap: Vma[] = [];
  readonly i_mmap_rwsem: Lock;

  constructor(k: Kernel, name: string) {
    super(k, name);
    this.i_mmap_rwsem = new Lock(k, `${name}->i_mmap_rwsem`, LOCK_CLASS.i_mmap, 'rwsem');
  }
}

export interface VmFault {
  readonly vma: Vma;
  /** Page index within the VMA. */
  readonly page: number;
  /** `vmf->pgoff`: page offset within the file. */
  readonly pgoff: number;
  /** `vmf->flags`: FAULT_FLAG_ALLOW_RETRY, FAULT_FLAG_TRIED … */
  readonly flags: number;
}

/** The handler may drop mmap_lock and return VM_FAULT_RETRY (every user fault may). */
export const FAULT_FLAG_ALLOW_RETRY = 1 << 2;
/** This is a retry: the handler must not ask for another (it waits with mmap_lock held instead). */
export const FAULT_FLAG_TRIED = 1 << 5;

/** `fault_flag_allow_retry_first()`: retry allowed and not tried yet. */
export function fault_flag_allow_retry_first(flags: number): boolean {
  return (flags & FAULT_FLAG_ALLOW_RETRY) !== 0 && (flags & FAULT_FLAG_TRIED) === 0;
}

/**
 * `struct vm_operations_struct`.
 *
 * `fault` — Locking: called with mmap_lock held for read. Must return with no
 * lock taken in the handler still held; with VM_FAULT_RETRY, mmap_lock has
 * been dropped ([L14], [I18]).
 */
export interface VmOperations {
  readonly name: string;
  fault(t: Task, vmf: VmFault): KGen<number>;
}

/**
 * A table of translations (a VMA's PTEs, a VM's SPTEs). Each entry is a
 * shared object of its own (`slots[i]`), so accesses to different pages
 * commute.
 */
export interface TranslationTable extends KObject {
  readonly entries: (Translation | null)[];
  readonly slots: readonly KObject[];
}

/** One shared object per entry of a translation table. */
export function tableSlots(k: Kernel, name: string, n: number): KObject[] {
  const slots: KObject[] = [];
  for (let i = 0; i < n; i++) slots.push(new SharedObject(k, `${name}[${i}]`, 'translation_slot'));
  return slots;
}

interface TableDecl {
  readonly tables: readonly TranslationTable[];
  /** One page of each table, or -1 for all. */
  readonly page: number;
  readonly write: boolean;
  /** Accesses declared before the frames. */
  readonly base: number;
}

function refreshTables(s: Step): void {
  const d = s.arg as TableDecl;
  s.nacc = d.base;
  s.global = false;
  const mode = d.write ? 'write' : 'read';
  for (const tb of d.tables) {
    if (d.page >= 0) {
      const slot = tb.slots[d.page];
      if (slot) s.touch(slot, mode);
      const e = tb.entries[d.page];
      if (e) touchEntry(s, e, d.write);
    } else {
      for (const slot of tb.slots) s.touch(slot, mode);
      for (const e of tb.entries) if (e) touchEntry(s, e, d.write);
    }
  }
}

/**
 * The frame an entry maps. Zapping a struct-page PTE drops a reference on its
 * folio and may free it: every page of the folio and its pool's free list are
 * written too.
 */
function touchEntry(s: Step, e: Translation, write: boolean): void {
  const f = e.frame;
  s.touch(f, write ? 'write' : 'read');
  if (!write || !e.refd) return;
  s.touch(f.pool, 'write');
  const head = f.head;
  const n = 1 << head.order;
  for (let i = 0; i < n; i++) {
    const p = folio_page(head, i);
    if (p !== f) s.touch(p, 'write');
  }
}

/**
 * Declares on `s` the entries of `tables` (page `page`, or all with -1) and
 * the frames they map, read or written — recomputed from the tables whenever
 * the explorer asks, since the frames an entry maps change. Declare every
 * other access on `s` before calling it: a refresh keeps only those.
 */
export function tableStep(s: Step, tables: readonly TranslationTable[], page: number, write: boolean): Step {
  s.arg = { tables, page, write, base: s.nacc } satisfies TableDecl;
  s.refresh = refreshTables;
  refreshTables(s);
  return s;
}

/**
 * `struct vm_area_struct`; its PTE table is a shared object. Its size
 * (`vm_end - vm_start`, in pages) changes only under mmap_lock held for write
 * ({@link mremap}); a PTE slot is made for every page it ever covered.
 */
export class Vma extends KObject implements TranslationTable {
  readonly type = 'vm_area_struct';
  vm_pgoff = 0;
  /** `vm_flags`: VM_SHARED from the mapping, VM_PFNMAP / VM_DONTEXPAND … from the exporter's mmap. */
  vm_flags = 0;
  vm_ops: VmOperations | null = null;
  /** The address_space this VMA is linked into (of `vm_file`), if any. */
  mapping: AddressSpace | null = null;
  /** `vm_file`: the name of the file mapped (for reports). */
  vm_file: string | null = null;
  vm_private_data: unknown = null;
  /** Mapped in its mm (set and cleared under mmap_lock held for write). */
  live = false;
  readonly ptes: (Translation | null)[];

  constructor(
    k: Kernel,
    readonly mm: MmStruct,
    /** Who owns the mapping (the importer, for reports). */
    readonly owner: string,
    /** Size in pages (`vma_pages()`); changed only by {@link mremap}. */
    public pages: number,
  ) {
    super(k, `${owner}:vma`);
    this.ptes = new Array<Translation | null>(pages).fill(null);
    this.slots = tableSlots(k, `${owner}:pte`, pages);
    this.mappedPages = pages;
  }

  readonly slots: KObject[];
  /** The size it was mapped with (snapshots show the size only once mremap changed it). */
  private readonly mappedPages: number;

  get entries(): (Translation | null)[] {
    return this.ptes;
  }

  override snapshot(): Record<string, unknown> {
    return {
      live: this.live,
      file: this.vm_file,
      ...(this.pages !== this.mappedPages ? { pages: this.pages } : {}),
      ptes: this.ptes.map((p) => (p ? { pfn: hexPfn(p.frame.pfn), stale: p.stale } : null)),
    };
  }
}

/**
 * Records a new translation of `ref` (inside a step that declared a write of
 * the table entry and of the frame). A PFN that no longer backs its buffer —
 * freed or revoked since it was obtained, or a free page — is a
 * `stale-mapping` at install ([I2]). A host translation of private MMIO — a CPU PTE, a DMA
 * mapping, or an SPTE that is not in a secure EPT (`secureEpt`) — is a
 * `private-mmio` finding: a device assigned to a confidential guest (TDISP)
 * exposes its BAR to that guest's secure EPT only ([K8]).
 */
export function installTranslation(
  t: Task,
  kind: 'spte' | 'pte' | 'dma',
  importer: string,
  buffer: string,
  page: number,
  ref: PfnRef,
  secureEpt = false,
): Translation {
  // A PFN of a page already free (obtained after the free) belongs to the page's last life.
  const f = ref.frame;
  const gen = f.state === 'free' && ref.gen === f.gen && f.gen > 0 ? f.gen - 1 : ref.gen;
  const tr = new Translation(kind, importer, buffer, page, f, gen, origin(t));
  if (tr.stale) staleMapping(t, tr, 'install');
  if (ref.frame.privateMmio && !(kind === 'spte' && secureEpt)) privateMmioMapped(t, tr);
  ref.frame.translations.push(tr);
  t.k.physmem.translations.push(tr);
  return tr;
}

function privateMmioMapped(t: Task, tr: Translation): void {
  const what =
    tr.kind === 'pte' ? 'a CPU PTE' : tr.kind === 'dma' ? 'a host DMA mapping' : 'an SPTE outside the secure EPT';
  t.k.report(t, {
    code: 'private-mmio',
    translation: translationInfo(tr),
    frame: frameInfo(tr.frame, tr.gen),
    rules: ['K8'],
    message: `${t.name} installs ${what} (${tr.importer}) for private MMIO pfn ${hexPfn(tr.frame.pfn)} of ${tr.buffer} page ${tr.page}`,
  });
}

/**
 * The importer promises not to use these translations any more but keeps
 * them until it can tear them down (the wind-down window after invalidate,
 * [LT9]): freeing or revoking their frames is then not a `stale-mapping`,
 * while an access through one still is a `use-after-free` /
 * `access-after-revoke`. One step, writing each frame.
 */
export function* invalidate_translations(t: Task, trs: readonly Translation[]): KGen {
  const first = trs[0];
  if (!first) return;
  const s = t.at('invalidate_translations', 'write', first.frame);
  for (const tr of trs) s.touch(tr.frame, 'write');
  yield s;
  for (const tr of trs) if (tr.state === 'live') tr.state = 'invalidated';
}

/** Removes a translation (inside a step that declared a write of the table entry and the frame). */
export function zapTranslation(tr: Translation): void {
  if (tr.state === 'gone') return;
  tr.state = 'gone';
  const list = tr.frame.translations;
  const i = list.indexOf(tr);
  if (i >= 0) list.splice(i, 1);
}

/** `vmf_insert_pfn()`: installs one PTE. */
export const vmf_insert_pfn = kfn(
  'vmf_insert_pfn',
  function* (t: Task, vma: Vma, page: number, ref: PfnRef): KGen<number> {
    yield tableStep(
      t.at('vmf_insert_pfn', 'write', vma.slots[page] ?? vma).touch(ref.frame, 'write'),
      [vma],
      page,
      true,
    );
    if (vma.ptes[page]) return VM_FAULT_NOPAGE;
    vma.ptes[page] = installTranslation(t, 'pte', vma.owner, vma.vm_file ?? '?', vma.vm_pgoff + page, ref);
    return VM_FAULT_NOPAGE;
  },
);

/**
 * Removes the PTE of page `i` (inside a step that declared a write of it and
 * its frame): a struct-page PTE also drops its mapcount and its reference on
 * the folio (`zap_present_ptes` → `folio_remove_rmap_ptes`, `folio_put`), which
 * frees the folio when it was the last; a PFN PTE touches no struct page.
 */
function zapPte(t: Task, vma: Vma, i: number): void {
  const tr = vma.ptes[i];
  if (!tr) return;
  zapTranslation(tr);
  vma.ptes[i] = null;
  if (tr.refd) {
    if (tr.frame.mapcount > 0) tr.frame.mapcount--;
    put_page(t, tr.frame, 'zap_pte_range');
  }
}

function zapVma(t: Task, vma: Vma, from = 0): void {
  for (let i = from; i < vma.ptes.length; i++) zapPte(t, vma, i);
}

/** `zap_vma_ptes()`: removes every PTE of the VMA. */
export const zap_vma_ptes = kfn('zap_vma_ptes', function* (t: Task, vma: Vma): KGen {
  yield tableStep(t.at('zap_vma_ptes', 'write', vma), [vma], -1, true);
  zapVma(t, vma);
});

/**
 * `finish_fault()` for a fault handler that returned a page (`vmf->page`,
 * with the reference its `get_page()` took): installs a struct-page PTE,
 * which raises the page's mapcount (`folio_add_file_rmap_ptes`) and keeps
 * the handler's reference on the folio until it is zapped. For a page of a
 * large folio the reference is on the folio (its head) and the mapcount on
 * the page itself. `ref` is the page as the driver recorded it: a page freed
 * since is a `stale-mapping` at install, and gets no reference.
 * Simplification: the handler's `get_page()` is counted in this step, and not
 * at all when another fault installed the PTE first (the kernel takes it and
 * drops it again).
 */
export const finish_fault = kfn('finish_fault', function* (t: Task, vma: Vma, page: number, ref: PfnRef): KGen<number> {
  const f = ref.frame;
  yield tableStep(
    t
      .at('finish_fault', 'write', vma.slots[page] ?? vma)
      .touch(f, 'write')
      .touch(f.head, 'write'),
    [vma],
    page,
    true,
  );
  if (vma.ptes[page]) return 0;
  const tr = installTranslation(t, 'pte', vma.owner, vma.vm_file ?? '?', vma.vm_pgoff + page, ref);
  if (!tr.stale && f.state === 'allocated') {
    get_page(f);
    tr.refd = true;
    f.mapcount++;
  }
  vma.ptes[page] = tr;
  return 0;
});

/**
 * `mremap(addr, old_len, new_len, 0)` of the whole VMA, in place (mm/mremap.c).
 * Locking: takes mmap_lock for write. Growing a VMA with VM_DONTEXPAND or
 * VM_PFNMAP is refused with -EFAULT (`vma_to_resize` / `check_prep_vma`);
 * shrinking unmaps the tail (its PTEs zapped); growing adds pages without
 * PTEs, whose faults reach `vm_ops->fault` with `pgoff = vm_pgoff + page` —
 * past the end of the buffer, since nothing re-checks the size `dma_buf_mmap`
 * checked ([C1]): the fault handler must bound pgoff itself. Returns 0 or
 * -errno (-EFAULT also for a VMA no longer mapped).
 */
export const mremap = kfn('mremap', function* (t: Task, vma: Vma, pages: number): KGen<number> {
  yield* down_write(t, vma.mm.mmap_lock);
  let r = 0;
  if (!vma.live || pages < 1) r = -EFAULT;
  else if (pages > vma.pages && (vma.vm_flags & (VM_DONTEXPAND | VM_PFNMAP)) !== 0) r = -EFAULT;
  else if (pages !== vma.pages) yield* vma_resize(t, vma, pages);
  yield* up_write(t, vma.mm.mmap_lock);
  return r;
});

/** The resize itself (`vma_expand` / `do_vmi_align_munmap` of the tail): one step writing the VMA and every PTE slot. */
const vma_resize = kfn('vma_resize', function* (t: Task, vma: Vma, pages: number): KGen {
  const fn = pages > vma.pages ? 'vma_expand' : 'do_vmi_align_munmap';
  yield tableStep(t.at(fn, 'write', vma), [vma], -1, true);
  if (pages < vma.pages) zapVma(t, vma, pages);
  for (let i = vma.slots.length; i < pages; i++) {
    vma.slots.push(new SharedObject(t.k, `${vma.owner}:pte[${i}]`, 'translation_slot'));
    vma.ptes.push(null);
  }
  vma.pages = pages;
});

/**
 * `unmap_mapping_range(mapping, 0, 0, 1)`: zaps the PTEs of every VMA linked
 * into the address_space, under i_mmap_rwsem ([C3]). PTEs an importer put in
 * a VMA of its own are not found ([C5]).
 */
export const unmap_mapping_range = kfn('unmap_mapping_range', function* (t: Task, mapping: AddressSpace): KGen {
  yield* lock_acquire(t, mapping.i_mmap_rwsem, SHARED, 'i_mmap_lock_read');
  // The VMAs in i_mmap cannot change while we hold i_mmap_rwsem.
  const s = t.at('unmap_mapping_range', 'write', mapping);
  for (const vma of mapping.i_mmap) s.touch(vma, 'write');
  yield tableStep(s, mapping.i_mmap, -1, true);
  for (const vma of mapping.i_mmap) zapVma(t, vma);
  yield* lock_release(t, mapping.i_mmap_rwsem, 'i_mmap_unlock_read');
});

/** Links a VMA into an address_space (`vma_link`, under i_mmap_rwsem). */
export const vma_link = kfn('vma_link', function* (t: Task, vma: Vma, mapping: AddressSpace): KGen {
  yield* lock_acquire(t, mapping.i_mmap_rwsem, EXCLUSIVE, 'i_mmap_lock_write');
  mapping.i_mmap.push(vma);
  vma.mapping = mapping;
  yield* lock_release(t, mapping.i_mmap_rwsem, 'i_mmap_unlock_write');
});

/** Unlinks a VMA from its address_space. */
export const vma_unlink = kfn('vma_unlink', function* (t: Task, vma: Vma): KGen {
  const mapping = vma.mapping;
  if (!mapping) return;
  yield* lock_acquire(t, mapping.i_mmap_rwsem, EXCLUSIVE, 'i_mmap_lock_write');
  const i = mapping.i_mmap.indexOf(vma);
  if (i >= 0) mapping.i_mmap.splice(i, 1);
  vma.mapping = null;
  yield* lock_release(t, mapping.i_mmap_rwsem, 'i_mmap_unlock_write');
});

/**
 * Calls `vm_ops->fault` and checks what it returns holding ([L14], [I18]):
 * with VM_FAULT_RETRY mmap_lock must be gone; otherwise mmap_lock must still
 * be held; nothing the handler took may remain held.
 */
export function* callFaultHandler(t: Task, vmf: VmFault, ops: VmOperations): KGen<number> {
  const before = new Set(t.held.map((h) => h.lock));
  const mmap = vmf.vma.mm.mmap_lock;
  const ret = yield* ops.fault(t, vmf);
  const retry = (ret & VM_FAULT_RETRY) !== 0;
  const extra = t.held.filter((h) => !before.has(h.lock));
  const stillMmap = t.holds(mmap);
  if (extra.length > 0 || (retry && stillMmap)) {
    const what = extra.length > 0 ? extra.map((h) => h.lock.name).join(', ') : mmap.name;
    t.k.report(t, {
      code: 'lock-held-on-return',
      handler: ops.name,
      held: heldInfo(t),
      rules: ['L14', 'I18'],
      message: `${ops.name} returned to the page-fault path with ${what} still held`,
    });
  }
  return ret;
}

/**
 * A user-space load/store at `page` of `vma`: through the PTE when present,
 * else a page fault (mmap_lock for read, `vm_ops->fault`) and another try.
 * Returns 0, or VM_FAULT_SIGBUS when the fault handler refused (or the
 * address is past the end of the VMA: a SIGSEGV, the same for the model).
 */
export const user_access = kfn('user_access', function* (t: Task, vma: Vma, page: number): KGen<number> {
  // do_user_addr_fault(): the first attempt may be retried, the next ones are FAULT_FLAG_TRIED.
  let flags = FAULT_FLAG_ALLOW_RETRY;
  for (;;) {
    yield tableStep(t.at('user_access', 'read', vma.slots[page] ?? vma), [vma], page, false);
    // Past vm_end there is no VMA (mremap, which changes the size, writes every slot and the VMA).
    if (page >= vma.pages) return VM_FAULT_SIGBUS;
    const pte = vma.ptes[page];
    if (pte) {
      kasan_check(t, pte, 'cpu');
      return 0;
    }
    const ret = yield* handle_mm_fault(t, vma, page, flags);
    if (ret & VM_FAULT_SIGBUS) return VM_FAULT_SIGBUS;
    if (ret & VM_FAULT_RETRY) flags |= FAULT_FLAG_TRIED;
  }
});

/** `handle_mm_fault()` with the mmap_lock taken and dropped around it. */
export const handle_mm_fault = kfn(
  'handle_mm_fault',
  function* (t: Task, vma: Vma, page: number, flags: number): KGen<number> {
    const mmap = vma.mm.mmap_lock;
    yield* lock_acquire(t, mmap, SHARED, 'mmap_read_lock');
    const ops = vma.vm_ops;
    if (!vma.live || !ops || page >= vma.pages) {
      // find_vma() found nothing: SIGSEGV.
      yield* lock_release(t, mmap, 'mmap_read_unlock');
      return VM_FAULT_SIGBUS;
    }
    const ret = yield* callFaultHandler(t, { vma, page, pgoff: vma.vm_pgoff + page, flags }, ops);
    if (!(ret & VM_FAULT_RETRY) && t.holds(mmap)) yield* lock_release(t, mmap, 'mmap_read_unlock');
    return ret;
  },
);
