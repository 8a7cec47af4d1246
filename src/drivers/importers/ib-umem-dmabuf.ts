/**
 * The `ib-umem-dmabuf` importer: an RDMA NIC's memory region (MR) on a
 * dma-buf (`ibv_reg_dmabuf_mr`), built on the ib_core umem_dmabuf layer
 * (`src/kernel/rdma/umem-dmabuf.ts`). The NIC translates MR pages through
 * the MR's MTT (its own translation table, programmed with UMR work
 * requests); the `dma` op is the NIC's access through it, checked by KASAN.
 *
 * `mode: odp` (default) — an ODP-capable NIC, mlx5 ([LT9], [L10], [LT7]):
 * - reg (`mlx5_ib_reg_user_mr_dmabuf`, at attach): `ib_umem_dmabuf_get` with
 *   `mlx5_ib_dmabuf_attach_ops`, store the mkey in the ODP xarray, then
 *   `mlx5_ib_init_dmabuf_mr` populates the MTT with a page fault;
 * - page fault (`pagefault_dmabuf_mr`, from the NIC's page-fault event when
 *   an MTT entry is missing, or the `page_fault` op): under the ODP SRCU,
 *   look the mkey up; lock resv; `ib_umem_dmabuf_map_pages` (map, wait for the
 *   KERNEL fences); program the MTT (`mlx5r_umr_update_mr_pas`); unlock;
 * - invalidate callback (`mlx5_ib_dmabuf_invalidate_cb`, resv held): if
 *   mapped and the MR is still there, zap the MTT, then
 *   `ib_umem_dmabuf_unmap_pages`. The NIC faults again on its next access;
 * - dereg (`mlx5_ib_dereg_mr`): erase the mkey from the ODP xarray and wait
 *   for running page faults (SRCU); `mlx5_revoke_mr` under resv: revoke the
 *   mkey (the NIC can no longer use the MTT) and clear
 *   `umem_dmabuf->private`, so a later callback does nothing (commit
 *   cc668a11e6ac, "RDMA/mlx5: Fix a race for DMABUF MR which can lead to CQE
 *   with error", 2025); then `ib_umem_dmabuf_release`.
 *
 * `mode: pinned` — `ib_umem_dmabuf_get_pinned`: pinned and mapped at reg, the
 * MTT programmed once; no invalidate callback, so vfio-pci refuses it ([V4])
 * and a TTM move gets -EBUSY. No faults: an access without an MTT entry fails.
 *
 * `mode: pinned_revocable` — irdma (rdma-next, March 2026):
 * `ib_umem_dmabuf_get_pinned_revocable_and_lock` returns with resv held; the
 * driver registers the MR (`irdma_hwreg_mr`, programs the MTT), installs its
 * revoke callback (`irdma_umem_dmabuf_revoke`: deregister the MR in hardware,
 * so no access remains when it returns) with
 * `ib_umem_dmabuf_set_revoke_locked`, and only then unlocks ([V4], [V6]).
 * dereg is `ib_umem_dmabuf_release`, which revokes once.
 *
 * Bugs the options make expressible:
 * - `mtt_lock: umem_mutex` (odp): the fault maps under resv, drops resv and
 *   programs the MTT under the MR's `umem_mutex` (the lock ODP MRs on user
 *   memory use), which the callback also takes to zap. Without a sequence
 *   re-check that mutex does not cover the window between map and program:
 *   the MTT is programmed with pages the callback already unmapped and a move
 *   freed (`stale-mapping`, then `use-after-free` on the NIC's access);
 * - `dereg_takes_resv: false` (odp): mlx5 before the fix: the mkey is revoked
 *   without resv and `private` is left set, so a concurrent invalidate issues
 *   a UMR on the released mkey: it completes with an error, mlx5 warns and
 *   the UMR QP enters the error state (`api-misuse` at
 *   `mlx5r_umr_post_send_wait`, [I7]);
 * - `wait_kernel_fence: false` (odp): the map does not wait for the KERNEL fences,
 *   so the NIC reads pages a pipelined move has not copied yet ([LT7]; an
 *   `api-misuse` at the access: the model tracks no memory contents);
 * - `set_revoke_before_unlock: false` (pinned_revocable): the driver drops
 *   resv before registering the MR and re-takes it to install the revoke
 *   callback; a revoke in between unmaps without zapping the MTT it then
 *   programs (`stale-mapping`, `access-after-revoke`).
 *
 * Simplifications: one MR per importer covering the whole buffer; the mkey
 * cache is not modelled (a revoked mkey is simply released); the ODP
 * xarray + `mlx5r_deref_wait_odp_mkey` is modelled as an SRCU grace period;
 * `umem_dmabuf->private` is set under resv by the first fault (the kernel
 * sets it just before, unlocked, while nothing is mapped yet).
 *
 * Models: drivers/infiniband/hw/mlx5/mr.c (mlx5_ib_reg_user_mr_dmabuf,
 * mlx5_ib_dmabuf_invalidate_cb, mlx5_revoke_mr, mlx5_ib_dereg_mr),
 * drivers/infiniband/hw/mlx5/odp.c (pagefault_dmabuf_mr,
 * mlx5_ib_init_dmabuf_mr), drivers/infiniband/hw/irdma/verbs.c
 * (irdma_reg_user_mr_dmabuf, irdma_umem_dmabuf_revoke, 2026)
 */
