/**
 * memfds: an anonymous shmem file — or a hugetlbfs one (`MFD_HUGETLB`),
 * whose folios are huge — with its page cache and its `F_SEAL_*` seals, as
 * `udmabuf` takes its pages from one.
 *
 * References ([I2]): every folio in the page cache holds one reference (the
 * page cache's); `memfd_pin_folios` adds a `FOLL_PIN` pin (a reference and a
 * pin count) per folio it pins; a struct-page PTE holds one more. Removing a
 * folio from the page cache (truncate, or the last close evicting the inode)
 * drops the page cache's reference; the folio is freed when the last
 * reference goes, so pinned pages outlive their file — they stay allocated
 * but are no longer the file's.
 *
 * Seals: `F_SEAL_SHRINK` refuses a truncate that shrinks the file, and
 * `F_SEAL_GROW` one that grows it (-EPERM); `F_SEAL_WRITE` and
 * `F_SEAL_FUTURE_WRITE` cannot be added while pages are pinned (-EBUSY,
 * `memfd_wait_for_pins`); `F_SEAL_SEAL` refuses further seals. Seals say
 * nothing about lifetime: closing the last file reference evicts the inode
 * and drops every page-cache reference whatever the seals.
 *
 * Every op is one step that writes the memfd and the frames whose references
 * it changes (and reads the pinned ones), so it is ordered against the
 * udmabuf's pins and unpins, which write the same frames.
 *
 * Simplifications: the memfd is never mapped by userspace itself (so a
 * truncate has no user PTEs of its own to zap), never written through
 * `write()`, and grows only in size (no page is allocated for the new part);
 * `memfd_wait_for_pins` does not wait (the kernel's bounded wait would end
 * the same way while the pins stay); a huge folio is never split, so a
 * hugetlbfs memfd is truncated in whole folios only (-EINVAL otherwise, as
 * hugetlbfs requires).
 *
 * Models: mm/memfd.c (memfd_create, memfd_add_seals, memfd_wait_for_pins),
 * mm/shmem.c (shmem_setattr, shmem_truncate_range, shmem_evict_inode),
 * fs/hugetlbfs/inode.c, mm/gup.c (memfd_pin_folios, unpin_folio)
 */
import { EBADF, EBUSY, EINVAL, EPERM } from './errno.ts';
import type { Kernel } from './kernel.ts';
import {
  type Frame,
  folioPages,
  fs_reclaim,
  type Gfp,
  hexPfn,
  might_alloc,
  type PagePool,
  put_page,
  takeContiguous,
  takeFrames,
} from './page-alloc.ts';
import { type KGen, KObject, type Step, type Task } from './sched.ts';

export const F_SEAL_SEAL = 0x0001;
export const F_SEAL_SHRINK = 0x0002;
export const F_SEAL_GROW = 0x0004;
export const F_SEAL_WRITE = 0x0008;
export const F_SEAL_FUTURE_WRITE = 0x0010;

const SEAL_NAMES: readonly [number, string][] = [
  [F_SEAL_SEAL, 'F_SEAL_SEAL'],
  [F_SEAL_SHRINK, 'F_SEAL_SHRINK'],
  [F_SEAL_GROW, 'F_SEAL_GROW'],
  [F_SEAL_WRITE, 'F_SEAL_WRITE'],
  [F_SEAL_FUTURE_WRITE, 'F_SEAL_FUTURE_WRITE'],
];

/** "F_SEAL_SHRINK|F_SEAL_WRITE" (or "0"). */
export function sealNames(seals: number): string {
  const names = SEAL_NAMES.filter(([bit]) => (seals & bit) !== 0).map(([, n]) => n);
  return names.length ? names.join('|') : '0';
}

/**
 * The memfd's inode: size, seals and page cache. A plain structure: while
 * only setup code uses it (userspace closed the memfd right after
 * `UDMABUF_CREATE`) it is nobody's shared state; a memfd userspace keeps
 * open is a {@link Memfd}, the shared object every op declares.
 */
