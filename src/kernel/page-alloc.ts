/**
 * Physical memory: page frames (PFNs) in pools — system RAM, device VRAM and
 * MMIO BARs — with allocation generations.
 *
 * Every frame carries a generation that changes whenever the frame stops
 * backing what it backed (freed, or an MMIO BAR revoked). A translation
 * (SPTE, CPU PTE, DMA mapping) records the generation it was made for, so a
 * stale translation is detected exactly: its generation no longer matches
 * the frame's (the reference §10, [I1], [I2]).
 *
 * For the explorer every frame is a shared object: an access through a
 * translation reads it; installing or zapping a translation of it, freeing it
 * or revoking it writes it. A pool's free list is an object of its own, which
 * allocation and free write. (Allocation changes only what reports say about a
 * frame — its owner — never its generation, so it does not write the frame.)
 *
 * Models: mm/page_alloc.c (alloc_pages, __free_pages), the PCI BAR resources
 * of drivers/pci
 */
import type { Origin } from '../checkers/finding.ts';
import { lockMapAcquireWrite, lockMapRelease, lockMapTouch, origin } from '../checkers/lockdep.ts';
import type { Kernel, Shrinker } from './kernel.ts';
import { type KGen, KObject, type Step, type Task } from './sched.ts';

export type PoolKind = 'system' | 'vram' | 'mmio';

/** One life of a frame: allocated for `owner` at generation `gen`, maybe freed. */
export interface FrameLife {
  readonly gen: number;
  readonly owner: string;
  readonly allocated: Origin | null;
  freed: Origin | null;
}

/** A page frame (`struct page` for RAM; a BAR page for MMIO). */
export class Frame extends KObject {
  readonly type = 'page';
  gen = 0;
  state: 'free' | 'allocated' | 'mmio' = 'free';
  /** Lives by generation; `lives[g]` is the allocation made at generation g. */
  readonly lives: (FrameLife | undefined)[] = [];
  /** Translations currently installed that map this frame. */
  readonly translations: Translation[] = [];
  /** MMIO only: false between a completed revoke and the next unrevoke. */
  accessible = true;
  /** MMIO only: where the last revoke completed. */
  revoked: Origin | null = null;
  /**
   * MMIO only: private MMIO of a device assigned to a confidential guest
   * (TDISP): only the guest's secure EPT may map it ([K8]; memory.ts).
   */
  privateMmio = false;
  /**
   * `page->_refcount`, kept on the head of a folio (RAM only): 1 for the
   * allocation, plus one per reference (`get_page`, a page-cache entry, a
   * `FOLL_PIN` pin, a struct-page PTE). Only the paths that model references
   * use it ({@link put_page}: the folio is freed when it drops to 0); the
   * exporters that free their pages outright ignore it.
   */
  refcount = 0;
  /** `page->_mapcount + 1`, per page (a tail page of a folio has its own): struct-page PTEs mapping it. */
  mapcount = 0;
  /** `FOLL_PIN` pins, on the head (also counted in {@link refcount}). */
  pincount = 0;
  /** The head of the folio this page belongs to (itself for an order-0 page or a head). */
  head: Frame = this;
  /** The folio's order, on the head (0: one page). */
  order = 0;

  constructor(
    k: Kernel,
    readonly pool: PagePool,
    readonly pfn: number,
  ) {
    super(k, `pfn ${hexPfn(pfn)}`);
  }

  override snapshot(): Record<string, unknown> {
    return {
      pool: this.pool.name,
      state: this.state === 'mmio' ? (this.accessible ? 'mmio' : 'mmio-revoked') : this.state,
      gen: this.gen,
      owner: this.owner,
      mapped_by: this.translations.map((t) => `${t.importer} ${t.kind}${t.stale ? ' (stale)' : ''}`),
      ...(this.privateMmio ? { private: true } : {}),
    };
  }

  get owner(): string {
    if (this.state === 'mmio') return this.lives[0]?.owner ?? this.pool.name;
    return this.lives[this.gen]?.owner ?? this.lives[this.gen - 1]?.owner ?? '(never allocated)';
  }
}

/** A translation an importer installed: an SPTE, a CPU PTE or a DMA mapping. */
export class Translation {
  /** live: in use; invalidated: the importer promised not to use it; gone: torn down. */
  state: 'live' | 'invalidated' | 'gone' = 'live';
  /**
   * A struct-page PTE (`finish_fault` of a `vmf->page`, `vm_insert_page`):
   * it holds a reference on the folio and a mapcount on the page, dropped
   * when it is zapped. PFN mappings (VM_PFNMAP, `vmf_insert_pfn`) and DMA
   * mappings hold none.
   */
  refd = false;