import { apiMisuse } from '../../checkers/api.ts';
import type { Origin } from '../../checkers/finding.ts';
import { kasan_check } from '../../checkers/kasan.ts';
import { origin } from '../../checkers/lockdep.ts';
import type { DmaBufAttachment } from '../../kernel/dma-buf.ts';
import type { DmaBufAttachOps } from '../../kernel/dma-buf-ops.ts';
import type { DmaFence } from '../../kernel/dma-fence.ts';
import { dma_resv_assert_held, dma_resv_lock, dma_resv_unlock } from '../../kernel/dma-resv.ts';
import { EFAULT, isErr } from '../../kernel/errno.ts';
import type { Kernel } from '../../kernel/kernel.ts';
import { Lock, mutex_lock, mutex_unlock } from '../../kernel/locking.ts';
import {
  installTranslation,
  invalidate_translations,
  type TranslationTable,
  tableSlots,
  tableStep,
  zapTranslation,
} from '../../kernel/memory.ts';
import { hexPfn, type PfnRef, type Translation } from '../../kernel/page-alloc.ts';
import {
  type IbUmemDmabuf,
  ib_umem_dmabuf_get,
  ib_umem_dmabuf_get_pinned,
  ib_umem_dmabuf_get_pinned_revocable_and_lock,
  ib_umem_dmabuf_map_pages,
  ib_umem_dmabuf_release,
  ib_umem_dmabuf_set_revoke_locked,
  ib_umem_dmabuf_unmap_pages,
} from '../../kernel/rdma/umem-dmabuf.ts';
import { type KGen, KObject, kfn, type Step, type Task } from '../../kernel/sched.ts';
import { SrcuStruct, srcu_read_lock, srcu_read_unlock, synchronize_srcu } from '../../kernel/srcu.ts';
import {
  defineImporter,
  type ImporterEnv,
  type ImporterInstance,
  type OpArgs,
  type OptionValues,
  PAGE_ARG,
} from '../driver.ts';

type Mode = 'odp' | 'pinned' | 'pinned_revocable';

interface IbMrOptions {
  readonly mode: Mode;
  readonly mttLock: 'resv' | 'umem_mutex';
  readonly deregTakesResv: boolean;
  readonly waitKernelFence: boolean;
  readonly setRevokeBeforeUnlock: boolean;
}

function ibMrOptions(o: OptionValues): IbMrOptions {
  return {
    mode: o.mode === 'pinned' || o.mode === 'pinned_revocable' ? o.mode : 'odp',
    mttLock: o.mtt_lock === 'umem_mutex' ? 'umem_mutex' : 'resv',
    deregTakesResv: o.dereg_takes_resv !== false,
    waitKernelFence: o.wait_kernel_fence !== false,
    setRevokeBeforeUnlock: o.set_revoke_before_unlock !== false,
  };
}

