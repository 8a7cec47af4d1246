/**
 * Pieces every built-in exporter shares: building and tearing down an
 * sg_table of DMA translations, or a kernel virtual mapping (vmap), over a
 * list of frames.
 */
import type { DmaBuf, DmaBufAttachment } from '../../kernel/dma-buf.ts';
import { type DmaDataDirection, IosysMap, SgTable } from '../../kernel/dma-buf-ops.ts';
import { installTranslation, zapTranslation } from '../../kernel/memory.ts';
import { type Frame, pfnRef } from '../../kernel/page-alloc.ts';
import type { KGen, Task } from '../../kernel/sched.ts';

/** Maps every frame for the attachment's device, in one step (fn names the exporter's function). */
export function* mapFrames(
  t: Task,
  fn: string,
  attach: DmaBufAttachment,
  frames: readonly Frame[],
  dir: DmaDataDirection,
): KGen<SgTable> {
  const s = t.at(fn, 'write', attach);
  for (const f of frames) s.touch(f, 'write');
  yield s;
  const entries = frames.map((f, i) => installTranslation(t, 'dma', attach.name, attach.dmabuf.name, i, pfnRef(f)));
  return new SgTable(attach, dir, entries);
}

/** Tears down every DMA translation of an sg_table, in one step. */
export function* unmapFrames(t: Task, fn: string, sgt: SgTable): KGen {
  const s = t.at(fn, 'write', sgt.attach);
  for (const tr of sgt.entries) s.touch(tr.frame, 'write');
  yield s;
  for (const tr of sgt.entries) zapTranslation(tr);
}

/** Who owns the kernel PTEs of a buffer's vmap (what reports name). */
export function vmapOwner(buf: DmaBuf): string {
  return `${buf.name}:vmap`;
}

/**
 * Maps every frame into the kernel's address space (`vmap` / `vm_map_ram`),
 * in one step writing each frame: one kernel PTE per page ([C6]).
 */
export function* vmapFrames(t: Task, fn: string, buf: DmaBuf, frames: readonly Frame[]): KGen<IosysMap> {
  const first = frames[0];
  const s = t.at(fn, 'write', first ?? buf);
  for (const f of frames) s.touch(f, 'write');
  yield s;
  const owner = vmapOwner(buf);
  return new IosysMap(
    buf.name,
    frames.map((f, i) => installTranslation(t, 'pte', owner, buf.name, i, pfnRef(f))),
  );
}

/** Removes every kernel PTE of a vmap (`vunmap` / `vm_unmap_ram`), in one step. */
export function* vunmapFrames(t: Task, fn: string, map: IosysMap): KGen {
  const first = map.vaddr[0];
  if (!first) return;
  const s = t.at(fn, 'write', first.frame);
  for (const tr of map.vaddr) s.touch(tr.frame, 'write');
  yield s;
  for (const tr of map.vaddr) zapTranslation(tr);
}
