/**
 * The `vfio-pci` exporter: MMIO BAR pages, never moved, revocable.
 *
 * - attach refuses importers that cannot take P2P memory or are not
 *   revocable (static importers always are refused) and any attach while
 *   revoked ([V2], [V4]);
 * - map_dma_buf and get_pfn return -ENODEV while revoked ([V2], [P5]);
 * - `revoke` takes memory_lock for write; per buffer `get_file_active` on
 *   its file (a buffer whose last reference is gone is skipped; option
 *   `file_ref: get_file` takes one anyway: a resurrection), then resv: sets
 *   revoked, invalidates every attachment, waits for BOOKKEEP fences,
 *   unlocks, waits up to 1 s (simulated clock) for importers to unmap — WARN
 *   on timeout —, zaps CPU mappings, fput; then the BAR stops decoding
 *   ([V3], [V5]);
 * - `unrevoke` re-enables the BAR and clears revoked;
 * - `close` (device close, `vfio_pci_dma_buf_cleanup`) revokes for good:
 *   vdev forgotten, buffer unlinked, nothing after it ([V3], [LT11]);
 * - `vfio_pci_dma_buf_iommufd_map()` is the private interconnect iommufd
 *   maps through instead of an sg_table ([V7]);
 * - CPU mmap faults under memory_lock (read) and give SIGBUS while revoked
 *   ([C4]).
 *
 * Models: drivers/vfio/pci/vfio_pci_dmabuf.c (2026, with the revoke series
 * and the faulting mmap variant), the RFC's vfio get_pfn (02/12)
 */
import { apiMisuse, assertHeldWrite } from '../../checkers/api.ts';
import { LOCK_CLASS, origin } from '../../checkers/lockdep.ts';
import {
  type DmaBuf,
  type DmaBufAttachment,
  dma_buf_attach_revocable,
  dma_buf_export,
  dma_buf_invalidate_mappings,
  dma_buf_put,
} from '../../kernel/dma-buf.ts';
import type { DmaBufOps, DmaDataDirection, PfnResult, SgTable } from '../../kernel/dma-buf-ops.ts';
import {
  DMA_RESV_USAGE_BOOKKEEP,
  dma_resv_assert_held,
  dma_resv_lock,
  dma_resv_unlock,
  dma_resv_wait_timeout,
} from '../../kernel/dma-resv.ts';
import { EINVAL, ENODEV, EOPNOTSUPP, isErr, type Result } from '../../kernel/errno.ts';
import { fput, get_file, get_file_active } from '../../kernel/file.ts';
import { type Kernel, msecs_to_jiffies } from '../../kernel/kernel.ts';
import { down_read, down_write, Lock, up_read, up_write } from '../../kernel/locking.ts';
import {
  unmap_mapping_range,
  VM_FAULT_SIGBUS,
  VM_PFNMAP_FLAGS,
  type Vma,
  type VmFault,
  type VmOperations,
  vma_link,
  vmf_insert_pfn,
} from '../../kernel/memory.ts';
import { type Frame, type PfnRef, pfnRef, staleMapping } from '../../kernel/page-alloc.ts';
import { type Blocker, type KGen, KObject, kfn, type Task } from '../../kernel/sched.ts';
import { timedWait } from '../../kernel/time.ts';
import { defineExporter } from '../driver.ts';
import { mapFrames, unmapFrames } from './common.ts';

/** `struct vfio_pci_core_device`, the parts the model needs. */
export class VfioPciDevice {
  readonly memory_lock: Lock;
  readonly dmabufs: DmaBuf[] = [];
  memory_enabled = true;
  /** The device fd was closed: no more config writes, so no revoke or unrevoke. Under memory_lock. */
  closed = false;
  /** How the revoke takes its reference on each buffer's file (option `file_ref`, [V5] 1). */
  file_ref: 'get_file_active' | 'get_file' = 'get_file_active';

  constructor(
    k: Kernel,
    readonly name: string,
    readonly bar: readonly Frame[],
  ) {
    this.memory_lock = new Lock(k, `${name}->memory_lock`, LOCK_CLASS.memory_lock, 'rwsem');
  }
}