/**
 * The MR (`struct mlx5_ib_mr` / `struct irdma_mr`, the parts the model
 * needs): its mkey and the MTT the NIC translates MR pages through. The MR
 * object is what the mkey lookup, the UMR work requests and dereg touch; each
 * MTT entry is a shared object of its own (`slots`), which the NIC's accesses
 * read.
 */
export class IbMr extends KObject implements TranslationTable {
  readonly type = 'ib_mr';
  /** The MTT: one `dma` translation per MR page. */
  readonly entries: (Translation | null)[];
  readonly slots: readonly KObject[];
  /** The umem, from reg on. */
  umem: IbUmemDmabuf | null = null;
  /** The mkey is in the device's ODP xarray: page faults find it. */
  odpLookup = false;
  /** Registered and not yet deregistered (dereg runs once). */
  registered = false;
  /** Where `mlx5_revoke_mr` released the mkey (a UMR on it after that fails). */
  released: Origin | null = null;
  /** KERNEL fences the map the MTT was programmed from did not wait for (`wait_kernel_fence: false`). */
  unwaited: readonly DmaFence[] = [];
  /** `umem_odp->umem_mutex` (used with `mtt_lock: umem_mutex`). */
  readonly umem_mutex: Lock;

  constructor(
    k: Kernel,
    name: string,
    npages: number,
    /** Who owns the MTT entries in reports ("nic:mtt"). */
    readonly owner: string,
    readonly drv: IbUmemDmabufImporter,
  ) {
    super(k, `${name}:mr`);
    this.entries = new Array<Translation | null>(npages).fill(null);
    this.slots = tableSlots(k, `${name}:mtt`, npages);
    this.umem_mutex = new Lock(k, `${name}:umem_mutex`, 'ib_umem_odp->umem_mutex', 'mutex');
  }

  override snapshot(): Record<string, unknown> {
    return {
      registered: this.registered,
      mkey: this.released ? 'released' : this.registered ? 'live' : 'none',
      mtt: this.entries.map((e) => (e ? { pfn: hexPfn(e.frame.pfn), stale: e.stale } : null)),
    };
  }
}

/** Declares a write of the MR and every MTT entry (and the frames the entries and `refs` map). */
function mttStep(t: Task, fn: string, mr: IbMr, refs: readonly PfnRef[], reads: KObject | null = null): Step {
  const s = t.at(fn, 'write', mr);
  for (const r of refs) s.touch(r.frame, 'write');
  // Before tableStep: its refresh keeps what was declared before it.
  if (reads) s.touch(reads, 'read');
  return tableStep(s, [mr], -1, true);
}

/**
 * A UMR work request on an mkey `mlx5_revoke_mr` already released completes
 * with an error: mlx5 warns ("reg umr failed") and the UMR QP goes to the
 * error state; the mkey may already back another MR. True when the mkey is
 * live.
 */
function mkeyLive(t: Task, mr: IbMr, fn: string): boolean {
  if (!mr.released) return true;
  apiMisuse(
    t,
    'mlx5r_umr_post_send_wait',
    `${fn}: UMR on the mkey of ${mr.name}, which mlx5_revoke_mr already released (completion with error, the UMR QP enters the error state; the mkey may already back another MR)`,
    ['I7', 'L10'],
  );
  return false;
}

/**
 * Programs the MTT from the mapping's translations (`mlx5r_umr_update_mr_pas`
 * with ENABLE, or `irdma_hwreg_mr`). A PFN that no longer backs the buffer is
 * a `stale-mapping` at install.
 */
