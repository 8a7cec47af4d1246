/**
 * The `kvm` importer: a faultable secondary MMU that maps a dma-buf into a
 * guest through get_pfn (RFC 06/12, "KVM: Support vfio_dmabuf backed MMIO
 * region"; [K1]–[K5]).
 *
 * - bind ([K1]): dma_buf_get, then `dma_buf_dynamic_attach` with an
 *   invalidate callback (or, `attach_mode: static`, `dma_buf_attach`: no
 *   callback at all, [K6] ii), then the memslot becomes valid;
 * - `access {page}`: the guest touches the page, through its SPTE or after a
 *   fault; `fault {page}`: only the fault;
 * - the fault ([K4]): srcu read lock; snapshot `mmu_invalidate_seq` (with
 *   `invalidate_retry`); resolve the PFN with `dma_buf_get_pfn_unlocked`, or
 *   with resv taken around `dma_buf_get_pfn` (`get_pfn: locked`, resv dropped
 *   before the install unless `hold_resv_across_install`); take mmu_lock;
 *   with `invalidate_retry`, retry if an invalidation ran since the snapshot;
 *   install the SPTE;
 * - invalidate ([K2]): mmu_lock for write, begin, zap the slot's SPTEs
 *   (unless `zap_on_invalidate: false`), end; with `invalidate_takes_resv`
 *   the callback first re-locks resv ([I15] — a self-deadlock);
 * - unbind / VM teardown: the memslot goes away (SRCU grace period), SPTEs
 *   are zapped, then detach and put ([K1]).
 *
 * Errors from get_pfn become -EIO for the guest access ([K4] 3), not findings.
 *
 * The gfn→pfn cache (option `pfn_cache`, *extension*; kernel/kvm/pfncache.ts):
 * a cache over one page of the dma-buf memslot, as KVM keeps for the
 * pvclock page or Xen's shared_info. Its refresh resolves the gfn through the
 * dma-buf (`gpc_to_pfn`: the memslot, then get_pfn as the fault does), and
 * the invalidate callback invalidates it the way the mmu-notifier hooks do:
 * `mn_active_invalidate_count++`, `gfn_to_pfn_cache_invalidate_start`, then
 * [K2] (whose end bumps the seq), then the count-- ([K3]). Ops:
 * `gpc_activate {page}`, `gpc_refresh`, `gpc_access` (the
 * `kvm_setup_guest_pvclock` pattern: check/refresh loop under
 * `read_lock(&gpc->lock)`, then a write through `khva`), `gpc_deactivate`.
 * Unbind invalidates the cache too (the memslot generation changes, so no
 * check passes), and VM teardown deactivates it first. The bugs, as values
 * of `pfn_cache`: `no_retry` (refresh publishes without
 * `mmu_notifier_retry_cache`), `no_invalidate` (the callback only zaps SPTEs:
 * the RFC's callback as posted), `uncounted` (the callback invalidates the
 * cache before the seq bump without raising the count); and `gpc_access
 * {drop_lock: true}` (the user writes through `khva` after dropping the
 * lock).
 *
 * Models: virt/kvm/vfio_dmabuf.c (RFC), arch/x86/kvm/mmu/mmu.c
 * (kvm_mmu_page_fault, kvm_faultin_pfn, is_page_fault_stale)
 */