  constructor(
    readonly kind: 'spte' | 'pte' | 'dma',
    /** The importer (or exporter address_space user) that owns it. */
    readonly importer: string,
    readonly buffer: string,
    readonly page: number,
    readonly frame: Frame,
    /** Generation of the frame when the PFN was obtained. */
    readonly gen: number,
    readonly made: Origin,
  ) {}

  get stale(): boolean {
    return this.gen !== this.frame.gen || !this.frame.accessible;
  }
}

/** A PFN as an exporter hands it out: the frame and the generation it is valid for. */
export interface PfnRef {
  readonly frame: Frame;
  readonly gen: number;
}

export function pfnRef(frame: Frame): PfnRef {
  return { frame, gen: frame.gen };
}

/** A pool of frames; the object is its free list. */
export class PagePool extends KObject {
  readonly type = 'page_pool';
  readonly frames: Frame[] = [];
  /** Freed frames, most recently freed last: reused first, like a per-cpu page list. */
  readonly freeList: Frame[] = [];

  constructor(
    private readonly k: Kernel,
    name: string,
    readonly kind: PoolKind,
    readonly basePfn: number,
  ) {
    super(k, name);
  }

  override snapshot(): Record<string, unknown> {
    return { kind: this.kind, frames: this.frames.length, free: this.freeList.map((f) => hexPfn(f.pfn)) };
  }

  frameAt(i: number): Frame {
    let f = this.frames[i];
    while (!f) {
      const n = new Frame(this.k, this, this.basePfn + this.frames.length);
      this.frames.push(n);
      f = this.frames[i];
    }
    return f;
  }
}

/**
 * All physical memory of the machine: the pools, and every translation made
 * (for reports). The explorer tracks frames and pools, not this object.
 */
export class PhysMem extends KObject {
  readonly type = 'physmem';
  readonly pools = new Map<string, PagePool>();
  /** Every translation ever installed in this execution (reports and teardown checks). */
  readonly translations: Translation[] = [];

  constructor(private readonly k: Kernel) {
    super(k, 'physmem');
    this.pool('system', 'system', 0x100000);
    this.pool('vram', 'vram', 0x800000);
  }

  pool(name: string, kind: PoolKind, basePfn: number): PagePool {
    let p = this.pools.get(name);
    if (!p) {
      p = new PagePool(this.k, name, kind, basePfn);
      this.pools.set(name, p);
    }
    return p;
  }

  /** A BAR of `pages` frames at `basePfn`: MMIO frames exist from the start. */
  mmio(name: string, basePfn: number, pages: number): PagePool {
    const p = this.pool(name, 'mmio', basePfn);
    for (let i = 0; i < pages; i++) {
      const f = p.frameAt(i);
      f.state = 'mmio';
      f.lives[0] = { gen: 0, owner: `${name} page ${i}`, allocated: null, freed: null };
    }
    return p;
  }

  override snapshot(): Record<string, unknown> {
    const frames: ReturnType<typeof frameSummary>[] = [];
    for (const p of this.pools.values()) for (const f of p.frames) frames.push(frameSummary(f));
    return { frames, translations: this.liveTranslations().map(translationSummary) };
  }

  /** The translations not yet torn down (live, invalidated or stale). */
  liveTranslations(): Translation[] {
    return this.translations.filter((t) => t.state !== 'gone');
  }
}

/** A frame as snapshots and traces show it. */
export function frameSummary(f: Frame) {
  return {
    pfn: hexPfn(f.pfn),
    pool: f.pool.name,
    state: f.state === 'mmio' ? (f.accessible ? 'mmio' : 'mmio-revoked') : f.state,
    gen: f.gen,
    owner: f.owner,
  };
}

/** A translation as snapshots and traces show it. */
export function translationSummary(t: Translation) {
  return {
    kind: t.kind,
    importer: t.importer,
    buffer: t.buffer,
    page: t.page,
    pfn: hexPfn(t.frame.pfn),
    gen: t.gen,
    state: t.state,
    stale: t.stale,
  };
}

export function hexPfn(pfn: number): string {
  return `0x${pfn.toString(16)}`;
}

/** Takes `n` frames from `pool` without a step (setup code, or inside a declared step). */
export function takeFrames(t: Task, pool: PagePool, n: number, owner: (i: number) => string): Frame[] {
  const out: Frame[] = [];
  for (let i = 0; i < n; i++) {
    let f = pool.freeList.pop();
    if (!f) f = pool.frameAt(pool.frames.length);
    f.state = 'allocated';
    f.refcount = 1;
    f.lives[f.gen] = { gen: f.gen, owner: owner(i), allocated: origin(t), freed: null };
    out.push(f);
  }
  return out;
}

