/** dma_resv basics: usages ([R1]), reserve/add ([R3], [R4]), test_signaled ([R10]); st-dma-resv is issue 3. */
import { describe, expect, it } from 'vitest';
import { dma_fence_init, dma_fence_signal } from '../../src/kernel/dma-fence.ts';
import {
  DMA_RESV_USAGE_BOOKKEEP,
  DMA_RESV_USAGE_KERNEL,
  DMA_RESV_USAGE_READ,
  DMA_RESV_USAGE_WRITE,
  type DmaResvUsage,
  dma_resv_add_fence,
  dma_resv_init,
  dma_resv_lock,
  dma_resv_reserve_fences,
  dma_resv_test_signaled,
  dma_resv_unlock,
  dma_resv_usage_rw,
} from '../../src/kernel/dma-resv.ts';
import { solo } from './harness.ts';

const USAGES: DmaResvUsage[] = [
  DMA_RESV_USAGE_KERNEL,
  DMA_RESV_USAGE_WRITE,
  DMA_RESV_USAGE_READ,
  DMA_RESV_USAGE_BOOKKEEP,
];
const ops = { driverName: 'test', timelineName: 'test' };

describe('dma_resv', () => {
  for (const added of USAGES) {
    it(`a fence added at usage ${added} is seen by queries at usage ≥ ${added} only ([R1])`, () => {
      const { result } = solo(function* (t, k) {
        const resv = dma_resv_init(k, 'resv');
        const f = dma_fence_init(t, 'f', ops, k.fenceContextAlloc(), 1);
        yield* dma_resv_lock(t, resv, null);
        expect(dma_resv_reserve_fences(t, resv, 1)).toBe(0);
        yield* dma_resv_add_fence(t, resv, f, added);
        yield* dma_resv_unlock(t, resv);
        const seen: boolean[] = [];
        for (const q of USAGES) seen.push(!(yield* dma_resv_test_signaled(t, resv, q)));
        yield* dma_fence_signal(t, f);
        const after = yield* dma_resv_test_signaled(t, resv, DMA_RESV_USAGE_BOOKKEEP);
        return { seen, after };
      });
      expect(result.seen).toEqual(USAGES.map((q) => q >= added));
      expect(result.after).toBe(true);
    });
  }

  it('dma_resv_usage_rw: a writer waits for readers, a reader for writers ([R1])', () => {
    expect(dma_resv_usage_rw(true)).toBe(DMA_RESV_USAGE_READ);
    expect(dma_resv_usage_rw(false)).toBe(DMA_RESV_USAGE_WRITE);
  });

  it('adding without a reservation is api-misuse; without the lock, lock-not-held ([R3], [I17])', () => {
    const { k } = solo(function* (t, k) {
      const resv = dma_resv_init(k, 'resv');
      yield* dma_resv_lock(t, resv, null);
      yield* dma_resv_add_fence(t, resv, dma_fence_init(t, 'a', ops, k.fenceContextAlloc(), 1), DMA_RESV_USAGE_WRITE);
      yield* dma_resv_unlock(t, resv);
      yield* dma_resv_add_fence(t, resv, dma_fence_init(t, 'b', ops, k.fenceContextAlloc(), 1), DMA_RESV_USAGE_WRITE);
    });
    // The second missing reservation has the same message: a finding is recorded once per execution.
    expect(k.findings.map((f) => f.code)).toEqual(['api-misuse', 'lock-not-held']);
  });

  it('the reservation lasts for one lock hold only ([R3])', () => {
    const { k } = solo(function* (t, k) {
      const resv = dma_resv_init(k, 'resv');
      yield* dma_resv_lock(t, resv, null);
      dma_resv_reserve_fences(t, resv, 1);
      yield* dma_resv_unlock(t, resv);
      yield* dma_resv_lock(t, resv, null);
      yield* dma_resv_add_fence(t, resv, dma_fence_init(t, 'a', ops, k.fenceContextAlloc(), 1), DMA_RESV_USAGE_READ);
      yield* dma_resv_unlock(t, resv);
    });
    expect(k.findings.map((f) => f.code)).toEqual(['api-misuse']);
  });

  it('a fence of the same context replaces its entry instead of appending ([R4])', () => {
    const { result } = solo(function* (t, k) {
      const resv = dma_resv_init(k, 'resv');
      const ctx = k.fenceContextAlloc();
      yield* dma_resv_lock(t, resv, null);
      dma_resv_reserve_fences(t, resv, 2);
      yield* dma_resv_add_fence(t, resv, dma_fence_init(t, 'a', ops, ctx, 1), DMA_RESV_USAGE_READ);
      yield* dma_resv_add_fence(t, resv, dma_fence_init(t, 'b', ops, ctx, 2), DMA_RESV_USAGE_READ);
      yield* dma_resv_unlock(t, resv);
      return resv.fences.entries.map((e) => e.fence.name);
    });
    expect(result).toEqual(['b']);
  });
});