import {
  type DmaBufAttachment,
  dma_buf_attach,
  dma_buf_detach,
  dma_buf_dynamic_attach,
  dma_buf_get_pfn,
  dma_buf_get_pfn_unlocked,
  dma_buf_put,
  get_dma_buf,
} from '../../kernel/dma-buf.ts';
import type { DmaBufAttachOps, PfnResult } from '../../kernel/dma-buf-ops.ts';
import { dma_resv_lock, dma_resv_unlock } from '../../kernel/dma-resv.ts';
import { EFAULT, EIO, isErr, type Result } from '../../kernel/errno.ts';
import {
  Kvm,
  kvm_mmu_invalidate_begin,
  kvm_mmu_invalidate_end,
  kvm_mmu_invalidate_range_add,
} from '../../kernel/kvm/kvm-main.ts';
import { guest_access, kvm_tdp_mmu_map, kvm_unmap_gfn_range } from '../../kernel/kvm/mmu.ts';
import {
  type GfnToPfnCache,
  type GpcBacking,
  gfn_to_pfn_cache_invalidate_start,
  gpc_access_khva,
  kvm_gpc_activate,
  kvm_gpc_check,
  kvm_gpc_deactivate,
  kvm_gpc_init,
  kvm_gpc_refresh,
  mn_active_invalidate_count_dec,
  mn_active_invalidate_count_inc,
} from '../../kernel/kvm/pfncache.ts';
import { read_lock, read_unlock, write_lock, write_unlock } from '../../kernel/locking.ts';
import { alloc_pages, type PfnRef } from '../../kernel/page-alloc.ts';
import { type KGen, kfn, type Task } from '../../kernel/sched.ts';
import { srcu_read_lock, srcu_read_unlock, synchronize_srcu } from '../../kernel/srcu.ts';
import {
  defineImporter,
  type ImporterEnv,
  type ImporterInstance,
  type OpArgs,
  type OptionValues,
  PAGE_ARG,
} from '../driver.ts';

/** RET_PF_RETRY: the vCPU re-enters the guest and faults again. */
const RET_PF_RETRY = 1;

interface KvmOptions {
  readonly getPfn: 'unlocked' | 'locked';
  readonly retry: boolean;
  readonly holdResv: boolean;
  readonly zap: boolean;
  readonly dynamic: boolean;
  readonly invalidateTakesResv: boolean;
  readonly secureEpt: boolean;
  readonly pageTableAlloc: 'none' | 'before_mmu_lock' | 'under_mmu_lock';
  readonly pfnCache: PfnCacheMode;
}

const PFN_CACHE_MODES = ['none', 'checked', 'no_retry', 'no_invalidate', 'uncounted'] as const;
type PfnCacheMode = (typeof PFN_CACHE_MODES)[number];
const GPC_OPS = ['gpc_activate', 'gpc_refresh', 'gpc_access', 'gpc_deactivate'];

function kvmOptions(o: OptionValues): KvmOptions {
  return {
    getPfn: o.get_pfn === 'locked' ? 'locked' : 'unlocked',
    retry: o.invalidate_retry !== false,
    holdResv: o.hold_resv_across_install === true,
    zap: o.zap_on_invalidate !== false,
    dynamic: o.attach_mode !== 'static',
    invalidateTakesResv: o.invalidate_takes_resv === true,
    secureEpt: o.secure_ept === true,
    pageTableAlloc:
      o.page_table_alloc === 'before_mmu_lock' || o.page_table_alloc === 'under_mmu_lock' ? o.page_table_alloc : 'none',
    pfnCache: PFN_CACHE_MODES.find((m) => m === o.pfn_cache) ?? 'none',
  };
}

class KvmImporter implements ImporterInstance, GpcBacking {
  readonly attachCall: string;
  readonly kvm: Kvm;
  readonly o: KvmOptions;
  att: DmaBufAttachment | null = null;
  readonly attachOps: DmaBufAttachOps;
  /** The gfn→pfn cache over a page of the slot (`pfn_cache` other than none). */
  readonly gpc: GfnToPfnCache | null = null;

  constructor(readonly env: ImporterEnv) {
    this.o = kvmOptions(env.options);
    this.attachCall = this.o.dynamic ? 'dma_buf_dynamic_attach' : 'dma_buf_attach';
    this.kvm = new Kvm(env.k, env.name, env.pages);
    this.kvm.secureEpt = this.o.secureEpt;
    this.attachOps = {
      allow_peer2peer: true,
      invalidate_mappings: (t: Task, a: DmaBufAttachment) => KvmImporter.invalidate_mappings(t, a, this),
    };
    if (this.o.pfnCache !== 'none') {
      this.gpc = kvm_gpc_init(env.k, this.kvm, `${env.name}:gpc`, env.buffer.name, this);
      this.gpc.retry = this.o.pfnCache !== 'no_retry';
    }
  }

