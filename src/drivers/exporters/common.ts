/**
 * Pieces every built-in exporter shares: building and tearing down an
 * sg_table of DMA translations over a list of frames.
 */
import type { DmaBufAttachment } from '../../kernel/dma-buf.ts';
import { type DmaDataDirection, SgTable } from '../../kernel/dma-buf-ops.ts';
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