function* program_mtt(t: Task, fn: string, mr: IbMr, sg: readonly Translation[], unwaited: readonly DmaFence[]): KGen {
  t.stack.push(fn);
  yield mttStep(t, fn, mr, sg);
  if (mkeyLive(t, mr, fn)) {
    const buffer = mr.umem?.dmabuf.name ?? '?';
    for (let i = 0; i < mr.entries.length; i++) {
      const old = mr.entries[i];
      if (old) zapTranslation(old);
      const e = sg[i];
      mr.entries[i] = e ? installTranslation(t, 'dma', mr.owner, buffer, i, e) : null;
    }
    mr.unwaited = unwaited;
  }
  t.stack.pop();
}

/** Zaps every MTT entry (`mlx5r_umr_update_mr_pas` with ZAP, `irdma_hwdereg_mr`, the mkey revoke). */
function* zap_mtt(t: Task, fn: string, mr: IbMr, checkKey: boolean, reads: KObject | null = null): KGen {
  t.stack.push(fn);
  yield mttStep(t, fn, mr, [], reads);
  if (!checkKey || mkeyLive(t, mr, fn)) {
    for (let i = 0; i < mr.entries.length; i++) {
      const tr = mr.entries[i];
      if (tr) zapTranslation(tr);
      mr.entries[i] = null;
    }
    mr.unwaited = [];
  }
  t.stack.pop();
}

/**
 * `mlx5_ib_dmabuf_invalidate_cb()`: the MR's translations are stale. If
 * mapped and the MR is still there, zap the MTT (under `umem_mutex` with
 * `mtt_lock: umem_mutex`), then unmap ([LT9], [L10]). Locking: resv held by
 * the exporter. Made once for the module.
 */
const mlx5_ib_dmabuf_invalidate_cb = kfn(
  'mlx5_ib_dmabuf_invalidate_cb',
  function* (t: Task, attach: DmaBufAttachment): KGen {
    const umem = attach.importer_priv as IbUmemDmabuf;
    dma_resv_assert_held(t, attach.dmabuf.resv, 'mlx5_ib_dmabuf_invalidate_cb', ['L10']);
    const mr = umem.private as IbMr | null;
    if (!umem.sgt || !mr) return;
    const mutex = mr.drv.o.mttLock === 'umem_mutex';
    if (mutex) yield* mutex_lock(t, mr.umem_mutex);
    yield* zap_mtt(t, 'mlx5r_umr_update_mr_pas', mr, true);
    if (mutex) yield* mutex_unlock(t, mr.umem_mutex);
    yield* ib_umem_dmabuf_unmap_pages(t, umem);
  },
);

/** `mlx5_ib_dmabuf_attach_ops`: P2P-capable, with the invalidate callback. */
const mlx5_ib_dmabuf_attach_ops: DmaBufAttachOps = {
  allow_peer2peer: true,
  invalidate_mappings: mlx5_ib_dmabuf_invalidate_cb,
};

/**
 * `irdma_umem_dmabuf_revoke()`: the driver's revoke callback of a pinned
 * revocable umem: deregister the MR in hardware, so the NIC no longer reaches
 * the pages when it returns ([V6]). Locking: resv held (called from
 * `ib_umem_dmabuf_revoke_locked`).
 */
const irdma_umem_dmabuf_revoke = kfn('irdma_umem_dmabuf_revoke', function* (t: Task, priv: unknown): KGen {
  yield* zap_mtt(t, 'irdma_hwdereg_mr', priv as IbMr, false);
});

/**
 * `pagefault_dmabuf_mr()`: map and program the whole MR. With `mtt_lock:
 * resv` (mlx5) the MTT is programmed before resv is dropped; with
 * `umem_mutex` after, under the MR's umem_mutex. Returns 0 or -errno (a
 * revoked buffer: -ENODEV from the exporter, or -EINVAL once revoked).
 * Locking: resv not held; the ODP SRCU read side held by the caller.
 */