/**
 * `struct vfio_pci_dma_buf`. `revoked` is written under memory_lock (write)
 * and resv and read under either; the attach op reads it without a lock, so
 * it is an object of its own for the explorer.
 */
export class VfioPciDmaBuf extends KObject {
  readonly type = 'vfio_pci_dma_buf';
  revoked = false;
  /** Live mappings (the revoke series' kref/completion). */
  mappings = 0;
  vdev: VfioPciDevice | null;
  /** The completion the revoke waits for: done when no importer mapping is left ([V5] 6). */
  readonly unmapped: Blocker = { ready: () => this.mappings === 0 };

  constructor(
    k: Kernel,
    name: string,
    vdev: VfioPciDevice,
    /** The BAR range the buffer exports (one range: [V7] needs exactly one). */
    readonly bar: readonly Frame[],
  ) {
    super(k, name);
    this.vdev = vdev;
  }

  override snapshot(): Record<string, unknown> {
    return { revoked: this.revoked, mappings: this.mappings, vdev: this.vdev?.name ?? null };
  }
}

/** Where on revoke the BAR stops decoding and the frames become inaccessible. */
function* barDisable(t: Task, vdev: VfioPciDevice): KGen {
  const s = t.at('vfio_pci_memory_disable', 'write', vdev.bar[0] as Frame);
  for (const f of vdev.bar) s.touch(f, 'write');
  yield s;
  if (!vdev.memory_enabled) return;
  vdev.memory_enabled = false;
  const at = origin(t);
  for (const f of vdev.bar) {
    for (const tr of f.translations) if (tr.state === 'live' && tr.gen === f.gen) staleMapping(t, tr, 'revoke');
    f.gen++;
    f.accessible = false;
    f.revoked = at;
  }
}

function* barEnable(t: Task, vdev: VfioPciDevice): KGen {
  const s = t.at('vfio_pci_memory_enable', 'write', vdev.bar[0] as Frame);
  for (const f of vdev.bar) s.touch(f, 'write');
  yield s;
  if (vdev.memory_enabled) return;
  vdev.memory_enabled = true;
  for (const f of vdev.bar) f.accessible = true;
}

/**
 * `vfio_pci_dma_buf_move(vdev, revoked)`, and with `cleanup` the permanent
 * `vfio_pci_dma_buf_cleanup(vdev)` of device close: every buffer is revoked
 * for good, `vdev` cleared and unlinked ([V3], [V5], [LT11]).
 * Locking: memory_lock held for write ([I26]).
 */
export const vfio_pci_dma_buf_move = kfn(
  'vfio_pci_dma_buf_move',
  function* (
    t: Task,
    vdev: VfioPciDevice,
    privOf: (b: DmaBuf) => VfioPciDmaBuf,
    revoked: boolean,
    cleanup = false,
  ): KGen {
    assertHeldWrite(t, vdev.memory_lock, cleanup ? 'vfio_pci_dma_buf_cleanup' : 'vfio_pci_dma_buf_move', ['I26', 'V3']);
    for (const buf of vdev.dmabufs.slice()) {
      const priv = privOf(buf);
      // get_file_active(): skip a buffer whose file is already being released
      // ([V5] 1). The file_ref: get_file variant takes the reference blindly.
      if (vdev.file_ref === 'get_file') yield* get_file(t, buf.file);
      else if (!(yield* get_file_active(t, buf.file))) continue;
      yield t.at('vfio_pci_dma_buf_move', 'read', priv);
      if (priv.revoked !== revoked) {
        yield* dma_resv_lock(t, buf.resv, null);
        yield t.at('vfio_pci_dma_buf_move', 'write', priv);
        priv.revoked = revoked;
        if (revoked) {
          yield* dma_buf_invalidate_mappings(t, buf);
          yield* dma_resv_wait_timeout(t, buf.resv, DMA_RESV_USAGE_BOOKKEEP, false);
        }
        yield* dma_resv_unlock(t, buf.resv);
        if (revoked) {
          // Drop the buffer's own kref and wait_for_completion_timeout(&priv->comp,
          // msecs_to_jiffies(1000)): importers that claimed to be revocable
          // must unmap within the bound ([V4], [V5] 6). The completion fires
          // when the mapping count reaches 0; the simulated clock passes the
          // second only when no other thread can run. On timeout the kernel
          // WARNs and the revoke goes on ([I24]).
          yield timedWait(
            t.at('wait_for_completion_timeout', 'wait', priv, priv.unmapped),
            t.k.jiffies + msecs_to_jiffies(1000),
          );
          if (priv.mappings > 0) {
            apiMisuse(
              t,
              'vfio_pci_dma_buf_move',
              `timed out waiting for importers to unmap ${buf.name}: ${priv.mappings} mapping(s) left after invalidate`,
              ['V4', 'V5', 'I24'],
            );
          }
          yield* unmap_mapping_range(t, buf.f_mapping);
        }
      }
      if (cleanup) {
        // The device is gone: the buffer stays revoked for ever and forgets it ([LT11]).
        yield t.at('vfio_pci_dma_buf_cleanup', 'write', priv);
        priv.vdev = null;
        const i = vdev.dmabufs.indexOf(buf);
        if (i >= 0) vdev.dmabufs.splice(i, 1);
      }
      // fput(): the final put would defer the release to task work; the
      // explorer's put is synchronous, so it runs after memory_lock is dropped.
      // (After a get_file, fput itself: a resurrected file's second __fput is
      // then not reported again.)
      if (vdev.file_ref === 'get_file') t.deferred.push((t) => fput(t, buf.file));
      else t.deferred.push((t) => dma_buf_put(t, buf));
    }
  },
);

