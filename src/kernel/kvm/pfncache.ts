/**
 * KVM's gfn→pfn cache (`struct gfn_to_pfn_cache`, "gpc"): a kernel mapping
 * (`khva`) of one guest page that KVM itself reads and writes — kvmclock's
 * pvclock page, Xen's shared_info / vcpu_info / runstate areas, steal time.
 * It is kept valid against invalidation with the same sequence protocol as
 * the fault path ([K3]), with one twist:
 *
 * - users: `read_lock(&gpc->lock)`; while `!kvm_gpc_check()`: unlock,
 *   `kvm_gpc_refresh()` (give up on error), re-lock; use `khva`; unlock. The
 *   mapping may only be used under the read lock, after a successful check;
 * - refresh (`gpc_to_pfn_retry`, under `refresh_lock` and `gpc->lock` for
 *   write): `valid = false`; loop { snapshot `mmu_invalidate_seq`; drop the
 *   lock; unmap the previous attempt; resolve the PFN (may sleep); map it
 *   (kmap / memremap, may sleep); re-take the lock } while
 *   `mmu_notifier_retry_cache()`; then `valid = true`;
 * - `mmu_notifier_retry_cache()` reads `mn_active_invalidate_count` and the
 *   seq **without mmu_lock**: the caches are invalidated before the
 *   invalidation takes mmu_lock, i.e. before `mmu_invalidate_in_progress`
 *   rises, so the count an invalidation raises before touching any cache —
 *   and drops only after bumping the seq — is what a refresh must see;
 * - invalidation (`gfn_to_pfn_cache_invalidate_start`): under `kvm->gpc_lock`,
 *   each active cache overlapping the range is marked invalid under
 *   `write_lock(&gpc->lock)`. The mapping itself stays until the next refresh
 *   or deactivation unmaps it — unused, since every user checks `valid`.
 *
 * Which invalidation drives the cache. In mainline the cache covers an hva
 * and the mmu-notifier start hook does count++, invalidate the caches,
 * then mmu_lock {begin, zap}; the end hook does mmu_lock {end: seq++}, then
 * count--. For a dma-buf memslot (RFC 06/12) there is no hva and no mmu
 * notifier: the cache must resolve the gfn through the dma-buf
 * (`gpc_to_pfn`, as the posted guest_memfd pfncache series does through
 * `kvm_gmem_get_pfn`) and be invalidated by the dma-buf invalidate callback,
 * with the same ordering (that series' guest_memfd invalidation raises the
 * same count). This module is the cache; the `kvm` importer
 * (drivers/importers/kvm.ts) is the dma-buf memslot that resolves and
 * invalidates it. A cache on an ordinary memslot whose hva is a CPU mmap of
 * the dma-buf runs the same steps in the same order, triggered by the
 * exporter's `unmap_mapping_range()` through the mmu notifier: it is not
 * modelled separately.
 *
 * Translations: `khva` is a kernel mapping of the frame, a translation of
 * kind `pte`. It is *live* only while the cache is valid and maps it; a
 * mapping made by a refresh that is not yet published, or one an
 * invalidation marked invalid, is *invalidated*: freeing or revoking its
 * frame is then not a finding (nobody may use it), while an access through it
 * still is checked by KASAN (`use-after-free` / `access-after-revoke`).
 * Publishing (`valid = true`) a mapping whose frame no longer backs the
 * buffer is a `stale-mapping` at install, as for an SPTE ([I2]).
 *
 * Simplifications: one page per cache (as the kernel's `len` check enforces);
 * a refresh always makes a fresh mapping (the kernel reuses the old `khva`
 * when the PFN did not change — a mapping of the same PFN); the memslot
 * generation check is folded into the invalidation a memslot deletion does
 * (the owner invalidates its caches when the slot goes, so `kvm_gpc_check`
 * tests `active && valid`); `mn_invalidate_lock` only makes the count's
 * read-modify-write atomic, so each update is one step on the count; no
 * `KVM_REQ_OUTSIDE_GUEST_MODE` (the cache is used by the host only) and no
 * rcuwait wake-up of a memslot update (nothing here waits for the count).
 *
 * Models: virt/kvm/pfncache.c, include/linux/kvm_types.h (struct
 * gfn_to_pfn_cache), virt/kvm/kvm_main.c (kvm_mmu_notifier_invalidate_range_start
 * / _end, mn_active_invalidate_count), arch/x86/kvm/x86.c
 * (kvm_setup_guest_pvclock)
 */
