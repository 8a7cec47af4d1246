/** dma-buf core rules closed in issue 3: [L6] interruptible resv lock, [LT2] embedded resv, [LT7] error path, [C1] overflow, [I5]. */
import { describe, expect, it } from 'vitest';
import {
  DMA_RESV_USAGE_KERNEL,
  type DmaBuf,
  type DmaBufOps,
  dma_buf_attach,
  dma_buf_export,
  dma_buf_map_attachment,
  dma_buf_mmap,
  dma_buf_put,
  dma_fence_init,
  dma_resv_add_fence,
  dma_resv_init,
  dma_resv_lock,
  dma_resv_lock_interruptible,
  dma_resv_reserve_fences,
  dma_resv_unlock,
  EINTR,
  EOVERFLOW,
  ERESTARTSYS,
  isErr,
  Kernel,
  type KGen,
  MmStruct,
  SgTable,
  type Task,
  Vma,
} from '../../src/index.ts';
import { Kvm } from '../../src/kernel/kvm/kvm-main.ts';
import { kvm_tdp_mmu_map } from '../../src/kernel/kvm/mmu.ts';
import { pfnRef } from '../../src/kernel/page-alloc.ts';
import { runUntilBlocked, solo } from './harness.ts';

const fenceOps = { driverName: 'test', timelineName: 'test' };

/** A dynamic exporter with pin/unpin and mmap, whose map builds an empty table. */
function ops(log: string[]): DmaBufOps {
  return {
    *pin() {
      log.push('pin');
      return 0;
    },
    *unpin() {
      log.push('unpin');
    },
    *map_dma_buf(_t, a, dir) {
      log.push('map');
      return new SgTable(a, dir, []);
    },
    *unmap_dma_buf() {
      log.push('unmap');
    },
    *release() {
      log.push('release');
    },
    *mmap() {
      return 0;
    },
  };
}

function* exportBuf(t: Task, log: string[], pages = 1): KGen<DmaBuf> {
  const b = yield* dma_buf_export(t, 'bo', { exp_name: 'test', ops: ops(log), pages, priv: null });
  if (isErr(b)) throw new Error('export failed');
  return b;
}

describe('dma-buf core', () => {
  it('dma_resv_lock_interruptible returns -EINTR on a pending signal while it waits ([L6])', () => {
    const k = new Kernel();
    const resv = dma_resv_init(k, 'resv');
    const holder = k.newTask('holder');
    const waiter = k.newTask('waiter');
    expect(runUntilBlocked(holder, dma_resv_lock(holder, resv, null))).toBe(true);
    let r = 1;
    const gen = (function* () {
      r = yield* dma_resv_lock_interruptible(waiter, resv, null);
    })();
    expect(runUntilBlocked(waiter, gen)).toBe(false);
    waiter.sigpending = true;
    expect(runUntilBlocked(waiter, gen)).toBe(true);
    expect(r).toBe(-EINTR);
    expect(resv.lock.owner).toBe(holder);
  });

  it('without a signal it takes the lock once free', () => {
    const k = new Kernel();
    const resv = dma_resv_init(k, 'resv');
    const holder = k.newTask('holder');
    const waiter = k.newTask('waiter');
    runUntilBlocked(holder, dma_resv_lock(holder, resv, null));
    let r = 1;
    const gen = (function* () {
      r = yield* dma_resv_lock_interruptible(waiter, resv, null);
    })();
    expect(runUntilBlocked(waiter, gen)).toBe(false);
    runUntilBlocked(holder, dma_resv_unlock(holder, resv));
    expect(runUntilBlocked(waiter, gen)).toBe(true);
    expect(r).toBe(0);
  });

  it('the embedded resv is finalised at release: its fences lose their reference ([LT2] 4)', () => {
    const { result } = solo(function* (t, k) {
      const log: string[] = [];
      const buf = yield* exportBuf(t, log);
      const f = dma_fence_init(t, 'f', fenceOps, k.fenceContextAlloc(), 1);
      yield* dma_resv_lock(t, buf.resv, null);
      dma_resv_reserve_fences(t, buf.resv, 1);
      yield* dma_resv_add_fence(t, buf.resv, f, DMA_RESV_USAGE_KERNEL);
      yield* dma_resv_unlock(t, buf.resv);
      const before = f.refcount;
      yield* dma_buf_put(t, buf);
      return { before, after: f.refcount, entries: buf.resv.fences.entries.length, log };
    });
    expect(result.before).toBe(2);
    expect(result.after).toBe(1);
    expect(result.entries).toBe(0);
    expect(result.log).toContain('release');
  });

  it('a static map whose KERNEL-fence wait is interrupted undoes the map and the pin ([LT7])', () => {
    const { result, k } = solo(function* (t, k) {
      const log: string[] = [];
      const buf = yield* exportBuf(t, log);
      const a = yield* dma_buf_attach(t, buf, 'dev', 'dev');
      if (isErr(a)) throw new Error('attach failed');
      // A pending move: a KERNEL fence nobody signals; the caller has a signal pending.
      yield* dma_resv_lock(t, buf.resv, null);
      dma_resv_reserve_fences(t, buf.resv, 1);
      yield* dma_resv_add_fence(t, buf.resv, dma_fence_init(t, 'move', fenceOps, k.fenceContextAlloc(), 1), 0);
      t.sigpending = true;
      const r = yield* dma_buf_map_attachment(t, a, 'DMA_BIDIRECTIONAL');
      yield* dma_resv_unlock(t, buf.resv);
      return { r, log, sgts: a.sgts.length, pins: a.pinCount };
    });
    expect(result.r).toBe(-ERESTARTSYS);
    expect(result.log).toEqual(['pin', 'map', 'unmap', 'unpin']);
    expect(result.sgts).toBe(0);
    expect(result.pins).toBe(0);
    expect(k.findings).toEqual([]);
  });

  it('dma_buf_mmap: a page offset that overflows is -EOVERFLOW, one past the end -EINVAL ([C1])', () => {
    const { result } = solo(function* (t, k) {
      const buf = yield* exportBuf(t, [], 2);
      const mm = new MmStruct(k, 'mm');
      const huge = yield* dma_buf_mmap(t, buf, new Vma(k, mm, 'a', 2), 2 ** 53);
      const past = yield* dma_buf_mmap(t, buf, new Vma(k, mm, 'b', 2), 1);
      const fits = yield* dma_buf_mmap(t, buf, new Vma(k, mm, 'c', 1), 1);
      return { huge, past, fits };
    });
    expect(result.huge).toBe(-EOVERFLOW);
    expect(result.past).toBe(-22);
    expect(result.fits).toBe(0);
  });

  it('an SPTE installed without mmu_lock is lock-not-held ([I5], [K4])', () => {
    const { k } = solo(function* (t, k) {
      const kvm = new Kvm(k, 'vm', 1);
      const pool = k.physmem.pools.get('system');
      if (!pool) throw new Error('no pool');
      yield* kvm_tdp_mmu_map(t, kvm, 'vm', 'bo', 0, pfnRef(pool.frameAt(0)), null);
    });
    expect(k.findings.map((f) => `${f.code} ${f.rules.join(',')}`)).toEqual(['lock-not-held I5,K4']);
  });
});