  /**
   * [K2]: Locking: called with resv held by the exporter. Made once for the
   * class, not per importer: a generator function made per instance costs V8
   * a fresh prototype and object shape the first time it runs.
   */
  private static readonly invalidate_mappings = kfn(
    'kvm_vfio_dmabuf_invalidate',
    function* (t: Task, a: DmaBufAttachment, self: KvmImporter): KGen {
      const resv = a.dmabuf.resv;
      if (self.o.invalidateTakesResv) yield* dma_resv_lock(t, resv, null);
      const mode = self.o.pfnCache;
      const counted = mode === 'checked' || mode === 'no_retry';
      // As kvm_mmu_notifier_invalidate_range_start: count first, then the
      // caches, before mmu_lock ([K3]).
      if (counted) yield* mn_active_invalidate_count_inc(t, self.kvm);
      if (counted || mode === 'uncounted') yield* self.invalidateGpc(t);
      yield* self.invalidate(t);
      // As _range_end: the count drops only after kvm_mmu_invalidate_end bumped the seq.
      if (counted) yield* mn_active_invalidate_count_dec(t, self.kvm);
      if (self.o.invalidateTakesResv) yield* dma_resv_unlock(t, resv);
    },
  );

  /** begin / range_add / zap / end under mmu_lock held for write ([K2], [K3]). */
  private *invalidate(t: Task, zap = this.o.zap): KGen {
    const kvm = this.kvm;
    yield* write_lock(t, kvm.mmu_lock);
    yield* kvm_mmu_invalidate_begin(t, kvm);
    kvm_mmu_invalidate_range_add(kvm, kvm.gfn(0), kvm.gfn(kvm.spt.entries.length));
    if (zap) yield* kvm_unmap_gfn_range(t, kvm);
    yield* kvm_mmu_invalidate_end(t, kvm);
    yield* write_unlock(t, kvm.mmu_lock);
  }

  /** `gfn_to_pfn_cache_invalidate_start()` over the whole slot. */
  private *invalidateGpc(t: Task): KGen {
    const kvm = this.kvm;
    yield* gfn_to_pfn_cache_invalidate_start(t, kvm, kvm.gfn(0), kvm.gfn(kvm.spt.entries.length));
  }

  /**
   * `gpc_to_pfn()` for a gfn of the dma-buf memslot: find the slot, then the
   * PFN through get_pfn as the fault does ([K4] 3). Called with the cache's
   * refresh_lock held, its lock dropped, inside the caller's SRCU section.
   */
  gpc_to_pfn(t: Task, gpc: GfnToPfnCache): KGen<Result<PfnRef>> {
    return KvmImporter.gpc_to_pfn_fn(t, this, gpc.page);
  }

  private static readonly gpc_to_pfn_fn = kfn('gpc_to_pfn', function* (t: Task, self: KvmImporter, page: number): KGen<
    Result<PfnRef>
  > {
    yield t.at('__gfn_to_memslot', 'read', self.kvm.memslots);
    const a = self.kvm.memslots.valid ? self.att : null;
    if (!a) return -EFAULT;
    let pfn: Result<PfnResult>;
    if (self.o.getPfn === 'unlocked') {
      pfn = yield* dma_buf_get_pfn_unlocked(t, a, page);
    } else {
      yield* dma_resv_lock(t, a.dmabuf.resv, null);
      pfn = yield* dma_buf_get_pfn(t, a, page);
      yield* dma_resv_unlock(t, a.dmabuf.resv);
    }
    return isErr(pfn) ? pfn : pfn.pfn;
  });

  /** `kvm_vfio_dmabuf_bind()` ([K1]). */
  *attach(t: Task): KGen<number> {
    const buf = this.env.buffer;
    yield* get_dma_buf(t, buf);
    const a = this.o.dynamic
      ? yield* dma_buf_dynamic_attach(t, buf, this.env.name, this.attachOps, this, this.env.name)
      : yield* dma_buf_attach(t, buf, this.env.name, this.env.name);
    if (isErr(a)) {
      yield* dma_buf_put(t, buf);
      return a;
    }
    yield t.at('kvm_set_memslot', 'write', this.kvm.memslots);
    this.att = a;
    this.kvm.memslots.valid = true;
    return 0;
  }