import { assertHeld, assertHeldWrite } from '../../checkers/api.ts';
import { kasan_check } from '../../checkers/kasan.ts';
import { origin } from '../../checkers/lockdep.ts';
import { EFAULT, EINVAL, isErr, type Result } from '../errno.ts';
import type { Kernel } from '../kernel.ts';
import {
  EXCLUSIVE,
  Lock,
  lock_acquire,
  lock_release,
  mutex_lock,
  mutex_unlock,
  write_lock,
  write_unlock,
} from '../locking.ts';
import { installTranslation, zapTranslation } from '../memory.ts';
import { hexPfn, type PfnRef, staleMapping, Translation } from '../page-alloc.ts';
import { type KGen, KObject, kfn, type Task } from '../sched.ts';
import { INVALID_GPA, type Kvm } from './kvm-main.ts';

/** Lockdep classes of the cache's locks. */
export const GPC_LOCK_CLASS = {
  gpc_lock: '&kvm->gpc_lock',
  lock: '&gpc->lock',
  refresh_lock: '&gpc->refresh_lock',
} as const;

/**
 * `kvm->mn_active_invalidate_count`: invalidations in progress that caches
 * must treat as such. Written under `mn_invalidate_lock`, read by refreshes
 * without any lock, so it is a shared object of its own.
 */
export class KvmMnActiveInvalidate extends KObject {
  readonly type = 'kvm_mn_active_invalidate';
  count = 0;

  override snapshot(): Record<string, unknown> {
    return { mn_active_invalidate_count: this.count };
  }
}

/** The caches of a VM: `kvm->gpc_list` under `kvm->gpc_lock`, and the count. */
export class KvmGpcList {
  readonly gpc_lock: Lock;
  /** Protected by gpc_lock. */
  readonly list: GfnToPfnCache[] = [];
  readonly mn: KvmMnActiveInvalidate;

  constructor(k: Kernel, kvm: Kvm) {
    this.gpc_lock = new Lock(k, `${kvm.name}->gpc_lock`, GPC_LOCK_CLASS.gpc_lock, 'spinlock');
    this.mn = new KvmMnActiveInvalidate(k, `${kvm.name}->mn_active_invalidate_count`);
  }
}

/**
 * Where a cache's PFN comes from: `gpc_to_pfn()`. Called with `refresh_lock`
 * held and `gpc->lock` dropped; may sleep and take other locks (resv). An
 * error (no memslot, the exporter refused) fails the refresh with -EFAULT.
 */
export interface GpcBacking {
  gpc_to_pfn(t: Task, gpc: GfnToPfnCache): KGen<Result<PfnRef>>;
}

/** `struct gfn_to_pfn_cache`. Fields are protected by `lock` (and written with `refresh_lock` held too). */
export class GfnToPfnCache extends KObject {
  readonly type = 'gfn_to_pfn_cache';
  readonly lock: Lock;
  readonly refresh_lock: Lock;
  active = false;
  valid = false;
  /** The cached gfn (`gpa >> PAGE_SHIFT`), INVALID_GPA before the first activate. */
  gfn = INVALID_GPA;
  /** Page of the memslot the gfn is (for reports: the buffer's page). */
  page = -1;
  pfn: PfnRef | null = null;
  /** The kernel mapping of `pfn` (kmap / memremap). */
  khva: Translation | null = null;
  /**
   * `mmu_notifier_retry_cache()` is checked before publishing; false is the
   * bug of a refresh that trusts the PFN it resolved.
   */
  retry = true;

  constructor(
    k: Kernel,
    readonly kvm: Kvm,
    name: string,
    /** What the cache maps, for reports (the dma-buf's name). */
    readonly buffer: string,
    readonly backing: GpcBacking,
  ) {
    super(k, name);
    this.lock = new Lock(k, `${name}->lock`, GPC_LOCK_CLASS.lock, 'rwlock');
    this.refresh_lock = new Lock(k, `${name}->refresh_lock`, GPC_LOCK_CLASS.refresh_lock, 'mutex');
  }

  override snapshot(): Record<string, unknown> {
    const m = this.khva;
    return {
      active: this.active,
      valid: this.valid,
      gfn: this.gfn === INVALID_GPA ? null : `0x${this.gfn.toString(16)}`,
      pfn: this.pfn ? hexPfn(this.pfn.frame.pfn) : null,
      khva: m ? { pfn: hexPfn(m.frame.pfn), stale: m.stale } : null,
    };
  }
}

/**
 * `kvm_create_vm()`'s part for the caches: `kvm->gpc_list`, `gpc_lock`,
 * `mn_invalidate_lock` and the count. Setup code (no step); idempotent.
 */