/**
 * `vfio_pci_dma_buf_iommufd_map()`: the private interconnect iommufd uses
 * instead of an sg_table ([V7]): the buffer's one physical range. Locking:
 * resv held. -EOPNOTSUPP for a buffer vfio did not export or with more than
 * one range, -ENODEV when revoked. (Exported only to iommufd in the kernel.)
 */
export const vfio_pci_dma_buf_iommufd_map = kfn(
  'vfio_pci_dma_buf_iommufd_map',
  function* (t: Task, attach: DmaBufAttachment): KGen<Result<readonly PfnRef[]>> {
    const buf = attach.dmabuf;
    dma_resv_assert_held(t, buf.resv, 'vfio_pci_dma_buf_iommufd_map', ['V7', 'L3']);
    if (buf.exp_name !== 'vfio-pci' || !(buf.priv instanceof VfioPciDmaBuf)) return -EOPNOTSUPP;
    const priv = buf.priv;
    yield t.at('vfio_pci_dma_buf_iommufd_map', 'read', priv);
    if (priv.revoked) return -ENODEV;
    return priv.bar.map((f) => pfnRef(f));
  },
);

// Every generator function here is made once, not per buffer: a generator
// function made per buffer costs V8 a fresh prototype and object shape the
// first time it runs, in every execution.

const vfio_pci_dma_buf_mmap_fault = kfn(
  'vfio_pci_dma_buf_mmap_fault',
  function* (t: Task, vmf: VmFault, priv: VfioPciDmaBuf, vdev: VfioPciDevice): KGen<number> {
    const f = priv.bar[vmf.pgoff];
    if (!f) return VM_FAULT_SIGBUS;
    yield* down_read(t, vdev.memory_lock);
    if (priv.revoked) {
      yield* up_read(t, vdev.memory_lock);
      return VM_FAULT_SIGBUS;
    }
    const ret = yield* vmf_insert_pfn(t, vmf.vma, vmf.page, pfnRef(f));
    yield* up_read(t, vdev.memory_lock);
    return ret;
  },
);

/** Locking: resv not held; reads revoked without a lock ([V2], [V4]). */
function* vfio_pci_dma_buf_attach(t: Task, priv: VfioPciDmaBuf, attach: DmaBufAttachment): KGen<number> {
  if (!attach.peer2peer) return -EOPNOTSUPP;
  yield t.at('vfio_pci_dma_buf_attach', 'read', priv);
  if (priv.revoked) return -ENODEV;
  if (!dma_buf_attach_revocable(attach)) return -EOPNOTSUPP;
  return 0;
}