const pagefault_dmabuf_mr = kfn('pagefault_dmabuf_mr', function* (t: Task, mr: IbMr): KGen<number> {
  const umem = mr.umem as IbUmemDmabuf;
  const resv = umem.dmabuf.resv;
  const o = mr.drv.o;
  yield* dma_resv_lock(t, resv, null);
  // umem_dmabuf->private = mr (at reg in the kernel, before anything is mapped).
  umem.private = mr;
  const err = yield* ib_umem_dmabuf_map_pages(t, umem);
  const sg = umem.sgt?.entries ?? [];
  const unwaited = umem.unwaited;
  if (err === 0 && o.mttLock === 'resv') yield* program_mtt(t, 'mlx5r_umr_update_mr_pas', mr, sg, unwaited);
  yield* dma_resv_unlock(t, resv);
  if (err === 0 && o.mttLock === 'umem_mutex') {
    yield* mutex_lock(t, mr.umem_mutex);
    yield* program_mtt(t, 'mlx5r_umr_update_mr_pas', mr, sg, unwaited);
    yield* mutex_unlock(t, mr.umem_mutex);
  }
  return err;
});

export class IbUmemDmabufImporter implements ImporterInstance {
  readonly attachCall: string;
  readonly o: IbMrOptions;
  readonly mr: IbMr;
  /** `dev->odp_srcu`: page-fault handlers run inside it; dereg waits for them. */
  readonly odp_srcu: SrcuStruct;

  constructor(readonly env: ImporterEnv) {
    this.o = ibMrOptions(env.options);
    this.attachCall =
      this.o.mode === 'odp'
        ? 'ib_umem_dmabuf_get'
        : this.o.mode === 'pinned'
          ? 'ib_umem_dmabuf_get_pinned'
          : 'ib_umem_dmabuf_get_pinned_revocable_and_lock';
    this.mr = new IbMr(env.k, env.name, env.pages, `${env.name}:mtt`, this);
    this.odp_srcu = new SrcuStruct(env.k, `${env.name}:odp_srcu`);
  }

  /** `ibv_reg_dmabuf_mr` → the driver's reg_user_mr_dmabuf. 0 or -errno. */
  *attach(t: Task): KGen<number> {
    return yield* IbUmemDmabufImporter.reg(t, this);
  }

  *detach(t: Task): KGen {
    yield* IbUmemDmabufImporter.dereg(t, this);
  }

  *teardown(t: Task): KGen {
    yield* IbUmemDmabufImporter.dereg(t, this);
  }

  readonly ops = {
    dma: (t: Task, args: OpArgs) => IbUmemDmabufImporter.kops.dma(t, this, Number(args.page)),
    page_fault: (t: Task) => IbUmemDmabufImporter.kops.page_fault(t, this),
    dereg_mr: (t: Task) => IbUmemDmabufImporter.dereg(t, this),
  };

  /** The ops as kernel functions, made once for the class. */
  private static readonly kops = {
    dma: kfn('ib_mr_device_dma', (t: Task, self: IbUmemDmabufImporter, page: number) => self.access(t, page)),
    page_fault: kfn('mlx5_ib_eq_pf_action', (t: Task, self: IbUmemDmabufImporter) => self.pagefault(t)),
  };

  private static readonly reg = kfn(
    'ib_uverbs_reg_dmabuf_mr',
    (t: Task, self: IbUmemDmabufImporter): KGen<number> =>
      self.o.mode === 'pinned_revocable' ? self.irdmaReg(t) : self.mlx5Reg(t),
  );

  private static readonly dereg = kfn('ib_uverbs_dereg_mr', (t: Task, self: IbUmemDmabufImporter) =>
    self.o.mode === 'pinned_revocable' ? self.irdmaDereg(t) : self.mlx5Dereg(t),
  );

  /** `mlx5_ib_reg_user_mr_dmabuf()` (odp) or its pinned variant. */
  private *mlx5Reg(t: Task): KGen<number> {
    t.stack.push('mlx5_ib_reg_user_mr_dmabuf');
    const r = yield* this.mlx5RegBody(t);
    t.stack.pop();
    return r;
  }