export function kvm_gpc_list_init(k: Kernel, kvm: Kvm): KvmGpcList {
  kvm.gpcs ??= new KvmGpcList(k, kvm);
  return kvm.gpcs;
}

/** `kvm_gpc_init()`: a cache of `kvm`, inactive. Setup code (no step). */
export function kvm_gpc_init(k: Kernel, kvm: Kvm, name: string, buffer: string, backing: GpcBacking): GfnToPfnCache {
  kvm_gpc_list_init(k, kvm);
  return new GfnToPfnCache(k, kvm, name, buffer, backing);
}

const spin_lock = (t: Task, l: Lock) => lock_acquire(t, l, EXCLUSIVE, 'spin_lock');
const spin_unlock = (t: Task, l: Lock) => lock_release(t, l, 'spin_unlock');

function gpcList(kvm: Kvm): KvmGpcList {
  const l = kvm.gpcs;
  if (!l) throw new Error(`${kvm.name}: kvm_gpc_list_init() was not called`);
  return l;
}

/**
 * `mmu_notifier_retry_cache()`: true when an invalidation is in progress
 * (`mn_active_invalidate_count`, not `mmu_invalidate_in_progress`: the
 * caches are invalidated before that rises) or one completed since `seq` was
 * read. Takes no lock: the caller declared reads of the count and of the
 * invalidation state.
 */
export function mmu_notifier_retry_cache(kvm: Kvm, seq: number): boolean {
  if (gpcList(kvm).mn.count > 0) return true;
  return kvm.mmu.seq !== seq;
}

/**
 * `kvm_gpc_check()`: whether the cache may be used now. Locking:
 * `gpc->lock` held (read or write) — the answer holds only while it is.
 */
export function kvm_gpc_check(t: Task, gpc: GfnToPfnCache): boolean {
  assertHeld(t, gpc.lock, 'kvm_gpc_check', ['K3']);
  return gpc.active && gpc.valid && gpc.khva !== null;
}

/** Marks the published mapping invalidated (in a step of `fn` that writes its frame). Caller holds `gpc->lock` for write. */
function* retireKhva(t: Task, gpc: GfnToPfnCache, fn: string): KGen {
  const m = gpc.khva;
  if (m?.state !== 'live') return;
  yield t.at(fn, 'write', m.frame).touch(gpc, 'write');
  m.state = 'invalidated';
}

/**
 * `gpc_map()`: `kmap()` of a RAM page, `memremap()` of anything else. The
 * mapping is not in use until the refresh publishes it, so it is made
 * invalidated; mapping a PFN that has meanwhile stopped backing the buffer is
 * harmless by itself (the retry check discards it).
 */
const gpc_map = kfn('gpc_map', function* (t: Task, gpc: GfnToPfnCache, ref: PfnRef): KGen<Translation> {
  const f = ref.frame;
  yield t.at(f.pool.kind === 'system' ? 'kmap' : 'memremap', 'write', f);
  let tr: Translation;
  if (ref.gen === f.gen && f.accessible) {
    // Fresh: the usual install checks (a host mapping of private MMIO, [K8]).
    tr = installTranslation(t, 'pte', gpc.name, gpc.buffer, gpc.page, ref);
  } else {
    tr = new Translation('pte', gpc.name, gpc.buffer, gpc.page, f, ref.gen, origin(t));
    f.translations.push(tr);
    t.k.physmem.translations.push(tr);
  }
  tr.state = 'invalidated';
  return tr;
});

/** `gpc_unmap()`: `kunmap()` / `memunmap()` of a mapping the cache no longer uses. */
const gpc_unmap = kfn('gpc_unmap', function* (t: Task, tr: Translation): KGen {
  yield t.at(tr.frame.pool.kind === 'system' ? 'kunmap' : 'memunmap', 'write', tr.frame);
  zapTranslation(tr);
});

/**
 * Publishes `tr` (`valid = true`, `pfn`, `khva`), inside a step that wrote
 * its frame. A PFN that no longer backs the buffer is a `stale-mapping` at
 * install ([I2], [K5]).
 */
function publish(t: Task, gpc: GfnToPfnCache, ref: PfnRef, tr: Translation): void {
  gpc.valid = true;
  gpc.pfn = ref;
  gpc.khva = tr;
  tr.state = 'live';
  if (tr.stale) staleMapping(t, tr, 'install');
}

/**
 * `gpc_to_pfn_retry()` (mainline `hva_to_pfn_retry()`): resolve and map
 * until no invalidation overlapped the attempt ([K3]). Locking: called and
 * returns with `refresh_lock` held and `gpc->lock` held for write; drops
 * `gpc->lock` around the resolution and the mapping. 0 or -EFAULT.
 */
