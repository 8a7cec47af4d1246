/**
 * KVM's side of secondary-MMU invalidation: `struct kvm` with `mmu_lock`,
 * `mmu_invalidate_seq`, `mmu_invalidate_in_progress` and the invalidation
 * range, and the retry check a fault makes before installing an SPTE ([K3]).
 *
 * Explorer declarations: the invalidation state is its own object, because
 * the fault path snapshots `mmu_invalidate_seq` without holding mmu_lock.
 *
 * Models: virt/kvm/kvm_main.c (kvm_mmu_invalidate_begin/_range_add/_end),
 * include/linux/kvm_host.h (mmu_invalidate_retry_gfn)
 */
import { apiMisuse, assertHeld } from '../../checkers/api.ts';
import { LOCK_CLASS } from '../../checkers/lockdep.ts';
import type { Kernel } from '../kernel.ts';
import { Lock } from '../locking.ts';
import { tableSlots } from '../memory.ts';
import type { Translation } from '../page-alloc.ts';
import { type KGen, KObject, type Task } from '../sched.ts';
import { SrcuStruct } from '../srcu.ts';
import type { KvmGpcList } from './pfncache.ts';

export const INVALID_GPA = -1;

/** The mmu-invalidation state of a VM (protected by mmu_lock, read locklessly by faults). */
export class KvmMmuInvalidate extends KObject {
  readonly type = 'kvm_mmu_invalidate';
  seq = 0;
  inProgress = 0;
  rangeStart = INVALID_GPA;
  rangeEnd = INVALID_GPA;

  override snapshot(): Record<string, unknown> {
    return {
      mmu_invalidate_seq: this.seq,
      mmu_invalidate_in_progress: this.inProgress,
      range: this.rangeStart === INVALID_GPA ? null : [this.rangeStart, this.rangeEnd],
    };
  }
}

/** A memslot backed by a dma-buf (RFC 06/12, `KVM_MEM_VFIO_DMABUF`). */
export class KvmMemslots extends KObject {
  readonly type = 'kvm_memslots';
  /** False once deleted (or before it is created). */
  valid = false;

  constructor(
    k: Kernel,
    name: string,
    readonly baseGfn: number,
    readonly npages: number,
  ) {
    super(k, name);
  }

  override snapshot(): Record<string, unknown> {
    return { valid: this.valid, base_gfn: this.baseGfn, npages: this.npages };
  }
}

/** The SPTEs of the dma-buf memslot (the TDP MMU's page tables, for this model). */
export class KvmSptTable extends KObject {
  readonly type = 'kvm_spt';
  readonly entries: (Translation | null)[];
  readonly slots: readonly KObject[];

  constructor(k: Kernel, name: string, npages: number) {
    super(k, name);
    this.entries = new Array<Translation | null>(npages).fill(null);
    this.slots = tableSlots(k, name, npages);
  }

  override snapshot(): Record<string, unknown> {
    return {
      sptes: this.entries.map((e) => (e ? { pfn: `0x${e.frame.pfn.toString(16)}`, stale: e.stale } : null)),
    };
  }
}

/** `struct kvm`, the parts this model needs. */
export class Kvm {
  /** An rwlock: faults take it for read (TDP MMU), invalidation for write. */
  readonly mmu_lock: Lock;
  readonly mmu: KvmMmuInvalidate;
  readonly srcu: SrcuStruct;
  readonly memslots: KvmMemslots;
  /** The slot's SPTEs, by page: a shared object of its own. */
  readonly spt: KvmSptTable;
  /**
   * A confidential guest (TDX TD): its SPTEs for the slot are the secure EPT,
   * which may map private MMIO of a device assigned to it (TDISP, [K8]).
   */
  secureEpt = false;
  /**
   * `kvm->gpc_list` and `mn_active_invalidate_count` (pfncache.ts): made by
   * `kvm_gpc_list_init()` only for a VM that has gfn→pfn caches.
   */
  gpcs: KvmGpcList | null = null;

  constructor(
    k: Kernel,
    readonly name: string,
    npages: number,
  ) {
    this.mmu_lock = new Lock(k, `${name}->mmu_lock`, LOCK_CLASS.mmu_lock, 'rwlock');
    this.mmu = new KvmMmuInvalidate(k, `${name}->mmu_invalidate`);
    this.srcu = new SrcuStruct(k, `${name}->srcu`);
    this.memslots = new KvmMemslots(k, `${name}->memslots`, 0x100, npages);
    this.spt = new KvmSptTable(k, `${name}->spt`, npages);
  }

  gfn(page: number): number {
    return this.memslots.baseGfn + page;
  }
}

/** `kvm_mmu_invalidate_begin()`: mmu_lock held for write ([K3]). */
export function* kvm_mmu_invalidate_begin(t: Task, kvm: Kvm): KGen {
  yield t.at('kvm_mmu_invalidate_begin', 'write', kvm.mmu);
  assertHeld(t, kvm.mmu_lock, 'kvm_mmu_invalidate_begin', ['K3']);
  if (++kvm.mmu.inProgress === 1) {
    kvm.mmu.rangeStart = INVALID_GPA;
    kvm.mmu.rangeEnd = INVALID_GPA;
  }
}

/** `kvm_mmu_invalidate_range_add()`: widen the range ([K3]). Same step as begin's caller. */
export function kvm_mmu_invalidate_range_add(kvm: Kvm, start: number, end: number): void {
  const m = kvm.mmu;
  if (m.rangeStart === INVALID_GPA) {
    m.rangeStart = start;
    m.rangeEnd = end;
  } else {
    m.rangeStart = Math.min(m.rangeStart, start);
    m.rangeEnd = Math.max(m.rangeEnd, end);
  }
}

/** `kvm_mmu_invalidate_end()`: seq++, then in_progress-- ([K3]). */
export function* kvm_mmu_invalidate_end(t: Task, kvm: Kvm): KGen {
  yield t.at('kvm_mmu_invalidate_end', 'write', kvm.mmu);
  assertHeld(t, kvm.mmu_lock, 'kvm_mmu_invalidate_end', ['K3']);
  kvm.mmu.seq++;
  if (--kvm.mmu.inProgress < 0) {
    apiMisuse(t, 'kvm_mmu_invalidate_end', 'mmu_invalidate_in_progress went negative', ['K3']);
    kvm.mmu.inProgress = 0;
  }
}

/**
 * `mmu_invalidate_retry_gfn()`: true when an invalidation covering `gfn` is
 * in progress or one completed since `seq` was read ([K3]). Caller holds
 * mmu_lock and declared a read of the invalidation state.
 */
export function mmu_invalidate_retry_gfn(kvm: Kvm, seq: number, gfn: number): boolean {
  const m = kvm.mmu;
  if (m.inProgress > 0) {
    if (m.rangeStart === INVALID_GPA) return true;
    if (gfn >= m.rangeStart && gfn < m.rangeEnd) return true;
  }
  return m.seq !== seq;
}