  private *mlx5RegBody(t: Task): KGen<number> {
    const mr = this.mr;
    yield t.at('mlx5_ib_reg_user_mr_dmabuf', 'read', mr);
    if (mr.registered) return 0;
    const env = this.env;
    const odp = this.o.mode === 'odp';
    const umem = odp
      ? yield* ib_umem_dmabuf_get(t, env.name, env.buffer, mlx5_ib_dmabuf_attach_ops, env.name)
      : yield* this.getPinned(t);
    if (isErr(umem)) return umem;
    umem.waitKernelFence = this.o.waitKernelFence;
    // alloc_cacheable_mr + mlx5r_store_odp_mkey: the mkey exists and page faults find it.
    yield t.at('mlx5r_store_odp_mkey', 'write', mr);
    mr.umem = umem;
    mr.registered = true;
    mr.released = null;
    mr.odpLookup = odp;
    if (odp) {
      // mlx5_ib_init_dmabuf_mr: one page fault maps and programs every page.
      t.stack.push('mlx5_ib_init_dmabuf_mr');
      yield* pagefault_dmabuf_mr(t, mr);
      t.stack.pop();
    } else {
      yield* program_mtt(t, 'mlx5r_umr_update_mr_pas', mr, umem.sgt?.entries ?? [], umem.unwaited);
    }
    return 0;
  }

  private *getPinned(t: Task) {
    return yield* ib_umem_dmabuf_get_pinned(t, this.env.name, this.env.buffer, this.env.name);
  }

  /**
   * `irdma_reg_user_mr_dmabuf()` (2026): pinned, revocable, resv held from
   * the import until the revoke callback is installed ([V4]).
   */
  private *irdmaReg(t: Task): KGen<number> {
    t.stack.push('irdma_reg_user_mr_dmabuf');
    const r = yield* this.irdmaRegBody(t);
    t.stack.pop();
    return r;
  }

  private *irdmaRegBody(t: Task): KGen<number> {
    const mr = this.mr;
    yield t.at('irdma_reg_user_mr_dmabuf', 'read', mr);
    if (mr.registered) return 0;
    const env = this.env;
    const umem = yield* ib_umem_dmabuf_get_pinned_revocable_and_lock(t, env.name, env.buffer, env.name);
    if (isErr(umem)) return umem;
    umem.waitKernelFence = this.o.waitKernelFence;
    const resv = env.buffer.resv;
    const sg = umem.sgt?.entries ?? [];
    const unwaited = umem.unwaited;
    // The bug: resv dropped while the MR is built, so a revoke finds no revoke callback.
    if (!this.o.setRevokeBeforeUnlock) yield* dma_resv_unlock(t, resv);
    yield t.at('irdma_alloc_iwmr', 'write', mr);
    mr.umem = umem;
    mr.registered = true;
    mr.released = null;
    yield* program_mtt(t, 'irdma_hwreg_mr', mr, sg, unwaited);
    if (!this.o.setRevokeBeforeUnlock) yield* dma_resv_lock(t, resv, null);
    ib_umem_dmabuf_set_revoke_locked(t, umem, irdma_umem_dmabuf_revoke, mr);
    yield* dma_resv_unlock(t, resv);
    return 0;
  }

  /**
   * `mlx5_ib_dereg_mr()`: stop page faults (ODP xarray, SRCU), revoke the
   * mkey (`mlx5_revoke_mr`, under resv for an ODP dma-buf MR), release the
   * umem. Once only.
   */
  private *mlx5Dereg(t: Task): KGen {
    t.stack.push('mlx5_ib_dereg_mr');
    yield* this.mlx5DeregBody(t);
    t.stack.pop();
  }

  private *mlx5DeregBody(t: Task): KGen {
    const mr = this.mr;
    // xa_erase(&dev->odp_mkeys, mkey): no new page fault finds the MR.
    yield t.at('xa_erase', 'write', mr);
    if (!mr.registered) return;
    mr.registered = false;
    const odp = mr.odpLookup;
    mr.odpLookup = false;
    const umem = mr.umem as IbUmemDmabuf;
    // mlx5r_deref_wait_odp_mkey: running page faults finish first.
    if (odp) yield* synchronize_srcu(t, this.odp_srcu);
    yield* this.mlx5_revoke_mr(t, mr, umem, odp && this.o.deregTakesResv);
    yield* ib_umem_dmabuf_release(t, umem);
  }