const gpc_to_pfn_retry = kfn('gpc_to_pfn_retry', function* (t: Task, gpc: GfnToPfnCache): KGen<number> {
  const kvm = gpc.kvm;
  assertHeld(t, gpc.refresh_lock, 'gpc_to_pfn_retry', ['K3']);
  assertHeldWrite(t, gpc.lock, 'gpc_to_pfn_retry', ['K3']);
  // Invalid before the lock is dropped: a concurrent check must fail.
  yield* retireKhva(t, gpc, 'gpc_to_pfn_retry');
  gpc.valid = false;
  const mn = gpcList(kvm).mn;
  let attempt: Translation | null = null;
  for (;;) {
    // mmu_seq = kvm->mmu_invalidate_seq; smp_rmb();
    yield t.at('gpc_to_pfn_retry', 'read', kvm.mmu);
    const seq = kvm.mmu.seq;
    yield* write_unlock(t, gpc.lock);
    // The previous attempt lost to an invalidation: unmap it (may sleep).
    if (attempt) yield* gpc_unmap(t, attempt);
    attempt = null;
    const ref = yield* gpc.backing.gpc_to_pfn(t, gpc);
    if (isErr(ref)) {
      yield* write_lock(t, gpc.lock);
      return -EFAULT;
    }
    attempt = yield* gpc_map(t, gpc, ref);
    yield* write_lock(t, gpc.lock);
    if (!gpc.retry) {
      // The bug: publish without asking whether an invalidation overlapped.
      yield t.at('gpc_to_pfn_retry', 'write', attempt.frame).touch(gpc, 'write');
      publish(t, gpc, ref, attempt);
      return 0;
    }
    yield t
      .at('mmu_notifier_retry_cache', 'read', mn)
      .touch(kvm.mmu, 'read')
      .touch(attempt.frame, 'write')
      .touch(gpc, 'write');
    if (!mmu_notifier_retry_cache(kvm, seq)) {
      publish(t, gpc, ref, attempt);
      return 0;
    }
  }
});

/**
 * `__kvm_gpc_refresh()`: re-resolves when the cache is invalid or the gfn
 * changed; on failure the cache is left invalid with no PFN. Locking:
 * `refresh_lock` held; takes `gpc->lock` for write. The old mapping is
 * unmapped after the lock is dropped.
 */
const __kvm_gpc_refresh = kfn('__kvm_gpc_refresh', function* (t: Task, gpc: GfnToPfnCache, page: number): KGen<number> {
  assertHeld(t, gpc.refresh_lock, '__kvm_gpc_refresh', ['K3']);
  yield* write_lock(t, gpc.lock);
  if (!gpc.active) {
    yield* write_unlock(t, gpc.lock);
    return -EINVAL;
  }
  const old = gpc.khva;
  const gfn = gpc.kvm.gfn(page);
  const changed = gpc.gfn !== gfn;
  gpc.gfn = gfn;
  gpc.page = page;
  if (gpc.valid && !changed) {
    yield* write_unlock(t, gpc.lock);
    return 0;
  }
  const ret = yield* gpc_to_pfn_retry(t, gpc);
  if (ret) {
    gpc.valid = false;
    gpc.pfn = null;
    gpc.khva = null;
  }
  const unmapOld = old !== null && old !== gpc.khva;
  yield* write_unlock(t, gpc.lock);
  if (unmapOld && old) yield* gpc_unmap(t, old);
  return ret;
});

/** `kvm_gpc_refresh()`: serialised with other refreshes by `refresh_lock`. 0 or -errno. */
export const kvm_gpc_refresh = kfn('kvm_gpc_refresh', function* (t: Task, gpc: GfnToPfnCache): KGen<number> {
  yield* mutex_lock(t, gpc.refresh_lock);
  // Never activated: no gfn to refresh.
  const ret = gpc.gfn === INVALID_GPA ? -EINVAL : yield* __kvm_gpc_refresh(t, gpc, gpc.page);
  yield* mutex_unlock(t, gpc.refresh_lock);
  return ret;
});

/**
 * `kvm_gpc_activate()`: puts the cache on `kvm->gpc_list` *before* marking
 * it active (a refresh must not publish a mapping invalidations cannot
 * reach), then refreshes it for `page` of the memslot. 0 or -errno.
 */
