/**
 * The `udmabuf` exporter: a dma-buf made from the pages of a memfd
 * (`UDMABUF_CREATE`). The pages are pinned when the buffer is created
 * (memfd_pin_folios) and never move, so every mapping stays valid until
 * release; a static exporter (no pin/unpin).
 *
 * - map_dma_buf builds an sg_table of the memfd pages (`get_sg_table`);
 * - mmap installs `udmabuf_vm_ops`: the fault handler inserts the PFN of the
 *   memfd page (`udmabuf_vm_fault` → vmf_insert_pfn), with no lock — the
 *   pages never move ([C2] b, [C4] trivially);
 * - vmap (resv held) maps the pages with vm_map_ram, vunmap undoes it
 *   (`vmap_udmabuf` / `vunmap_udmabuf`, both dma_resv_assert_held, [C6]);
 * - begin_cpu_access (`begin_cpu_udmabuf`) maps the pages for the udmabuf
 *   misc device the first time (ubuf->sg) and syncs them for the CPU after
 *   that; end_cpu_access (`end_cpu_udmabuf`) syncs them for the device, or
 *   returns -EINVAL when no begin made ubuf->sg yet ([C7]). Neither takes a
 *   lock (ubuf->sg is an object of its own for the explorer);
 * - release puts ubuf->sg and unpins the pages.
 *
 * Simplifications: the memfd itself is not modelled. Its pages come from the
 * system pool at export and are freed at release, as when userspace closed
 * the memfd after UDMABUF_CREATE (the usual pattern: the udmabuf's pins are
 * then the last users). Cache maintenance has no effect in the model; the
 * fault maps one page (no pre-fault of the whole VMA); the size and seal
 * checks of UDMABUF_CREATE are not modelled.
 *
 * Models: drivers/dma-buf/udmabuf.c
 */
import { type DmaBuf, dma_buf_export } from '../../kernel/dma-buf.ts';
import type { DmaBufOps, IosysMap } from '../../kernel/dma-buf-ops.ts';
import { dma_resv_assert_held } from '../../kernel/dma-resv.ts';
import { EINVAL, isErr, type Result } from '../../kernel/errno.ts';
import type { Kernel } from '../../kernel/kernel.ts';
import {
  installTranslation,
  VM_FAULT_SIGBUS,
  type Vma,
  type VmFault,
  type VmOperations,
  vma_link,
  vmf_insert_pfn,
  zapTranslation,
} from '../../kernel/memory.ts';
import { alloc_pages, type Frame, freeStep, pfnRef, releaseFrames, type Translation } from '../../kernel/page-alloc.ts';
import { type KGen, KObject, kfn, type Task } from '../../kernel/sched.ts';
import { defineExporter } from '../driver.ts';
import { mapFrames, unmapFrames, vmapFrames, vunmapFrames } from './common.ts';

/** `struct udmabuf`: the part that changes after create (`sg`, written without a lock). */
export class Udmabuf extends KObject {
  readonly type = 'udmabuf';
  /** The misc device's mapping made by the first begin_cpu_access. */
  sg: Translation[] | null = null;
  syncs = 0;

  constructor(k: Kernel, name: string) {
    super(k, name);
  }

  override snapshot(): Record<string, unknown> {
    return { sg: this.sg !== null, syncs: this.syncs };
  }
}

/** What an exported udmabuf's ops work on. */
interface UdmabufState {
  readonly frames: Frame[];
  readonly ubuf: Udmabuf;
  /** The misc device that begin_cpu_access maps the pages for. */
  readonly device: string;
}

// The ops are generator functions made once, here, and not per export: a
// generator function made per buffer costs V8 a fresh prototype and object
// shape the first time it runs, in every execution.

const udmabuf_vm_fault = kfn(
  'udmabuf_vm_fault',
  function* (t: Task, vmf: VmFault, frames: readonly Frame[]): KGen<number> {
    const f = frames[vmf.pgoff];
    if (!f) return VM_FAULT_SIGBUS;
    return yield* vmf_insert_pfn(t, vmf.vma, vmf.page, pfnRef(f));
  },
);

/** `release_udmabuf`: put ubuf->sg, unpin (here: free) the memfd pages. */
function* release_udmabuf(t: Task, u: UdmabufState): KGen {
  const { frames, ubuf } = u;
  yield freeStep(t, 'release_udmabuf', frames).touch(ubuf, 'write');
  if (ubuf.sg) for (const tr of ubuf.sg) zapTranslation(tr);
  ubuf.sg = null;
  releaseFrames(t, frames);
}

/** `mmap_udmabuf`: a faulting mapping (udmabuf_vm_ops), linked into the buffer's address_space. */
function* mmap_udmabuf(t: Task, fault: VmOperations['fault'], dmabuf: DmaBuf, vma: Vma): KGen<number> {
  vma.vm_ops = { name: 'udmabuf_vm_fault', fault };
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

export const udmabuf = defineExporter({
  name: 'udmabuf',
  exportCall: 'udmabuf_create',
  summary: 'memfd pages pinned at UDMABUF_CREATE, never moved',
  options: {},
  ops: {},
  *export(t, env) {
    const pool = env.k.physmem.pools.get('system');
    if (!pool) throw new Error('no system pool');
    // udmabuf_create: memfd_pin_folios() for every page of the range.
    const frames = yield* alloc_pages(t, pool, env.pages, (i) => `${env.name} (udmabuf memfd) page ${i}`);
    const ubuf = new Udmabuf(env.k, `${env.name}:udmabuf`);
    const u: UdmabufState = { frames, ubuf, device: `${env.name}:udmabuf-misc` };
    const fault = (t: Task, vmf: VmFault) => udmabuf_vm_fault(t, vmf, frames);

    const ops: DmaBufOps = {
      map_dma_buf: (t, attach, dir) => mapFrames(t, 'map_udmabuf', attach, frames, dir),
      unmap_dma_buf: (t, _attach, sgt) => unmapFrames(t, 'unmap_udmabuf', sgt),
      release: (t) => release_udmabuf(t, u),
      mmap: (t, dmabuf, vma) => mmap_udmabuf(t, fault, dmabuf, vma),
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
    return { buf, pool, ops: {} };
  },
});