  /**
   * `mlx5_revoke_mr()`: UMR-revoke the mkey; with `locked`, under resv and
   * clearing `private` ([L10]). From then on the NIC cannot reach the pages:
   * the umem's mapping, which a later invalidate callback leaves to release,
   * is in the wind-down window of [LT9] (ii) until it is unmapped.
   */
  private *mlx5_revoke_mr(t: Task, mr: IbMr, umem: IbUmemDmabuf, locked: boolean): KGen {
    t.stack.push('mlx5_revoke_mr');
    const resv = umem.dmabuf.resv;
    if (locked) yield* dma_resv_lock(t, resv, null);
    // Without resv, umem->sgt is read racing the invalidate callback's unmap:
    // the step declares the attachment that unmap writes.
    yield* zap_mtt(t, 'mlx5r_umr_revoke_mr', mr, false, locked ? null : umem.attach);
    mr.released = origin(t);
    const sgt = umem.sgt;
    if (sgt) yield* invalidate_translations(t, sgt.entries);
    if (locked) {
      umem.private = null;
      yield* dma_resv_unlock(t, resv);
    }
    t.stack.pop();
  }

  /** `irdma_dereg_mr()`: `ib_umem_release` revokes (the driver callback deregisters the MR), detaches, puts. */
  private *irdmaDereg(t: Task): KGen {
    t.stack.push('irdma_dereg_mr');
    const mr = this.mr;
    yield t.at('irdma_dereg_mr', 'write', mr);
    if (mr.registered) {
      mr.registered = false;
      yield* ib_umem_dmabuf_release(t, mr.umem as IbUmemDmabuf);
    }
    t.stack.pop();
  }

  /**
   * The NIC's page-fault event for the MR (`mlx5_ib_eq_pf_action` →
   * `pagefault_single_data_segment` → `pagefault_mr`): under the ODP SRCU,
   * find the mkey, then `pagefault_dmabuf_mr`. 0, or -errno when the MR is
   * gone (-EFAULT) or the buffer cannot be mapped. Only ODP MRs fault.
   */
  private *pagefault(t: Task): KGen<number> {
    if (this.o.mode !== 'odp') return -EFAULT;
    const mr = this.mr;
    const idx = yield* srcu_read_lock(t, this.odp_srcu);
    yield t.at('pagefault_single_data_segment', 'read', mr);
    const r = mr.odpLookup ? yield* pagefault_dmabuf_mr(t, mr) : -EFAULT;
    yield* srcu_read_unlock(t, this.odp_srcu, idx);
    return r;
  }

  /**
   * The NIC accesses MR page `page` through the MTT. A missing entry is an
   * ODP page fault, after which the access is retried; a failed fault (or a
   * pinned MR without the entry) fails the access with a completion error,
   * which is not a finding.
   */
  private *access(t: Task, page: number): KGen {
    for (;;) {
      const done = yield* this.mttAccess(t, page);
      if (done) return;
      if (this.o.mode !== 'odp') return;
      t.stack.push('mlx5_ib_eq_pf_action');
      const r = yield* this.pagefault(t);
      t.stack.pop();
      if (r < 0) return;
    }
  }

  /** One access through the MTT entry; false when there is none. */
  private *mttAccess(t: Task, page: number): KGen<boolean> {
    const mr = this.mr;
    const s = t.at('device_dma', 'read', mr.slots[page] ?? mr);
    // Without the KERNEL fence wait, whether the pages are up to date depends on every fence signal.
    if (!this.o.waitKernelFence) s.touch(t.k.fenceStates, 'read');
    yield tableStep(s, [mr], page, false);
    const tr = mr.entries[page];
    if (!tr) return false;
    if (kasan_check(t, tr, 'dma')) {
      let pending: DmaFence | null = null;
      for (const f of mr.unwaited) if (!f.signaled) pending ??= f;
      if (pending) {
        apiMisuse(
          t,
          'device_dma',
          `${mr.owner} accesses ${tr.buffer} page ${page} before KERNEL fence ${pending.name} signalled: ib_umem_dmabuf_map_pages did not wait for the exporter's move, so the page is not up to date`,
          ['LT7', 'R11'],
        );
      }
    }
    return true;
  }
}