export const kvm_gpc_activate = kfn(
  'kvm_gpc_activate',
  function* (t: Task, gpc: GfnToPfnCache, page: number): KGen<number> {
    const l = gpcList(gpc.kvm);
    yield* mutex_lock(t, gpc.refresh_lock);
    if (!gpc.active) {
      yield* spin_lock(t, l.gpc_lock);
      l.list.push(gpc);
      yield* spin_unlock(t, l.gpc_lock);
      yield* write_lock(t, gpc.lock);
      gpc.active = true;
      yield* write_unlock(t, gpc.lock);
    }
    const ret = yield* __kvm_gpc_refresh(t, gpc, page);
    yield* mutex_unlock(t, gpc.refresh_lock);
    return ret;
  },
);

/**
 * `kvm_gpc_deactivate()`: inactive and invalid first (under `gpc->lock`),
 * then off the list, then the mapping is unmapped.
 */
export const kvm_gpc_deactivate = kfn('kvm_gpc_deactivate', function* (t: Task, gpc: GfnToPfnCache): KGen {
  const l = gpcList(gpc.kvm);
  yield* mutex_lock(t, gpc.refresh_lock);
  if (gpc.active) {
    yield* write_lock(t, gpc.lock);
    yield* retireKhva(t, gpc, 'kvm_gpc_deactivate');
    gpc.active = false;
    gpc.valid = false;
    const old = gpc.khva;
    gpc.khva = null;
    gpc.pfn = null;
    yield* write_unlock(t, gpc.lock);
    yield* spin_lock(t, l.gpc_lock);
    const i = l.list.indexOf(gpc);
    if (i >= 0) l.list.splice(i, 1);
    yield* spin_unlock(t, l.gpc_lock);
    if (old) yield* gpc_unmap(t, old);
  }
  yield* mutex_unlock(t, gpc.refresh_lock);
});

/**
 * `gfn_to_pfn_cache_invalidate_start()`: every active cache whose gfn is in
 * `[start, end)` becomes invalid (its mapping is left for the next refresh
 * to unmap). Locking: takes `kvm->gpc_lock`, then each `gpc->lock` for
 * write; not mmu_lock. The caller must have raised
 * `mn_active_invalidate_count` first, and bump `mmu_invalidate_seq` before
 * dropping it ([K3]).
 */
export const gfn_to_pfn_cache_invalidate_start = kfn(
  'gfn_to_pfn_cache_invalidate_start',
  function* (t: Task, kvm: Kvm, start: number, end: number): KGen {
    const l = gpcList(kvm);
    yield* spin_lock(t, l.gpc_lock);
    for (const gpc of l.list) {
      yield* write_lock(t, gpc.lock);
      if (gpc.valid && gpc.gfn >= start && gpc.gfn < end) {
        yield* retireKhva(t, gpc, 'gfn_to_pfn_cache_invalidate_start');
        gpc.valid = false;
      }
      yield* write_unlock(t, gpc.lock);
    }
    yield* spin_unlock(t, l.gpc_lock);
  },
);

/**
 * `kvm->mn_active_invalidate_count++` under `mn_invalidate_lock`: before the
 * caches are invalidated ([K3]; kvm_mmu_notifier_invalidate_range_start).
 */
export const mn_active_invalidate_count_inc = kfn(
  'mn_active_invalidate_count_inc',
  function* (t: Task, kvm: Kvm): KGen {
    const mn = gpcList(kvm).mn;
    yield t.at('mn_active_invalidate_count_inc', 'write', mn);
    mn.count++;
  },
);

/**
 * `kvm->mn_active_invalidate_count--`: only after `kvm_mmu_invalidate_end()`
 * bumped the seq, so a refresh sees either the count or the new seq ([K3];
 * kvm_mmu_notifier_invalidate_range_end).
 */
export const mn_active_invalidate_count_dec = kfn(
  'mn_active_invalidate_count_dec',
  function* (t: Task, kvm: Kvm): KGen {
    const mn = gpcList(kvm).mn;
    yield t.at('mn_active_invalidate_count_dec', 'write', mn);
    if (mn.count > 0) mn.count--;
  },
);

/**
 * An access by the host through the cache's mapping `khva` (a write of the
 * pvclock page, the runstate area …), checked by KASAN. Locking: correct
 * users hold `gpc->lock` for read, after a successful `kvm_gpc_check()`, from
 * before they read `gpc->khva` until after this access; `fn` names the user
 * (what reports print).
 */
export function* gpc_access_khva(t: Task, khva: Translation, fn: string): KGen<boolean> {
  yield t.at(fn, 'read', khva.frame);
  return kasan_check(t, khva, 'cpu');
}