/**
 * Takes `n` physically contiguous frames from `pool` (a CMA range, or the
 * pages of huge folios) without a step: fresh frames past the last one the
 * pool ever handed out, so they are contiguous whatever was freed before.
 * With `order` > 0 they form folios of `2^order` pages: the head carries the
 * folio's refcount (1) and order, the tail pages point at it.
 */
export function takeContiguous(t: Task, pool: PagePool, n: number, owner: (i: number) => string, order = 0): Frame[] {
  const out: Frame[] = [];
  const base = pool.frames.length;
  const span = 1 << order;
  for (let i = 0; i < n; i++) {
    const f = pool.frameAt(base + i);
    const head = pool.frameAt(base + i - (i % span));
    f.state = 'allocated';
    f.head = head;
    f.order = f === head ? order : 0;
    f.refcount = f === head ? 1 : 0;
    f.lives[f.gen] = { gen: f.gen, owner: owner(i), allocated: origin(t), freed: null };
    out.push(f);
  }
  return out;
}

/** Allocation flags that matter to the model: whether the allocation may block and recurse into reclaim. */
export type Gfp = 'GFP_KERNEL' | 'GFP_NOFS' | 'GFP_NOIO' | 'GFP_NOWAIT' | 'GFP_ATOMIC';

/**
 * `might_alloc()`: an allocation that may block may enter reclaim — for
 * lockdep it takes the `fs_reclaim` pseudo-lock ([L8] c); inside a fence
 * signalling critical section only GFP_ATOMIC / GFP_NOWAIT are allowed
 * ([L11] c, [I22]).
 */
export function might_alloc(t: Task, gfp: Gfp): void {
  if (gfp === 'GFP_ATOMIC' || gfp === 'GFP_NOWAIT') return;
  if (t.signalling > 0) {
    t.k.report(t, {
      code: 'wait-in-signalling',
      what: `${gfp} allocation`,
      rules: ['L11', 'I22'],
      message: `${gfp} allocation inside a dma_fence signalling critical section (only GFP_ATOMIC/GFP_NOWAIT may be used there)`,
    });
  }
  lockMapTouch(t, t.k.lockdepMaps.fs_reclaim, 'might_alloc');
}

/** `alloc_pages()`: `n` frames from `pool`, most recently freed first. */
export function* alloc_pages(
  t: Task,
  pool: PagePool,
  n: number,
  owner: (i: number) => string,
  gfp: Gfp = 'GFP_KERNEL',
): KGen<Frame[]> {
  might_alloc(t, gfp);
  if (gfp === 'GFP_KERNEL') yield* fs_reclaim(t);
  yield t.at('alloc_pages', 'alloc', pool);
  return takeFrames(t, pool, n, owner);
}

/**
 * Direct reclaim (`__alloc_pages_direct_reclaim` → `shrink_slab`): a
 * GFP_KERNEL allocation may run every registered shrinker in the allocating
 * thread, under the fs_reclaim lockdep map, so whatever a shrinker takes —
 * resv by trylock only ([L8] d), then the importers' invalidate callbacks and
 * their locks — is ordered after fs_reclaim, and a lock held across the
 * allocation that such a callback takes is a `lock-order` (or, in the same
 * thread, a `deadlock`) finding. GFP_NOWAIT / GFP_ATOMIC never reclaim, and
 * neither does an allocation inside reclaim (PF_MEMALLOC). Simplification:
 * reclaim always runs (the model has no memory pressure to decide it), and
 * only when some shrinker is registered; executions where it does not run at
 * some allocation are covered only by the scenario without the shrinker
 * (docs/architecture.md says so).
 */
export function register_shrinker(k: Kernel, s: Shrinker): void {
  k.shrinkers.push(s);
}

export function unregister_shrinker(k: Kernel, s: Shrinker): void {
  const i = k.shrinkers.indexOf(s);
  if (i >= 0) k.shrinkers.splice(i, 1);
}

export function* fs_reclaim(t: Task): KGen {
  const shrinkers = t.k.shrinkers;
  if (shrinkers.length === 0 || t.inReclaim) return;
  t.stack.push('fs_reclaim');
  const map = t.k.lockdepMaps.fs_reclaim;
  lockMapAcquireWrite(t, map);
  t.inReclaim = true;
  for (const s of shrinkers) yield* s.scan(t);
  t.inReclaim = false;
  lockMapRelease(t, map);
  t.stack.pop();
}