  /** Memslot deletion, then `kvm_vfio_dmabuf_unbind()`: detach, put ([K1]). */
  *detach(t: Task): KGen {
    yield t.at('kvm_set_memslot', 'write', this.kvm.memslots);
    const a = this.att;
    if (!a) return;
    this.att = null;
    this.kvm.memslots.valid = false;
    yield* synchronize_srcu(t, this.kvm.srcu);
    // The memslot generation changed: no cache over the slot passes a check
    // again (pfncache.ts folds that into an invalidation).
    if (this.gpc) yield* this.invalidateGpc(t);
    // kvm_arch_flush_shadow_memslot: zap the slot's SPTEs.
    yield* this.invalidate(t, true);
    yield* dma_buf_detach(t, this.env.buffer, a);
    yield* dma_buf_put(t, this.env.buffer);
  }

  *teardown(t: Task): KGen {
    // The VM is destroyed: its caches are deactivated (kvm_xen_destroy_vm,
    // kvm_destroy_vcpus), its SPTEs go, then the slot is unbound.
    if (this.gpc) yield* kvm_gpc_deactivate(t, this.gpc);
    yield* write_lock(t, this.kvm.mmu_lock);
    yield* kvm_unmap_gfn_range(t, this.kvm);
    yield* write_unlock(t, this.kvm.mmu_lock);
    yield* this.detach(t);
  }

  readonly ops = {
    access: (t: Task, args: OpArgs) => KvmImporter.kops.access(t, this, args),
    fault: (t: Task, args: OpArgs) => KvmImporter.kops.fault(t, this, args),
    gpc_activate: (t: Task, args: OpArgs) => KvmImporter.kops.gpc_activate(t, this, args),
    gpc_refresh: (t: Task) => KvmImporter.kops.gpc_refresh(t, this),
    gpc_access: (t: Task, args: OpArgs) => KvmImporter.kops.gpc_access(t, this, args),
    gpc_deactivate: (t: Task) => KvmImporter.kops.gpc_deactivate(t, this),
  };

  /** The ops as kernel functions, made once for the class: made per instance, they would be made in every execution. */
  private static readonly kops = {
    access: kfn('kvm_vcpu_access', (t: Task, self: KvmImporter, args: OpArgs) =>
      self.access(t, Number(args.page), true),
    ),
    fault: kfn('kvm_vcpu_fault', (t: Task, self: KvmImporter, args: OpArgs) =>
      self.access(t, Number(args.page), false),
    ),
    /**
     * The guest enables kvmclock (MSR_KVM_SYSTEM_TIME): the vCPU's pv_time
     * cache is activated for the page, inside kvm->srcu.
     */
    gpc_activate: kfn('kvm_write_system_time', function* (t: Task, self: KvmImporter, args: OpArgs): KGen {
      if (!self.gpc) return;
      const idx = yield* srcu_read_lock(t, self.kvm.srcu);
      yield* kvm_gpc_activate(t, self.gpc, Number(args.page));
      yield* srcu_read_unlock(t, self.kvm.srcu, idx);
    }),
    gpc_refresh: (t: Task, self: KvmImporter) => gpcRefreshOp(t, self),
    gpc_access: kfn('kvm_setup_guest_pvclock', (t: Task, self: KvmImporter, args: OpArgs) =>
      self.gpcAccess(t, args.drop_lock === true),
    ),
    gpc_deactivate: (t: Task, self: KvmImporter) => gpcDeactivateOp(t, self),
  };

  /**
   * A host write through the cache, as `kvm_setup_guest_pvclock()` does
   * (vCPU context, inside kvm->srcu): `read_lock(&gpc->lock)`; while the
   * check fails, unlock, refresh (give up on error), re-lock; write through
   * `khva`; unlock ([K3]). `dropLock` is the bug of unlocking before the
   * write.
   */
  private *gpcAccess(t: Task, dropLock: boolean): KGen {
    const gpc = this.gpc;
    if (!gpc) return;
    const idx = yield* srcu_read_lock(t, this.kvm.srcu);
    yield* read_lock(t, gpc.lock);
    let locked = true;
    while (!kvm_gpc_check(t, gpc)) {
      yield* read_unlock(t, gpc.lock);
      locked = false;
      if ((yield* kvm_gpc_refresh(t, gpc)) !== 0) break;
      yield* read_lock(t, gpc.lock);
      locked = true;
    }
    if (locked) {
      const khva = gpc.khva;
      if (dropLock) yield* read_unlock(t, gpc.lock);
      if (khva) yield* gpc_access_khva(t, khva, 'kvm_setup_guest_pvclock');
      if (!dropLock) yield* read_unlock(t, gpc.lock);
    }
    yield* srcu_read_unlock(t, this.kvm.srcu, idx);
  }