function* vfio_pci_dma_buf_map(
  t: Task,
  priv: VfioPciDmaBuf,
  attach: DmaBufAttachment,
  dir: DmaDataDirection,
): KGen<Result<SgTable>> {
  dma_resv_assert_held(t, attach.dmabuf.resv, 'vfio_pci_dma_buf_map', ['V2', 'L3']);
  if (priv.revoked) return -ENODEV;
  const sgt = yield* mapFrames(t, 'dma_buf_phys_vec_to_sgt', attach, priv.bar, dir);
  yield t.at('vfio_pci_dma_buf_map', 'write', priv);
  priv.mappings++;
  return sgt;
}

function* vfio_pci_dma_buf_unmap(t: Task, priv: VfioPciDmaBuf, sgt: SgTable): KGen {
  yield* unmapFrames(t, 'dma_buf_free_sgt', sgt);
  yield t.at('vfio_pci_dma_buf_unmap', 'write', priv);
  priv.mappings--;
}

/** Locking: resv not held; takes memory_lock for write to unlink ([V2]). */
function* vfio_pci_dma_buf_release(t: Task, priv: VfioPciDmaBuf, vdev: VfioPciDevice, dmabuf: DmaBuf): KGen {
  if (!priv.vdev) return;
  yield* down_write(t, vdev.memory_lock);
  const i = vdev.dmabufs.indexOf(dmabuf);
  if (i >= 0) vdev.dmabufs.splice(i, 1);
  priv.vdev = null;
  yield* up_write(t, vdev.memory_lock);
}

/** The 2026 faulting mmap: PTEs inserted under memory_lock, zapped on revoke ([C4]). */
function* vfio_pci_dma_buf_mmap(t: Task, fault: VmOperations['fault'], dmabuf: DmaBuf, vma: Vma): KGen<number> {
  // VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP, as for vfio's BAR mmap.
  vma.vm_flags |= VM_PFNMAP_FLAGS;
  vma.vm_ops = { name: 'vfio_pci_dma_buf_mmap_fault', fault };
  yield* vma_link(t, vma, dmabuf.f_mapping);
  return 0;
}

/** RFC 02/12: Locking: resv held; -ENODEV when revoked, -EINVAL past the end ([P5]). */
function* vfio_pci_dma_buf_get_pfn(
  t: Task,
  priv: VfioPciDmaBuf,
  attach: DmaBufAttachment,
  pgoff: number,
): KGen<Result<PfnResult>> {
  dma_resv_assert_held(t, attach.dmabuf.resv, 'vfio_pci_dma_buf_get_pfn', ['P5', 'L3']);
  if (priv.revoked) return -ENODEV;
  const f = priv.bar[pgoff];
  if (!f) return -EINVAL;
  return { pfn: pfnRef(f), max_order: 0 };
}

const vfio_pci_revoke = kfn(
  'vfio_pci_revoke',
  function* (t: Task, vdev: VfioPciDevice, privOf: (b: DmaBuf) => VfioPciDmaBuf): KGen {
    yield* down_write(t, vdev.memory_lock);
    if (!vdev.closed) {
      yield* vfio_pci_dma_buf_move(t, vdev, privOf, true);
      yield* barDisable(t, vdev);
    }
    yield* up_write(t, vdev.memory_lock);
  },
);

const vfio_pci_unrevoke = kfn(
  'vfio_pci_unrevoke',
  function* (t: Task, vdev: VfioPciDevice, privOf: (b: DmaBuf) => VfioPciDmaBuf): KGen {
    yield* down_write(t, vdev.memory_lock);
    if (!vdev.closed) {
      yield* barEnable(t, vdev);
      yield* vfio_pci_dma_buf_move(t, vdev, privOf, false);
    }
    yield* up_write(t, vdev.memory_lock);
  },
);

const vfio_pci_core_close_device = kfn(
  'vfio_pci_core_close_device',
  function* (t: Task, vdev: VfioPciDevice, privOf: (b: DmaBuf) => VfioPciDmaBuf): KGen {
    yield* down_write(t, vdev.memory_lock);
    if (!vdev.closed) {
      yield* vfio_pci_dma_buf_move(t, vdev, privOf, true, true);
      yield* barDisable(t, vdev);
      vdev.closed = true;
    }
    yield* up_write(t, vdev.memory_lock);
  },
);

