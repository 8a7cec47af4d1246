/** Runs model code directly, without a scenario: one task alone, or several under the explorer. */
import { type DmaBuf, dma_buf_export } from '../../src/kernel/dma-buf.ts';
import { SgTable } from '../../src/kernel/dma-buf-ops.ts';
import { isErr } from '../../src/kernel/errno.ts';
import { Kernel } from '../../src/kernel/kernel.ts';
import type { KGen, Task } from '../../src/kernel/sched.ts';

/** Runs `body` in a fresh task to completion; throws if it blocks forever. */
export function solo<R>(body: (t: Task, k: Kernel) => KGen<R>, k = new Kernel()): { result: R; k: Kernel; t: Task } {
  const t = k.newTask('t0');
  const gen = body(t, k);
  let r = gen.next();
  while (!r.done) {
    const s = t.pending;
    if (s.blocker && !s.blocker.ready(t, s)) throw new Error(`blocked in ${s.fn} on ${s.obj?.name}`);
    k.step++;
    r = gen.next();
  }
  return { result: r.value, k, t };
}

/** Runs `body` in a task of `k` until it blocks or finishes; returns whether it finished. */
export function runUntilBlocked(t: Task, gen: KGen<unknown>): boolean {
  let r = gen.next();
  while (!r.done) {
    const s = t.pending;
    if (s.blocker && !s.blocker.ready(t, s)) return false;
    t.k.step++;
    r = gen.next();
  }
  return true;
}

/** A one-page buffer named `bo` whose exporter maps nothing and releases nothing. */
export function* exportBuf(t: Task): KGen<DmaBuf> {
  const b = yield* dma_buf_export(t, 'bo', {
    exp_name: 'test',
    pages: 1,
    priv: null,
    ops: {
      *map_dma_buf(_t, a, dir) {
        return new SgTable(a, dir, []);
      },
      *unmap_dma_buf() {},
      *release() {},
    },
  });
  if (isErr(b)) throw new Error('export failed');
  return b;
}