  /**
   * The guest accesses `page` (`touch`), or only takes the fault: re-enters
   * until the access happens, the fault installs, or the fault fails (KVM_RUN
   * returns -EIO / -EFAULT: the access does not happen, no finding).
   */
  private *access(t: Task, page: number, touch: boolean): KGen {
    for (;;) {
      if (touch && (yield* guest_access(t, this.kvm, page))) return;
      const r = yield* this.kvm_mmu_page_fault(t, page);
      if (r < 0 || (!touch && r === 0)) return;
    }
  }

  /** One page-table page from system memory (GFP_KERNEL: direct reclaim may run). */
  private *allocPageTablePage(t: Task): KGen {
    const pool = t.k.physmem.pools.get('system');
    if (pool) yield* alloc_pages(t, pool, 1, (i) => `${this.env.name} page-table page ${i}`);
  }

  /** 0 installed, RET_PF_RETRY, or -errno. */
  private *kvm_mmu_page_fault(t: Task, page: number): KGen<number> {
    t.stack.push('kvm_mmu_page_fault');
    const kvm = this.kvm;
    const idx = yield* srcu_read_lock(t, kvm.srcu);
    yield t.at('kvm_faultin_pfn', 'read', kvm.memslots);
    const a = kvm.memslots.valid ? this.att : null;
    const r = a ? yield* this.faultinAndMap(t, a, page) : -EFAULT;
    yield* srcu_read_unlock(t, kvm.srcu, idx);
    t.stack.pop();
    return r;
  }

  private *faultinAndMap(t: Task, a: DmaBufAttachment, page: number): KGen<number> {
    const kvm = this.kvm;
    const o = this.o;
    let seq: number | null = null;
    if (o.retry) {
      // fault->mmu_seq = kvm->mmu_invalidate_seq; smp_rmb(); before the PFN ([K4] 1).
      yield t.at('kvm_faultin_pfn', 'read', kvm.mmu);
      seq = kvm.mmu.seq;
    }
    const resv = a.dmabuf.resv;
    let pfn: Result<PfnResult>;
    let holding = false;
    if (o.getPfn === 'unlocked') {
      pfn = yield* dma_buf_get_pfn_unlocked(t, a, page);
    } else {
      yield* dma_resv_lock(t, resv, null);
      pfn = yield* dma_buf_get_pfn(t, a, page);
      holding = true;
      if (!o.holdResv || isErr(pfn)) {
        yield* dma_resv_unlock(t, resv);
        holding = false;
      }
    }
    if (isErr(pfn)) return -EIO;
    // mmu_topup_memory_caches(): page-table pages are allocated (GFP_KERNEL, may
    // reclaim) before mmu_lock, because reclaim can run invalidate callbacks
    // that take mmu_lock; allocating under it is the bug the option models.
    if (o.pageTableAlloc === 'before_mmu_lock') yield* this.allocPageTablePage(t);
    yield* read_lock(t, kvm.mmu_lock);
    if (o.pageTableAlloc === 'under_mmu_lock') yield* this.allocPageTablePage(t);
    const installed = yield* kvm_tdp_mmu_map(t, kvm, this.env.name, a.dmabuf.name, page, pfn.pfn, seq);
    yield* read_unlock(t, kvm.mmu_lock);
    if (holding) yield* dma_resv_unlock(t, resv);
    return installed ? 0 : RET_PF_RETRY;
  }
}

/** An explicit `kvm_gpc_refresh()` (inside kvm->srcu, as every caller is). */
function* gpcRefreshOp(t: Task, self: KvmImporter): KGen {
  if (!self.gpc) return;
  const idx = yield* srcu_read_lock(t, self.kvm.srcu);
  yield* kvm_gpc_refresh(t, self.gpc);
  yield* srcu_read_unlock(t, self.kvm.srcu, idx);
}