export class MemfdInode {
  /** `F_SEAL_*` bits (`info->seals`). */
  seals = 0;
  /** `i_size`, in pages. */
  size: number;
  /** The page cache: the page at each index (a page of its folio), null once truncated. */
  readonly i_pages: (Frame | null)[];
  /** Open file references; 0 once the last `fput` evicted the inode. */
  f_count = 1;

  constructor(
    pages: readonly Frame[],
    /** hugetlbfs (`MFD_HUGETLB`): its folios are huge and it is truncated in whole folios. */
    readonly hugetlb: boolean,
  ) {
    this.i_pages = pages.slice();
    this.size = pages.length;
  }

  /** The folios (heads) in the page cache from page `from` on, each once. */
  folios(from = 0): Frame[] {
    const out: Frame[] = [];
    for (let i = from; i < this.i_pages.length; i++) {
      const head = this.i_pages[i]?.head;
      if (head && out[out.length - 1] !== head) out.push(head);
    }
    return out;
  }
}

/** A memfd userspace keeps open: its file, the shared object of every memfd op. */
export class Memfd extends KObject {
  readonly type = 'memfd';

  constructor(
    k: Kernel,
    name: string,
    readonly inode: MemfdInode,
  ) {
    super(k, name);
  }

  override snapshot(): Record<string, unknown> {
    const i = this.inode;
    return {
      size: i.size,
      seals: sealNames(i.seals),
      open: i.f_count > 0,
      pages: i.i_pages.map((f) => (f ? hexPfn(f.pfn) : null)),
    };
  }
}

/**
 * `memfd_create()` + `ftruncate()` + the first touch of every page: `pages`
 * pages of page cache, in folios of `2^order` pages (order > 0: a hugetlbfs
 * memfd, its huge folios physically contiguous), each folio holding the page
 * cache's reference. One allocation step, like `alloc_pages`.
 */
export function* memfd_create(
  t: Task,
  pool: PagePool,
  pages: number,
  order: number,
  owner: (i: number) => string,
  gfp: Gfp = 'GFP_KERNEL',
): KGen<MemfdInode> {
  might_alloc(t, gfp);
  if (gfp === 'GFP_KERNEL') yield* fs_reclaim(t);
  yield t.at(order > 0 ? 'alloc_hugetlb_folio' : 'alloc_pages', 'alloc', pool);
  const frames = order > 0 ? takeContiguous(t, pool, pages, owner, order) : takeFrames(t, pool, pages, owner);
  return new MemfdInode(frames, order > 0);
}

/** The step of a memfd op: writes the memfd, every page of `folios` and their pool's free list. */
function memfdStep(t: Task, fn: string, memfd: Memfd, folios: readonly Frame[]): Step {
  const s = t.at(fn, 'write', memfd);
  const first = folios[0];
  if (first) s.touch(first.pool, 'write');
  for (const f of folios) for (const p of folioPages(f)) s.touch(p, 'write');
  return s;
}

/** Removes pages `from`.. from the page cache, dropping each folio's page-cache reference (in a declared step). */
function truncate_inode_pages(t: Task, inode: MemfdInode, from: number): void {
  for (const head of inode.folios(from)) put_page(t, head, 'truncate_inode_pages_range');
  for (let i = from; i < inode.i_pages.length; i++) inode.i_pages[i] = null;
}

/**
 * `ftruncate(memfd, pages * PAGE_SIZE)` (`shmem_setattr` /
 * `hugetlbfs_setattr`). Locking: inode lock (one step). -EBADF once closed;
 * -EPERM for a shrink under `F_SEAL_SHRINK` or a growth under `F_SEAL_GROW`;
 * -EINVAL on hugetlbfs for a size that is not a whole number of folios.
 * Shrinking drops the page cache's reference on every folio past the new
 * size: pinned folios stay allocated, the others are freed.
 */
export function* memfd_truncate(t: Task, memfd: Memfd, pages: number): KGen<number> {
  const inode = memfd.inode;
  yield memfdStep(t, 'shmem_setattr', memfd, inode.folios(Math.max(0, pages)));
  if (inode.f_count === 0) return -EBADF;
  if (pages < 0) return -EINVAL;
  if (pages < inode.size && inode.seals & F_SEAL_SHRINK) return -EPERM;
  if (pages > inode.size && inode.seals & F_SEAL_GROW) return -EPERM;
  const span = 1 << (inode.i_pages[0]?.head.order ?? 0);
  if (inode.hugetlb && pages % span !== 0) return -EINVAL;
  if (pages < inode.size) truncate_inode_pages(t, inode, pages);
  inode.size = pages;
  return 0;
}