/**
 * Frees frames without a step (inside a step declared by {@link freeStep}).
 *  A live translation still mapping a freed frame is a
 * `stale-mapping` ([I1], [I2]).
 */
export function releaseFrames(t: Task, frames: readonly Frame[]): void {
  for (const f of frames) {
    for (const tr of f.translations) {
      if (tr.state === 'live' && tr.gen === f.gen) staleMapping(t, tr, 'free');
    }
    const life = f.lives[f.gen];
    if (life) life.freed = origin(t);
    f.gen++;
    f.state = 'free';
    f.refcount = 0;
    f.mapcount = 0;
    f.pincount = 0;
    f.head = f;
    f.order = 0;
    f.pool.freeList.push(f);
  }
}

/** `folio_page(folio, n)`: the n-th page of the folio `head` heads (`folio_pfn(folio) + n`). */
export function folio_page(head: Frame, n: number): Frame {
  return head.pool.frameAt(head.pfn + n - head.pool.basePfn);
}

/** The pages of the folio `head` heads (the frames that follow it in its pool). */
export function folioPages(head: Frame): Frame[] {
  const n = 1 << head.order;
  const i = head.pfn - head.pool.basePfn;
  const out: Frame[] = [];
  for (let j = 0; j < n; j++) out.push(head.pool.frameAt(i + j));
  return out;
}

/**
 * `get_page()` / `folio_get()`: one more reference on the page's folio
 * (inside a step that declared a write of the page). A reference taken on a
 * page already freed is not counted: whoever uses it is reported by KASAN or
 * the stale-mapping check.
 */
export function get_page(f: Frame): void {
  if (f.state === 'allocated') f.head.refcount++;
}

/**
 * `put_page()` / `folio_put()`: drops a reference on the page's folio; the
 * last one frees every page of the folio (inside a step that declared a
 * write of the pages and of their pool's free list, e.g. {@link freeStep}).
 * A put with no reference left is a `refcount` underflow ([I2]).
 */
export function put_page(t: Task, f: Frame, call = 'put_page'): void {
  const head = f.head;
  if (head.state !== 'allocated') return;
  if (head.refcount <= 0) {
    t.k.report(t, {
      code: 'refcount',
      what: 'underflow',
      object: `pfn ${hexPfn(head.pfn)} (${head.owner})`,
      released: head.lives[head.gen]?.freed ?? null,
      rules: ['I2'],
      message: `${call}: the refcount of pfn ${hexPfn(head.pfn)} (${head.owner}) is already 0`,
    });
    return;
  }
  head.refcount--;
  if (head.refcount === 0) releaseFrames(t, folioPages(head));
}

/** Declares a step that frees `frames` (writes each and their pools' free lists). */
export function freeStep(t: Task, fn: string, frames: readonly Frame[]): Step {
  const first = frames[0];
  const s = t.at(fn, 'free', first ? first.pool : t.k.physmem);
  for (const f of frames) {
    if (f.pool !== first?.pool) s.touch(f.pool, 'write');
    s.touch(f, 'write');
  }
  return s;
}

/** `__free_pages()`. */
export function* free_pages(t: Task, frames: readonly Frame[]): KGen {
  yield freeStep(t, '__free_pages', frames);
  releaseFrames(t, frames);
}

export function staleMapping(t: Task, tr: Translation, event: 'free' | 'revoke' | 'install'): void {
  const f = tr.frame;
  const what =
    event === 'free'
      ? `frees pfn ${hexPfn(f.pfn)}`
      : event === 'revoke'
        ? `revokes pfn ${hexPfn(f.pfn)}`
        : `installs a ${tr.kind} for pfn ${hexPfn(f.pfn)}, which no longer backs ${tr.buffer}`;
  const still =
    event === 'install' ? '' : ` while ${tr.importer}'s ${tr.kind} for ${tr.buffer} page ${tr.page} still maps it`;
  t.k.report(t, {
    code: 'stale-mapping',
    event,
    translation: translationInfo(tr),
    frame: frameInfo(f, tr.gen),
    rules: f.pool.kind === 'mmio' ? ['I25', 'V5', 'I1'] : ['I1', 'I2', 'LT8'],
    message: `${t.name} ${what}${still}`,
  });
}

export function frameInfo(f: Frame, gen: number = f.gen) {
  const owner = f.state === 'mmio' ? f.owner : (f.lives[gen]?.owner ?? f.owner);
  return { pfn: f.pfn, pool: f.pool.name, owner };
}

export function translationInfo(tr: Translation) {
  return {
    kind: tr.kind,
    importer: tr.importer,
    buffer: tr.buffer,
    page: tr.page,
    pfn: tr.frame.pfn,
    made: tr.made,
  };
}
