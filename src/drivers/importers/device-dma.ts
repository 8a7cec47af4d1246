/**
 * A device's DMA to a page through a DMA translation (an sg_table entry):
 * the access KASAN checks ([I1], [I4]).
 */
import { kasan_check } from '../../checkers/kasan.ts';
import type { Translation } from '../../kernel/page-alloc.ts';
import type { KGen, Task } from '../../kernel/sched.ts';

export function* device_dma(t: Task, tr: Translation): KGen<boolean> {
  yield t.at('device_dma', 'read', tr.frame);
  return kasan_check(t, tr, 'dma');
}