export const ibUmemDmabuf = defineImporter({
  name: 'ib-umem-dmabuf',
  summary:
    "an RDMA NIC's memory region on a dma-buf (ib_umem_dmabuf): ODP (mlx5), pinned, or pinned and revocable (irdma)",
  options: {
    mode: {
      type: 'enum',
      values: ['odp', 'pinned', 'pinned_revocable'],
      default: 'odp',
      doc: 'odp: dynamic import, MTT zapped by the invalidate callback and refilled by page faults (mlx5); pinned: ib_umem_dmabuf_get_pinned, no invalidate callback (vfio-pci refuses it); pinned_revocable: ib_umem_dmabuf_get_pinned_revocable_and_lock with the driver revoke callback (irdma, 2026)',
    },
    mtt_lock: {
      type: 'enum',
      values: ['resv', 'umem_mutex'],
      default: 'resv',
      doc: "odp: what serialises the page fault's MTT update with the invalidate callback's zap: resv (mlx5: programmed before resv is dropped) or, wrongly, the MR's umem_mutex after resv was dropped",
    },
    dereg_takes_resv: {
      type: 'boolean',
      default: true,
      doc: 'odp: mlx5_revoke_mr revokes the mkey under resv and clears umem_dmabuf->private; false: without (before the 2025 fix), so a concurrent invalidate issues a UMR on the released mkey',
    },
    wait_kernel_fence: {
      type: 'boolean',
      default: true,
      doc: "odp: ib_umem_dmabuf_map_pages waits for the buffer's KERNEL fences after mapping ([LT7]); false: it does not, and the NIC may read pages a pipelined move has not copied yet",
    },
    set_revoke_before_unlock: {
      type: 'boolean',
      default: true,
      doc: 'pinned_revocable: the MR is registered and its revoke callback installed before resv is dropped; false: resv is dropped while the MR is built and re-taken to install the callback, so a revoke in between misses the MTT',
    },
  },
  ops: {
    dma: {
      doc: 'the NIC accesses a page of the MR through its MTT (an ODP MR page-faults when the entry is missing)',
      args: PAGE_ARG,
    },
    page_fault: {
      doc: 'an ODP page fault on the MR (pagefault_dmabuf_mr: map under resv, program the MTT); no effect on pinned MRs',
      args: { page: { type: 'page', doc: 'the faulting page (the whole MR is mapped)' } },
    },
    dereg_mr: { doc: 'ibv_dereg_mr: stop page faults, revoke the mkey, release the umem (same as detach)' },
  },
  checkOptions(o) {
    if (o.mode !== undefined && o.mode !== 'odp') {
      if (o.mtt_lock === 'umem_mutex') {
        return { option: 'mtt_lock', message: 'mtt_lock only applies to mode: odp (a pinned MR never faults)' };
      }
      if (o.dereg_takes_resv === false) {
        return { option: 'dereg_takes_resv', message: 'dereg_takes_resv only applies to mode: odp' };
      }
    }
    if (o.mode !== undefined && o.mode !== 'odp' && o.wait_kernel_fence === false) {
      return {
        option: 'wait_kernel_fence',
        message: 'wait_kernel_fence only applies to mode: odp (a pinned import waits for the move when it pins)',
      };
    }
    if (o.mode !== 'pinned_revocable' && o.set_revoke_before_unlock === false) {
      return {
        option: 'set_revoke_before_unlock',
        message: 'set_revoke_before_unlock only applies to mode: pinned_revocable',
      };
    }
    return null;
  },
  create: (env) => new IbUmemDmabufImporter(env),
});