export const vfioPci = defineExporter({
  name: 'vfio-pci',
  exportCall: 'vfio_pci_core_feature_dma_buf',
  summary: 'MMIO BAR ranges, never moved, revocable',
  options: {
    private_mmio: {
      type: 'boolean',
      default: false,
      late: true,
      doc: "the device is assigned to a confidential guest (TDISP / TDX Connect): its BAR is private MMIO, which only the guest's secure EPT may map; a CPU mmap, a host DMA mapping or a shared EPT entry of it is a private-mmio finding ([K8])",
    },
    file_ref: {
      type: 'enum',
      values: ['get_file_active', 'get_file'],
      default: 'get_file_active',
      late: true,
      doc: "how vfio_pci_dma_buf_move takes its reference on each buffer's file: get_file_active skips a buffer whose last reference is gone and whose release is pending ([V5] 1); get_file (the bug) takes one anyway, resurrecting the file (refcount)",
    },
  },
  ops: {
    revoke: { doc: 'revoke: memory_lock (write), resv, revoked = true, invalidate, wait, zap CPU mappings ([V5])' },
    unrevoke: { doc: 'undo a revoke: memory re-enabled, revoked = false (nothing after close)' },
    close: {
      doc: 'device close: vfio_pci_dma_buf_cleanup revokes every buffer for good and unlinks it from the device ([V3], [LT11])',
    },
  },
  *export(t, env) {
    const k = env.k;
    const index = [...k.physmem.pools.values()].filter((p) => p.kind === 'mmio').length;
    const pool = k.physmem.mmio(`${env.name}:BAR0`, 0xf0000 + index * 0x1000, env.pages);
    const bar = pool.frames.slice(0, env.pages);
    if (env.options.private_mmio === true) for (const f of bar) f.privateMmio = true;
    const vdev = new VfioPciDevice(k, `${env.name}:vdev`, bar);
    if (env.options.file_ref === 'get_file') vdev.file_ref = 'get_file';
    const priv = new VfioPciDmaBuf(k, `${env.name}:vfio_dma_buf`, vdev, bar);

    const fault = (t: Task, vmf: VmFault) => vfio_pci_dma_buf_mmap_fault(t, vmf, priv, vdev);

    const ops: DmaBufOps = {
      attach: (t, _dmabuf, attach) => vfio_pci_dma_buf_attach(t, priv, attach),
      map_dma_buf: (t, attach, dir) => vfio_pci_dma_buf_map(t, priv, attach, dir),
      unmap_dma_buf: (t, _attach, sgt) => vfio_pci_dma_buf_unmap(t, priv, sgt),
      release: (t, dmabuf) => vfio_pci_dma_buf_release(t, priv, vdev, dmabuf),
      mmap: (t, dmabuf, vma) => vfio_pci_dma_buf_mmap(t, fault, dmabuf, vma),
      get_pfn: (t, attach, pgoff) => vfio_pci_dma_buf_get_pfn(t, priv, attach, pgoff),
    };
    const buf = yield* dma_buf_export(t, env.name, {
      exp_name: 'vfio-pci',
      ops,
      pages: env.pages,
      priv,
      backing: () => bar,
    });
    if (isErr(buf)) return buf;
    // Under memory_lock (write) and resv: revoked = !memory_enabled; link into vdev ([V1]).
    yield* down_write(t, vdev.memory_lock);
    yield* dma_resv_lock(t, buf.resv, null);
    priv.revoked = !vdev.memory_enabled;
    vdev.dmabufs.push(buf);
    yield* dma_resv_unlock(t, buf.resv);
    yield* up_write(t, vdev.memory_lock);

    const privOf = () => priv;
    const revoke = (t: Task) => vfio_pci_revoke(t, vdev, privOf);
    const unrevoke = (t: Task) => vfio_pci_unrevoke(t, vdev, privOf);
    const close = (t: Task) => vfio_pci_core_close_device(t, vdev, privOf);
    return { buf, pool, ops: { revoke, unrevoke, close } };
  },
});
