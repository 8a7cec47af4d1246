/** dma_fence basics ([F2], [F3], [F6], [L11]); the full st-dma-fence port is issue 3. */
import { describe, expect, it } from 'vitest';
import {
  type DmaFence,
  type DmaFenceCb,
  dma_fence_add_callback,
  dma_fence_begin_signalling,
  dma_fence_check_and_signal,
  dma_fence_get_status,
  dma_fence_init,
  dma_fence_remove_callback,
  dma_fence_set_error,
  dma_fence_signal,
  dma_fence_wait,
} from '../../src/kernel/dma-fence.ts';
import { EIO, ENOENT } from '../../src/kernel/errno.ts';
import { Kernel } from '../../src/kernel/kernel.ts';
import type { Task } from '../../src/kernel/sched.ts';
import { solo } from './harness.ts';

const ops = { driverName: 'test', timelineName: 'test' };
const fence = (t: Task): DmaFence => dma_fence_init(t, 'f', ops, t.k.fenceContextAlloc(), 1);

describe('dma_fence', () => {
  it('signals once: check_and_signal reports whether it was already signalled ([F2])', () => {
    const { result } = solo(function* (t) {
      const f = fence(t);
      const first = yield* dma_fence_check_and_signal(t, f);
      const second = yield* dma_fence_check_and_signal(t, f);
      return [first, second, f.signaled, f.timestamp !== null];
    });
    expect(result).toEqual([false, true, true, true]);
  });

  it('runs a queued callback on signal, and refuses a late one with -ENOENT ([F6])', () => {
    const { result } = solo(function* (t) {
      const f = fence(t);
      let ran = 0;
      const cb: DmaFenceCb = { func: null, queued: false };
      const r1 = yield* dma_fence_add_callback(t, f, cb, () => ran++);
      yield* dma_fence_signal(t, f);
      const late: DmaFenceCb = { func: null, queued: false };
      const r2 = yield* dma_fence_add_callback(t, f, late, () => ran++);
      yield* dma_fence_signal(t, f);
      return [r1, ran, r2];
    });
    expect(result).toEqual([0, 1, -ENOENT]);
  });

  it('a removed callback never runs; removing after signal returns false ([F6])', () => {
    const { result } = solo(function* (t) {
      const f = fence(t);
      let ran = 0;
      const cb: DmaFenceCb = { func: null, queued: false };
      yield* dma_fence_add_callback(t, f, cb, () => ran++);
      const removed = yield* dma_fence_remove_callback(t, f, cb);
      yield* dma_fence_signal(t, f);
      const again = yield* dma_fence_remove_callback(t, f, cb);
      return [removed, ran, again];
    });
    expect(result).toEqual([true, 0, false]);
  });

  it('status: 0 before signal even with an error, the error after ([F3])', () => {
    const { result } = solo(function* (t) {
      const f = fence(t);
      yield* dma_fence_set_error(t, f, -EIO);
      const before = dma_fence_get_status(f);
      yield* dma_fence_signal(t, f);
      return [before, dma_fence_get_status(f)];
    });
    expect(result).toEqual([0, -EIO]);
  });

  it('setting an error after signal is api-misuse ([F3], [I19])', () => {
    const { k } = solo(function* (t) {
      const f = fence(t);
      yield* dma_fence_signal(t, f);
      yield* dma_fence_set_error(t, f, -EIO);
    });
    expect(k.findings.map((f) => f.code)).toEqual(['api-misuse']);
  });

  it('a wait blocks until the fence signals', () => {
    const k = new Kernel();
    const t = k.newTask('waiter');
    const f = fence(t);
    const gen = dma_fence_wait(t, f, false);
    gen.next();
    expect(t.pending.blocker?.ready(t, t.pending)).toBe(false);
    f.signaled = true;
    expect(t.pending.blocker?.ready(t, t.pending)).toBe(true);
  });

  it('a wait inside a signalling critical section is wait-in-signalling ([L11], [I21])', () => {
    const { k } = solo(function* (t) {
      const f = fence(t);
      const g = fence(t);
      yield* dma_fence_signal(t, g);
      dma_fence_begin_signalling(t);
      yield* dma_fence_signal(t, f);
      yield* dma_fence_wait(t, g, false);
    });
    expect(k.findings.map((f) => f.code)).toEqual(['wait-in-signalling']);
  });
});