function* gpcDeactivateOp(t: Task, self: KvmImporter): KGen {
  if (self.gpc) yield* kvm_gpc_deactivate(t, self.gpc);
}

export const kvm = defineImporter({
  name: 'kvm',
  summary: 'a faultable secondary MMU using get_pfn ([K1]-[K5])',
  options: {
    get_pfn: {
      type: 'enum',
      values: ['unlocked', 'locked'],
      default: 'unlocked',
      doc: 'dma_buf_get_pfn_unlocked, or resv taken around the locked dma_buf_get_pfn',
    },
    invalidate_retry: {
      type: 'boolean',
      default: true,
      doc: 'snapshot mmu_invalidate_seq before get_pfn and re-check it under mmu_lock',
    },
    hold_resv_across_install: {
      type: 'boolean',
      default: false,
      doc: 'keep resv held from get_pfn until the SPTE is installed (only with get_pfn: locked)',
    },
    zap_on_invalidate: { type: 'boolean', default: true, doc: 'the invalidate callback zaps the SPTEs' },
    attach_mode: {
      type: 'enum',
      values: ['dynamic', 'static'],
      default: 'dynamic',
      doc: 'static: dma_buf_attach, no invalidate callback ([K6] ii)',
    },
    invalidate_takes_resv: {
      type: 'boolean',
      default: false,
      doc: 'the invalidate callback re-locks resv ([I15])',
    },
    page_table_alloc: {
      type: 'enum',
      values: ['none', 'before_mmu_lock', 'under_mmu_lock'],
      default: 'none',
      late: true,
      doc: 'the fault allocates a page-table page (GFP_KERNEL, may run direct reclaim): before taking mmu_lock (mmu_topup_memory_caches) or, wrongly, under it; none: not modelled',
    },
    secure_ept: {
      type: 'boolean',
      default: false,
      late: true,
      doc: 'a confidential guest (TDX TD): the SPTEs are its secure EPT, the only host-side table that may map private MMIO ([K8])',
    },
    pfn_cache: {
      type: 'enum',
      values: PFN_CACHE_MODES,
      default: 'none',
      late: true,
      doc: 'a gfn→pfn cache over a page of the slot (the gpc_* ops): checked (the mmu-notifier protocol: count, invalidate the cache, zap, seq++, count--; refresh retries), no_retry (refresh publishes without mmu_notifier_retry_cache), no_invalidate (the invalidate callback leaves the cache valid), uncounted (the callback invalidates the cache before the seq bump without raising mn_active_invalidate_count); none: no cache ([K3])',
    },
  },
  ops: {
    access: { doc: 'the guest touches a page; faults it in through get_pfn when no SPTE maps it', args: PAGE_ARG },
    fault: { doc: 'a guest fault on a page (installs the SPTE, no access)', args: PAGE_ARG },
    gpc_activate: {
      doc: 'kvm_gpc_activate: put the gfn→pfn cache on the VM list, mark it active, refresh it for a page (needs pfn_cache)',
      args: PAGE_ARG,
    },
    gpc_refresh: { doc: 'kvm_gpc_refresh: re-resolve and re-map the cache if it is invalid (needs pfn_cache)' },
    gpc_access: {
      doc: 'kvm_setup_guest_pvclock: read_lock(gpc->lock), check/refresh loop, write through khva, unlock (needs pfn_cache)',
      args: {
        drop_lock: {
          type: 'boolean',
          default: false,
          doc: 'the bug: drop gpc->lock after the check, before the write',
        },
      },
    },
    gpc_deactivate: { doc: 'kvm_gpc_deactivate: inactive, off the list, unmapped (needs pfn_cache)' },
  },
  checkOptions(o) {
    if (o.hold_resv_across_install === true && o.get_pfn !== 'locked') {
      return {
        option: 'hold_resv_across_install',
        message: 'hold_resv_across_install: true needs get_pfn: locked (the unlocked call drops resv itself)',
      };
    }
    return null;
  },
  checkOp(o, op) {
    if (GPC_OPS.includes(op) && (o.pfn_cache ?? 'none') === 'none') {
      return `needs a gfn→pfn cache: set the option pfn_cache (checked, no_retry, no_invalidate or uncounted)`;
    }
    return null;
  },
  create: (env) => new KvmImporter(env),
});