/**
 * `fcntl(memfd, F_ADD_SEALS, seals)` (`memfd_add_seals`). Locking: inode
 * lock for write (one step). -EBADF once closed; -EPERM under `F_SEAL_SEAL`;
 * `F_SEAL_WRITE` / `F_SEAL_FUTURE_WRITE` while a folio is pinned:
 * `memfd_wait_for_pins` gives -EBUSY — a pinned page can still be written by
 * whoever pinned it (a udmabuf's device or mapping).
 */
export function* memfd_add_seals(t: Task, memfd: Memfd, seals: number): KGen<number> {
  const inode = memfd.inode;
  const folios = inode.folios();
  const s = t.at('memfd_add_seals', 'write', memfd);
  for (const f of folios) s.touch(f, 'read');
  yield s;
  if (inode.f_count === 0) return -EBADF;
  if (inode.seals & F_SEAL_SEAL) return -EPERM;
  if (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE) && inode.folios().some((f) => f.pincount > 0)) return -EBUSY;
  inode.seals |= seals;
  return 0;
}

/**
 * The last `fput()` of the memfd: `shmem_evict_inode` truncates the whole
 * page cache, whatever the seals — each folio loses the page cache's
 * reference and is freed unless something else (a pin, a struct-page PTE)
 * still holds one. -EBADF when already closed.
 */
export function* memfd_close(t: Task, memfd: Memfd): KGen<number> {
  const inode = memfd.inode;
  yield memfdStep(t, 'shmem_evict_inode', memfd, inode.folios());
  if (inode.f_count === 0) return -EBADF;
  memfd_evict(t, inode);
  return 0;
}

/**
 * The last `fput` without a step of its own: setup code closing the memfd
 * right after `UDMABUF_CREATE`, or inside a step that declared the pages.
 */
export function memfd_evict(t: Task, inode: MemfdInode): void {
  if (inode.f_count === 0) return;
  inode.f_count = 0;
  truncate_inode_pages(t, inode, 0);
}

/** What `memfd_pin_folios` hands back for one page of the range: its folio and the page's offset in it. */
export interface PinnedPage {
  /** The folio (its head page). */
  readonly folio: Frame;
  /** The page's offset in the folio, in pages (`offsets[i] >> PAGE_SHIFT`). */
  readonly offset: number;
}

/**
 * `memfd_pin_folios(memfd, start, end)` for pages `[start, start + n)` of the
 * page cache (inside a step that declared writes of the pages): one
 * `FOLL_PIN | FOLL_LONGTERM` pin (a reference and a pin count) per folio,
 * and per page its folio and offset. -EINVAL past the end of the file (a
 * hole or a truncated page). `pin: false` records the folios without pinning
 * them (no kernel does; the `udmabuf` option `pin_folios: false` uses it to
 * show what the pins are for).
 */
export function memfd_pin_folios(
  inode: MemfdInode,
  start: number,
  n: number,
  pin = true,
): { pages: PinnedPage[]; pinned: Frame[] } | number {
  if (start < 0 || start + n > inode.size) return -EINVAL;
  const pages: PinnedPage[] = [];
  const pinned: Frame[] = [];
  for (let i = start; i < start + n; i++) {
    const page = inode.i_pages[i];
    if (!page) return -EINVAL;
    const folio = page.head;
    if (pin && pinned[pinned.length - 1] !== folio) {
      folio.refcount++;
      folio.pincount++;
      pinned.push(folio);
    }
    pages.push({ folio, offset: page.pfn - folio.pfn });
  }
  return { pages, pinned };
}

/** `unpin_folio()` (inside a step that declared writes of the folio and its pool). */
export function unpin_folio(t: Task, folio: Frame): void {
  if (folio.pincount > 0) folio.pincount--;
  put_page(t, folio, 'unpin_folio');
}
