/**
 * The kernel's reservation-object selftests (drivers/dma-buf/st-dma-resv.c,
 * KUnit suite "dma-buf-resv"), ported to the model: one test per kernel test,
 * named after it, the parameterised ones once per usage (reference §5.3,
 * TR1–TR5). Then the cross-usage visibility rules that follow from [R1], and
 * the other dma_resv rules ([R2]–[R10]), some as Programs run by the explorer
 * (restarts, the simulated clock, and DPOR against plain DFS on resv races).
 *
 * `alloc_fence()` is, as in the kernel, a fence with name ops only, context 0,
 * seqno 0. The kernel test also enables signalling on it, which changes
 * nothing here (the model's fences have no `enable_signaling` op). Where the
 * kernel test calls `dma_fence_put()`, the port drops the reference through
 * `refcount` (`put` below).
 */
import { describe, expect, it } from 'vitest';
import { explore, type Strategy } from '../../src/explorer/explore.ts';
import type { Program } from '../../src/explorer/program.ts';
import { type DmaFence, dma_fence_init, dma_fence_signal } from '../../src/kernel/dma-fence.ts';
import {
  DMA_RESV_USAGE_BOOKKEEP,
  DMA_RESV_USAGE_KERNEL,
  DMA_RESV_USAGE_READ,
  DMA_RESV_USAGE_WRITE,
  type DmaResv,
  type DmaResvUsage,
  dma_resv_add_fence,
  dma_resv_copy_fences,
  dma_resv_fini,
  dma_resv_for_each_fence,
  dma_resv_get_fences,
  dma_resv_get_singleton,
  dma_resv_init,
  dma_resv_iter_begin,
  dma_resv_iter_end,
  dma_resv_iter_first_unlocked,
  dma_resv_iter_is_restarted,
  dma_resv_iter_next_unlocked,
  dma_resv_iter_usage,
  dma_resv_lock,
  dma_resv_replace_fences,
  dma_resv_reserve_fences,
  dma_resv_reset_max_fences,
  dma_resv_test_signaled,
  dma_resv_unlock,
  dma_resv_wait_timeout,
  USAGE_NAMES,
} from '../../src/kernel/dma-resv.ts';
import { EINVAL, ENOENT, ERESTARTSYS } from '../../src/kernel/errno.ts';
import type { Kernel } from '../../src/kernel/kernel.ts';
import type { KGen, Task } from '../../src/kernel/sched.ts';
import { schedule_timeout } from '../../src/kernel/time.ts';
import { solo } from './harness.ts';

/** The four usages under their KUnit parameter names. */
const USAGES: readonly (readonly [string, DmaResvUsage])[] = [
  ['kernel', DMA_RESV_USAGE_KERNEL],
  ['write', DMA_RESV_USAGE_WRITE],
  ['read', DMA_RESV_USAGE_READ],
  ['bookkeep', DMA_RESV_USAGE_BOOKKEEP],
];
const ALL: readonly DmaResvUsage[] = USAGES.map(([, u]) => u);

const fence_ops = { driverName: 'selftest', timelineName: 'selftest' };

/** `alloc_fence()`: name ops only, context 0, seqno 0. */
function alloc_fence(t: Task): DmaFence {
  return dma_fence_init(t, `${t.name}:selftest#${++t.created}`, fence_ops, 0, 0);
}

/** A fence on a fresh context (the cross-usage and rule tests need distinct contexts). */
function fence(t: Task, name: string, ctx = t.k.fenceContextAlloc()): DmaFence {
  return dma_fence_init(t, name, fence_ops, ctx, 1);
}

/** `dma_fence_put()` of a reference the test holds. */
function put(f: DmaFence): void {
  f.refcount--;
}

/** Locks `resv`, reserves one slot per fence, adds each at its usage, unlocks. */
function* addAll(t: Task, resv: DmaResv, fences: readonly (readonly [DmaFence, DmaResvUsage])[]): KGen {
  yield* dma_resv_lock(t, resv, null);
  dma_resv_reserve_fences(t, resv, fences.length);
  for (const [f, u] of fences) yield* dma_resv_add_fence(t, resv, f, u);
  yield* dma_resv_unlock(t, resv);
}

/** The whole unlocked walk: each yield with its restart flag and usage. */
function* unlockedWalk(t: Task, resv: DmaResv, usage: DmaResvUsage): KGen<string[]> {
  const seen: string[] = [];
  const cursor = dma_resv_iter_begin(resv, usage);
  for (let f = yield* dma_resv_iter_first_unlocked(t, cursor); f; f = yield* dma_resv_iter_next_unlocked(t, cursor)) {
    seen.push(`${f.name}${dma_resv_iter_is_restarted(cursor) ? '*' : ''}`);
  }
  yield* dma_resv_iter_end(t, cursor);
  return seen;
}

/** The locked walk, with resv taken around it: `name@USAGE` per entry. */
function* lockedWalk(t: Task, resv: DmaResv, usage: DmaResvUsage): KGen<string[]> {
  yield* dma_resv_lock(t, resv, null);
  const seen: string[] = [];
  const cursor = dma_resv_iter_begin(resv, usage);
  for (const f of dma_resv_for_each_fence(t, cursor))
    seen.push(`${f.name}@${USAGE_NAMES[dma_resv_iter_usage(cursor)]}`);
  yield* dma_resv_unlock(t, resv);
  return seen;
}

describe('st-dma-resv', () => {
  it('test_sanitycheck', () => {
    const { result, k } = solo(function* (t, k) {
      const f = alloc_fence(t);
      yield* dma_fence_signal(t, f);
      put(f);
      const resv = dma_resv_init(k, 'resv');
      const r = yield* dma_resv_lock(t, resv, null);
      if (r === 0) yield* dma_resv_unlock(t, resv);
      yield* dma_resv_fini(t, resv);
      return { signaled: f.signaled, r, locked: resv.lock.owner !== null };
    });
    expect(result).toEqual({ signaled: true, r: 0, locked: false });
    expect(k.findings).toEqual([]);
  });

  for (const [name, usage] of USAGES) {
    it(`test_signaling[${name}]`, () => {
      const { result, k } = solo(function* (t, k) {
        const resv = dma_resv_init(k, 'resv');
        const f = alloc_fence(t);
        const r = yield* dma_resv_lock(t, resv, null);
        const reserved = dma_resv_reserve_fences(t, resv, 1);
        yield* dma_resv_add_fence(t, resv, f, usage);
        // "Resv unexpectedly signaled"
        const before = yield* dma_resv_test_signaled(t, resv, usage);
        yield* dma_fence_signal(t, f);
        // "Resv not reporting signaled"
        const after = yield* dma_resv_test_signaled(t, resv, usage);
        yield* dma_resv_unlock(t, resv);
        yield* dma_resv_fini(t, resv);
        put(f);
        return { r, reserved, before, after };
      });
      expect(result).toEqual({ r: 0, reserved: 0, before: false, after: true });
      expect(k.findings).toEqual([]);
    });
  }

  for (const [name, usage] of USAGES) {
    it(`test_for_each[${name}]`, () => {
      const { result, k } = solo(function* (t, k) {
        const resv = dma_resv_init(k, 'resv');
        const f = alloc_fence(t);
        yield* dma_resv_lock(t, resv, null);
        const reserved = dma_resv_reserve_fences(t, resv, 1);
        yield* dma_resv_add_fence(t, resv, f, usage);
        let r = -ENOENT;
        let err: string | null = null;
        const cursor = dma_resv_iter_begin(resv, usage);
        for (const fence of dma_resv_for_each_fence(t, cursor)) {
          if (!r) {
            err = 'More than one fence found';
            r = -EINVAL;
            break;
          }
          if (f !== fence) {
            err = 'Unexpected fence';
            r = -EINVAL;
            break;
          }
          if (dma_resv_iter_usage(cursor) !== usage) {
            err = 'Unexpected fence usage';
            r = -EINVAL;
            break;
          }
          r = 0;
        }
        if (r && !err) err = 'No fence found';
        if (!r) yield* dma_fence_signal(t, f);
        yield* dma_resv_unlock(t, resv);
        yield* dma_resv_fini(t, resv);
        put(f);
        return { reserved, r, err };
      });
      expect(result).toEqual({ reserved: 0, r: 0, err: null });
      expect(k.findings).toEqual([]);
    });
  }

  for (const [name, usage] of USAGES) {
    it(`test_for_each_unlocked[${name}]`, () => {
      const { result, k } = solo(function* (t, k) {
        const resv = dma_resv_init(k, 'resv');
        const f = alloc_fence(t);
        yield* dma_resv_lock(t, resv, null);
        const reserved = dma_resv_reserve_fences(t, resv, 1);
        yield* dma_resv_add_fence(t, resv, f, usage);
        yield* dma_resv_unlock(t, resv);
        let r = -ENOENT;
        let err: string | null = null;
        const yields: { restarted: boolean; usage: DmaResvUsage; refs: number }[] = [];
        const cursor = dma_resv_iter_begin(resv, usage);
        for (
          let fence = yield* dma_resv_iter_first_unlocked(t, cursor);
          fence;
          fence = yield* dma_resv_iter_next_unlocked(t, cursor)
        ) {
          yields.push({
            restarted: dma_resv_iter_is_restarted(cursor),
            usage: dma_resv_iter_usage(cursor),
            refs: fence.refcount,
          });
          if (!r) {
            err = 'More than one fence found';
            r = -EINVAL;
            break;
          }
          if (!dma_resv_iter_is_restarted(cursor)) {
            err = 'No restart flag';
            break;
          }
          if (f !== fence) {
            err = 'Unexpected fence';
            r = -EINVAL;
            break;
          }
          if (dma_resv_iter_usage(cursor) !== usage) {
            err = 'Unexpected fence usage';
            r = -EINVAL;
            break;
          }
          // We use r as state here
          if (r === -ENOENT) {
            r = -EINVAL;
            // That should trigger a restart (the pre-6.0 test decrements the cursor's seq)
            cursor.seq--;
          } else if (r === -EINVAL) {
            r = 0;
          }
        }
        if (r && !err) err = 'No fence found';
        yield* dma_resv_iter_end(t, cursor);
        const refsAfter = f.refcount;
        yield* dma_fence_signal(t, f);
        yield* dma_resv_fini(t, resv);
        put(f);
        return { reserved, r, err, yields, refsAfter };
      });
      expect(result.err).toBe(null);
      expect(result.r).toBe(0);
      // Exactly two yields, both the fence with the restart flag and its usage.
      expect(result.yields.map((y) => [y.restarted, y.usage])).toEqual([
        [true, usage],
        [true, usage],
      ]);
      // A reference is held across the loop body and dropped on advance / end ([R7]).
      expect(result.yields.map((y) => y.refs)).toEqual([3, 3]);
      expect(result.refsAfter).toBe(2);
      expect(k.findings).toEqual([]);
    });
  }

  for (const [name, usage] of USAGES) {
    it(`test_get_fences[${name}]`, () => {
      const { result, k } = solo(function* (t, k) {
        const resv = dma_resv_init(k, 'resv');
        const f = alloc_fence(t);
        yield* dma_resv_lock(t, resv, null);
        const reserved = dma_resv_reserve_fences(t, resv, 1);
        yield* dma_resv_add_fence(t, resv, f, usage);
        yield* dma_resv_unlock(t, resv);
        const fences = yield* dma_resv_get_fences(t, resv, usage);
        // "get_fences returned unexpected fence"
        const ok = fences.length === 1 && fences[0] === f;
        const refs = f.refcount;
        yield* dma_fence_signal(t, f);
        for (const g of fences) put(g);
        yield* dma_resv_fini(t, resv);
        const refsAtEnd = f.refcount;
        put(f);
        return { reserved, count: fences.length, ok, refs, refsAtEnd };
      });
      // creator + list + the array's reference; the list's and the array's are dropped by the end.
      expect(result).toEqual({ reserved: 0, count: 1, ok: true, refs: 3, refsAtEnd: 1 });
      expect(k.findings).toEqual([]);
    });
  }
});

/** What each query API sees of a resv holding one fence added at `added`, queried at `query`. */
function observe(added: DmaResvUsage, query: DmaResvUsage, signal: boolean) {
  return solo(function* (t, k) {
    const resv = dma_resv_init(k, 'resv');
    const f = fence(t, 'f');
    yield* addAll(t, resv, [[f, added]]);
    if (signal) yield* dma_fence_signal(t, f);
    const testSignaled = yield* dma_resv_test_signaled(t, resv, query);
    const locked = yield* lockedWalk(t, resv, query);
    const unlocked = yield* unlockedWalk(t, resv, query);
    const got = yield* dma_resv_get_fences(t, resv, query);
    for (const g of got) put(g);
    const wait0 = yield* dma_resv_wait_timeout(t, resv, query, false, 0);
    return { testSignaled, locked, unlocked, getFences: got.map((g) => g.name), wait0 };
  }).result;
}

/** What every API must report for a fence that a query at its usage does (`visible`) or does not see. */
function expected(visible: boolean, added: DmaResvUsage) {
  return {
    testSignaled: !visible,
    locked: visible ? [`f@${USAGE_NAMES[added]}`] : [],
    unlocked: visible ? ['f*'] : [],
    getFences: visible ? ['f'] : [],
    wait0: visible ? 0 : 1,
  };
}

describe('dma_resv cross-usage visibility ([R1])', () => {
  it('a READ fence is invisible to a WRITE query (test_signaled, both walks, get_fences, wait_timeout)', () => {
    expect(observe(DMA_RESV_USAGE_READ, DMA_RESV_USAGE_WRITE, false)).toEqual(expected(false, DMA_RESV_USAGE_READ));
    expect(observe(DMA_RESV_USAGE_READ, DMA_RESV_USAGE_READ, false)).toEqual(expected(true, DMA_RESV_USAGE_READ));
  });

  it('a BOOKKEEP fence is visible only to BOOKKEEP queries', () => {
    for (const q of ALL) {
      expect(observe(DMA_RESV_USAGE_BOOKKEEP, q, false)).toEqual(
        expected(q === DMA_RESV_USAGE_BOOKKEEP, DMA_RESV_USAGE_BOOKKEEP),
      );
    }
  });

  it('a KERNEL fence is visible to every query', () => {
    for (const q of ALL)
      expect(observe(DMA_RESV_USAGE_KERNEL, q, false)).toEqual(expected(true, DMA_RESV_USAGE_KERNEL));
  });

  for (const [name, added] of USAGES) {
    it(`a ${name} fence is seen exactly by queries at usage ≥ ${name}, by every API`, () => {
      for (const q of ALL) expect(observe(added, q, false)).toEqual(expected(added <= q, added));
    });
  }

  it('once signalled, only the locked walk still yields it ([R6], [R7], [R10])', () => {
    for (const added of ALL) {
      for (const q of ALL) {
        expect(observe(added, q, true)).toEqual({
          testSignaled: true,
          locked: added <= q ? [`f@${USAGE_NAMES[added]}`] : [],
          unlocked: [],
          getFences: [],
          wait0: 1,
        });
      }
    }
  });

  it('a writer waits for readers and writers, a reader for writers only (dma_resv_usage_rw)', () => {
    const r = observe(DMA_RESV_USAGE_READ, DMA_RESV_USAGE_WRITE, false);
    expect(r.testSignaled).toBe(true); // a new reader (query WRITE) does not wait for a reader
    expect(observe(DMA_RESV_USAGE_READ, DMA_RESV_USAGE_READ, false).testSignaled).toBe(false); // a writer does
  });
});

/** `name@USAGE` of every entry, in list order. */
function entries(resv: DmaResv): string[] {
  return resv.fences.entries.map((e) => `${e.fence.name}@${USAGE_NAMES[e.usage]}`);
}

describe('dma_resv_add_fence: replacement and promotion ([R2], [R4])', () => {
  it('a fence of the same context and a usage ≥ the new one is replaced in place', () => {
    const { result, k } = solo(function* (t, k) {
      const resv = dma_resv_init(k, 'resv');
      const ctx = k.fenceContextAlloc();
      const a = fence(t, 'a', ctx);
      const b = fence(t, 'b', ctx);
      const other = fence(t, 'other');
      yield* dma_resv_lock(t, resv, null);
      dma_resv_reserve_fences(t, resv, 3);
      yield* dma_resv_add_fence(t, resv, a, DMA_RESV_USAGE_READ);
      yield* dma_resv_add_fence(t, resv, other, DMA_RESV_USAGE_READ);
      yield* dma_resv_add_fence(t, resv, b, DMA_RESV_USAGE_WRITE);
      yield* dma_resv_unlock(t, resv);
      return { list: entries(resv), refs: [a.refcount, b.refcount] };
    });
    expect(result.list).toEqual(['b@WRITE', 'other@READ']);
    expect(result.refs).toEqual([1, 2]); // the list's reference on a was put
    expect(k.findings).toEqual([]);
  });

  it('a same-context fence with a weaker usage is appended: the stronger entry stays', () => {
    const { result } = solo(function* (t, k) {
      const resv = dma_resv_init(k, 'resv');
      const ctx = k.fenceContextAlloc();
      yield* addAll(t, resv, [
        [fence(t, 'a', ctx), DMA_RESV_USAGE_KERNEL],
        [fence(t, 'b', ctx), DMA_RESV_USAGE_READ],
      ]);
      return entries(resv);
    });
    expect(result).toEqual(['a@KERNEL', 'b@READ']);
  });

  it('a signalled entry of any context is replaced in place', () => {
    const { result, k } = solo(function* (t, k) {
      const resv = dma_resv_init(k, 'resv');
      const old = fence(t, 'old');
      yield* dma_resv_lock(t, resv, null);
      dma_resv_reserve_fences(t, resv, 3);
      yield* dma_resv_add_fence(t, resv, old, DMA_RESV_USAGE_KERNEL);
      yield* dma_resv_add_fence(t, resv, fence(t, 'live'), DMA_RESV_USAGE_READ);
      yield* dma_fence_signal(t, old);
      yield* dma_resv_add_fence(t, resv, fence(t, 'new'), DMA_RESV_USAGE_BOOKKEEP);
      yield* dma_resv_unlock(t, resv);
      return { list: entries(resv), oldRefs: old.refcount };
    });
    expect(result).toEqual({ list: ['new@BOOKKEEP', 'live@READ'], oldRefs: 1 });
    expect(k.findings).toEqual([]);
  });

  it('promotion: re-adding a fence at a stronger usage upgrades its entry', () => {
    const { result } = solo(function* (t, k) {
      const resv = dma_resv_init(k, 'resv');
      const f = fence(t, 'f');
      yield* addAll(t, resv, [[f, DMA_RESV_USAGE_BOOKKEEP]]);
      const writeBefore = yield* dma_resv_test_signaled(t, resv, DMA_RESV_USAGE_WRITE);
      yield* addAll(t, resv, [[f, DMA_RESV_USAGE_WRITE]]);
      const writeAfter = yield* dma_resv_test_signaled(t, resv, DMA_RESV_USAGE_WRITE);
      return { writeBefore, writeAfter, list: entries(resv) };
    });
    expect(result).toEqual({ writeBefore: true, writeAfter: false, list: ['f@WRITE'] });
  });

  it('never degraded: re-adding at a weaker usage leaves the stronger entry visible', () => {
    const { result } = solo(function* (t, k) {
      const resv = dma_resv_init(k, 'resv');
      const f = fence(t, 'f');
      yield* addAll(t, resv, [[f, DMA_RESV_USAGE_KERNEL]]);
      yield* addAll(t, resv, [[f, DMA_RESV_USAGE_BOOKKEEP]]);
      const kernel = yield* dma_resv_test_signaled(t, resv, DMA_RESV_USAGE_KERNEL);
      return { kernel, list: entries(resv) };
    });
    expect(result).toEqual({ kernel: false, list: ['f@KERNEL', 'f@BOOKKEEP'] });
  });

  it('adding a container (the array of get_singleton) WARNs', () => {
    const { result, k } = solo(function* (t, k) {
      const resv = dma_resv_init(k, 'resv');
      yield* addAll(t, resv, [
        [fence(t, 'a'), DMA_RESV_USAGE_WRITE],
        [fence(t, 'b'), DMA_RESV_USAGE_WRITE],
      ]);
      const array = yield* dma_resv_get_singleton(t, resv, DMA_RESV_USAGE_WRITE);
      const other = dma_resv_init(k, 'other');
      yield* addAll(t, other, [[array as DmaFence, DMA_RESV_USAGE_WRITE]]);
      return entries(other).length;
    });
    expect(result).toBe(1);
    expect(k.findings.map((f) => [f.code, f.message])).toEqual([
      ['api-misuse', 'WARNING: dma_resv_add_fence: t0:fence-array#1 is a container fence: add its fences one by one'],
    ]);
  });
});

describe('dma_resv_reserve_fences: capacity ([R3])', () => {
  it('adding without a reservation is an api-misuse finding, not a crash; the fence is still added', () => {
    const { result, k } = solo(function* (t, k) {
      const resv = dma_resv_init(k, 'resv');
      yield* dma_resv_lock(t, resv, null);
      yield* dma_resv_add_fence(t, resv, fence(t, 'a'), DMA_RESV_USAGE_WRITE);
      yield* dma_resv_unlock(t, resv);
      return entries(resv);
    });
    expect(result).toEqual(['a@WRITE']);
    expect(k.findings.map((f) => [f.code, f.message])).toEqual([
      ['api-misuse', 'WARNING: dma_resv_add_fence: no fence slot reserved in this lock hold (dma_resv_reserve_fences)'],
    ]);
  });

  it('capacity: max(4, pow2(n)) first, then max(num + n, 2 * max); within capacity, 0 at once', () => {
    const { result, k } = solo(function* (t, k) {
      const resv = dma_resv_init(k, 'resv');
      const caps: number[] = [];
      yield* dma_resv_lock(t, resv, null);
      dma_resv_reserve_fences(t, resv, 1);
      caps.push(resv.fences.max); // 4
      for (const n of ['a', 'b', 'c']) yield* dma_resv_add_fence(t, resv, fence(t, n), DMA_RESV_USAGE_READ);
      dma_resv_reserve_fences(t, resv, 1); // 3 + 1 ≤ 4
      caps.push(resv.fences.max);
      dma_resv_reserve_fences(t, resv, 2); // 3 + 2 > 4: max(5, 8)
      caps.push(resv.fences.max);
      dma_resv_reserve_fences(t, resv, 10); // 3 + 10 > 8: max(13, 16)
      caps.push(resv.fences.max);
      yield* dma_resv_unlock(t, resv);
      const other = dma_resv_init(k, 'other');
      yield* dma_resv_lock(t, other, null);
      dma_resv_reserve_fences(t, other, 5);
      caps.push(other.fences.max); // pow2(5)
      yield* dma_resv_unlock(t, other);
      return caps;
    });
    expect(result).toEqual([4, 4, 8, 16, 8]);
    expect(k.findings).toEqual([]);
  });

  it('one reserve(1) gives room for several adds within the capacity, as in the kernel', () => {
    const { k } = solo(function* (t, k) {
      const resv = dma_resv_init(k, 'resv');
      yield* dma_resv_lock(t, resv, null);
      dma_resv_reserve_fences(t, resv, 1);
      for (const n of ['a', 'b', 'c', 'd']) yield* dma_resv_add_fence(t, resv, fence(t, n), DMA_RESV_USAGE_READ);
      yield* dma_resv_unlock(t, resv);
    });
    expect(k.findings).toEqual([]);
  });

  it('unlock resets the capacity to the entries in use: reserve again after relocking', () => {
    const { result, k } = solo(function* (t, k) {
      const resv = dma_resv_init(k, 'resv');
      yield* addAll(t, resv, [[fence(t, 'a'), DMA_RESV_USAGE_READ]]);
      const max = resv.fences.max;
      yield* dma_resv_lock(t, resv, null);
      yield* dma_resv_add_fence(t, resv, fence(t, 'b'), DMA_RESV_USAGE_READ);
      yield* dma_resv_unlock(t, resv);
      return max;
    });
    expect(result).toBe(1);
    expect(k.findings.map((f) => f.code)).toEqual(['api-misuse']);
  });

  it('dma_resv_reset_max_fences drops the unused reservation within a hold', () => {
    const { k } = solo(function* (t, k) {
      const resv = dma_resv_init(k, 'resv');
      yield* dma_resv_lock(t, resv, null);
      dma_resv_reserve_fences(t, resv, 2);
      yield* dma_resv_add_fence(t, resv, fence(t, 'a'), DMA_RESV_USAGE_READ);
      dma_resv_reset_max_fences(t, resv);
      yield* dma_resv_add_fence(t, resv, fence(t, 'b'), DMA_RESV_USAGE_READ);
      yield* dma_resv_unlock(t, resv);
    });
    expect(k.findings.map((f) => f.code)).toEqual(['api-misuse']);
  });

  it('reserve(0) WARNs and returns -EINVAL; reserve without the lock is lock-not-held', () => {
    const { result, k } = solo(function* (t, k) {
      const resv = dma_resv_init(k, 'resv');
      yield* dma_resv_lock(t, resv, null);
      const zero = dma_resv_reserve_fences(t, resv, 0);
      yield* dma_resv_unlock(t, resv);
      dma_resv_reserve_fences(t, resv, 1);
      return zero;
    });
    expect(result).toBe(-EINVAL);
    expect(k.findings.map((f) => f.code)).toEqual(['api-misuse', 'lock-not-held']);
  });

  it('a reallocation drops the signalled entries and puts their references (by the next add)', () => {
    const { result, k } = solo(function* (t, k) {
      const resv = dma_resv_init(k, 'resv');
      const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((n) => fence(t, n)) as [DmaFence, DmaFence, DmaFence, DmaFence];
      yield* dma_resv_lock(t, resv, null);
      dma_resv_reserve_fences(t, resv, 4);
      for (const f of [a, b, c, d]) yield* dma_resv_add_fence(t, resv, f, DMA_RESV_USAGE_READ);
      yield* dma_fence_signal(t, a);
      yield* dma_fence_signal(t, c);
      dma_resv_reserve_fences(t, resv, 1); // 4 + 1 > 4: reallocate to 8
      const max = resv.fences.max;
      yield* dma_resv_add_fence(t, resv, fence(t, 'e'), DMA_RESV_USAGE_READ);
      yield* dma_resv_unlock(t, resv);
      return { max, list: entries(resv), refs: [a, b, c, d].map((f) => f.refcount) };
    });
    // Without the drop, the add would have replaced a in place: [e, b, c, d].
    expect(result).toEqual({ max: 8, list: ['b@READ', 'd@READ', 'e@READ'], refs: [1, 2, 1, 2] });
    expect(k.findings).toEqual([]);
  });
});

describe('dma_resv_replace_fences, the walks, get_singleton, copy_fences ([R5]–[R9])', () => {
  it('replace_fences overwrites every entry of the context and puts the old references ([R5])', () => {
    const { result } = solo(function* (t, k) {
      const resv = dma_resv_init(k, 'resv');
      const ctx = k.fenceContextAlloc();
      const p1 = fence(t, 'preempt1', ctx);
      const p2 = fence(t, 'preempt2', ctx);
      // p2 comes after p1 on the same context; a weaker usage makes it a second entry ([R4]).
      yield* addAll(t, resv, [
        [p1, DMA_RESV_USAGE_KERNEL],
        [fence(t, 'job'), DMA_RESV_USAGE_READ],
        [p2, DMA_RESV_USAGE_BOOKKEEP],
      ]);
      const pt = fence(t, 'pt-update');
      yield* dma_resv_lock(t, resv, null);
      yield* dma_resv_replace_fences(t, resv, ctx, pt, DMA_RESV_USAGE_BOOKKEEP);
      yield* dma_resv_unlock(t, resv);
      return { list: entries(resv), refs: [p1.refcount, p2.refcount, pt.refcount] };
    });
    expect(result.list).toEqual(['pt-update@BOOKKEEP', 'job@READ', 'pt-update@BOOKKEEP']);
    expect(result.refs).toEqual([1, 1, 3]);
  });

  it('the locked walk yields signalled fences too, in list order, with their usages ([R6])', () => {
    const { result } = solo(function* (t, k) {
      const resv = dma_resv_init(k, 'resv');
      const a = fence(t, 'a');
      yield* addAll(t, resv, [
        [a, DMA_RESV_USAGE_KERNEL],
        [fence(t, 'b'), DMA_RESV_USAGE_READ],
        [fence(t, 'c'), DMA_RESV_USAGE_BOOKKEEP],
      ]);
      yield* dma_fence_signal(t, a);
      return {
        read: yield* lockedWalk(t, resv, DMA_RESV_USAGE_READ),
        all: yield* lockedWalk(t, resv, DMA_RESV_USAGE_BOOKKEEP),
        unlocked: yield* unlockedWalk(t, resv, DMA_RESV_USAGE_BOOKKEEP),
      };
    });
    expect(result).toEqual({
      read: ['a@KERNEL', 'b@READ'],
      all: ['a@KERNEL', 'b@READ', 'c@BOOKKEEP'],
      unlocked: ['b*', 'c'],
    });
  });

  it('the unlocked walk restarts from the first fence when the list is published under it ([R7])', () => {
    const { result } = solo(function* (t, k) {
      const resv = dma_resv_init(k, 'resv');
      yield* addAll(t, resv, [
        [fence(t, 'a'), DMA_RESV_USAGE_READ],
        [fence(t, 'b'), DMA_RESV_USAGE_READ],
      ]);
      const seen: string[] = [];
      const cursor = dma_resv_iter_begin(resv, DMA_RESV_USAGE_BOOKKEEP);
      for (
        let f = yield* dma_resv_iter_first_unlocked(t, cursor);
        f;
        f = yield* dma_resv_iter_next_unlocked(t, cursor)
      ) {
        seen.push(`${f.name}${dma_resv_iter_is_restarted(cursor) ? '*' : ''}`);
        if (seen.length === 1) yield* addAll(t, resv, [[fence(t, 'c'), DMA_RESV_USAGE_WRITE]]);
      }
      yield* dma_resv_iter_end(t, cursor);
      return seen;
    });
    expect(result).toEqual(['a*', 'a*', 'b', 'c']);
  });

  it('dma_resv_iter_end drops the reference of a walk stopped early ([R7])', () => {
    const { result } = solo(function* (t, k) {
      const resv = dma_resv_init(k, 'resv');
      const a = fence(t, 'a');
      yield* addAll(t, resv, [[a, DMA_RESV_USAGE_READ]]);
      const cursor = dma_resv_iter_begin(resv, DMA_RESV_USAGE_READ);
      yield* dma_resv_iter_first_unlocked(t, cursor);
      const inside = a.refcount;
      yield* dma_resv_iter_end(t, cursor);
      return [inside, a.refcount];
    });
    expect(result).toEqual([3, 2]);
  });

  it('get_singleton: null, the fence itself, or a new array fence that signals when all have ([R8])', () => {
    const { result, k } = solo(function* (t, k) {
      const resv = dma_resv_init(k, 'resv');
      const none = yield* dma_resv_get_singleton(t, resv, DMA_RESV_USAGE_BOOKKEEP);
      const a = fence(t, 'a');
      const b = fence(t, 'b');
      yield* addAll(t, resv, [[a, DMA_RESV_USAGE_WRITE]]);
      const one = yield* dma_resv_get_singleton(t, resv, DMA_RESV_USAGE_BOOKKEEP);
      const aRefs = a.refcount;
      yield* addAll(t, resv, [[b, DMA_RESV_USAGE_READ]]);
      const only = yield* dma_resv_get_singleton(t, resv, DMA_RESV_USAGE_WRITE);
      const array = (yield* dma_resv_get_singleton(t, resv, DMA_RESV_USAGE_READ)) as DmaFence;
      const states = [array.signaled];
      yield* dma_fence_signal(t, a);
      states.push(array.signaled);
      yield* dma_fence_signal(t, b);
      states.push(array.signaled);
      return {
        none,
        one: one === a,
        aRefs,
        only: only === a,
        arrayIsNew: array !== a && array !== b,
        newContext: array.context !== a.context && array.context !== b.context,
        states,
      };
    });
    expect(result).toEqual({
      none: null,
      one: true,
      aRefs: 3,
      only: true,
      arrayIsNew: true,
      newContext: true,
      states: [false, false, true],
    });
    expect(k.findings).toEqual([]);
  });

  it('copy_fences replaces dst with src’s unsignalled fences and their usages ([R9])', () => {
    const { result, k } = solo(function* (t, k) {
      const src = dma_resv_init(k, 'src');
      const dst = dma_resv_init(k, 'dst');
      const gone = fence(t, 'gone');
      const old = fence(t, 'old');
      yield* addAll(t, src, [
        [gone, DMA_RESV_USAGE_KERNEL],
        [fence(t, 'r'), DMA_RESV_USAGE_READ],
        [fence(t, 'w'), DMA_RESV_USAGE_BOOKKEEP],
      ]);
      yield* dma_fence_signal(t, gone);
      yield* addAll(t, dst, [[old, DMA_RESV_USAGE_WRITE]]);
      yield* dma_resv_lock(t, dst, null);
      const r = yield* dma_resv_copy_fences(t, dst, src);
      yield* dma_resv_unlock(t, dst);
      yield* dma_resv_copy_fences(t, dst, src); // without dst's lock
      return { r, list: entries(dst), oldRefs: old.refcount };
    });
    expect(result).toEqual({ r: 0, list: ['r@READ', 'w@BOOKKEEP'], oldRefs: 1 });
    expect(k.findings.map((f) => f.code)).toEqual(['lock-not-held']);
  });
});

describe('dma_resv_wait_timeout and test_signaled ([R10])', () => {
  it('timeout 0 never blocks: 0 while a fence is pending, 1 once all have signalled', () => {
    const { result } = solo(function* (t, k) {
      const resv = dma_resv_init(k, 'resv');
      const f = fence(t, 'f');
      const empty = yield* dma_resv_wait_timeout(t, resv, DMA_RESV_USAGE_BOOKKEEP, false, 0);
      yield* addAll(t, resv, [[f, DMA_RESV_USAGE_WRITE]]);
      const pending = yield* dma_resv_wait_timeout(t, resv, DMA_RESV_USAGE_BOOKKEEP, false, 0);
      yield* dma_fence_signal(t, f);
      const done = yield* dma_resv_wait_timeout(t, resv, DMA_RESV_USAGE_BOOKKEEP, false, 0);
      return { empty, pending, done, refs: f.refcount };
    });
    expect(result).toEqual({ empty: 1, pending: 0, done: 1, refs: 2 });
  });

  it('-ERESTARTSYS when interruptible with a signal pending; an uninterruptible wait ignores it', () => {
    const { result } = solo(function* (t, k) {
      const resv = dma_resv_init(k, 'resv');
      yield* addAll(t, resv, [[fence(t, 'f'), DMA_RESV_USAGE_WRITE]]);
      (t as { sigpending?: boolean }).sigpending = true;
      const intr = yield* dma_resv_wait_timeout(t, resv, DMA_RESV_USAGE_WRITE, true, 10);
      const intr0 = yield* dma_resv_wait_timeout(t, resv, DMA_RESV_USAGE_WRITE, true, 0);
      const nointr0 = yield* dma_resv_wait_timeout(t, resv, DMA_RESV_USAGE_WRITE, false, 0);
      const invisible = yield* dma_resv_wait_timeout(t, resv, DMA_RESV_USAGE_KERNEL, true, 10);
      return { intr, intr0, nointr0, invisible, jiffies: k.jiffies };
    });
    expect(result).toEqual({ intr: -ERESTARTSYS, intr0: -ERESTARTSYS, nointr0: 0, invisible: 10, jiffies: 0 });
  });
});

// ---------------------------------------------------------------------------
// Programs: several threads, run by the explorer.

interface Built {
  readonly setup?: (t: Task) => KGen;
  readonly threads: readonly ((t: Task) => KGen)[];
  /** Runs alone after the threads: the outcome of the execution. */
  readonly outcome: () => unknown;
}

function program(name: string, threads: number, build: (k: Kernel) => Built): { p: Program; last: () => unknown } {
  let current: Built | null = null;
  const p: Program = {
    name,
    hash: '00000000',
    threads: Array.from({ length: threads }, (_, i) => `t${i}`),
    instantiate: (k) => {
      const b = build(k);
      current = b;
      return {
        *setup(t) {
          if (b.setup) yield* b.setup(t);
        },
        thread: (i, t) => (b.threads[i] as (t: Task) => KGen)(t),
        *teardown() {},
      };
    },
  };
  return { p, last: () => current?.outcome() };
}

/** Every distinct outcome (with the findings) over all interleavings, and whether the search finished. */
function outcomes(name: string, threads: number, build: (k: Kernel) => Built, strategy: Strategy = 'dfs') {
  const { p, last } = program(name, threads, build);
  const seen = new Set<string>();
  const r = explore(p, {
    strategy,
    stopOnFinding: false,
    minimise: false,
    onExecution: (e) => {
      if (e.status === 'abandoned') return;
      seen.add(JSON.stringify({ status: e.status, out: last(), findings: e.findings.map((f) => f.message) }));
    },
  });
  return { set: [...seen].sort(), complete: r.stats.complete };
}

describe('dma_resv_wait_timeout on the simulated clock ([R10])', () => {
  /** A waiter on `resv` and one timer thread per fence, signalling it after `at[i]` jiffies. */
  function timed(timeout: number | undefined, at: readonly number[], usage: DmaResvUsage = DMA_RESV_USAGE_BOOKKEEP) {
    return outcomes('wait-timeout', 1 + at.length, (k) => {
      const resv = dma_resv_init(k, 'resv');
      const fences: DmaFence[] = [];
      const out = { ret: Number.NaN, at: -1, signalled: [] as number[] };
      return {
        *setup(t) {
          for (let i = 0; i < at.length; i++) fences.push(fence(t, `f${i}`));
          yield* addAll(
            t,
            resv,
            fences.map((f) => [f, DMA_RESV_USAGE_WRITE] as const),
          );
        },
        threads: [
          function* (t) {
            out.ret = yield* dma_resv_wait_timeout(t, resv, usage, false, timeout);
            out.at = k.jiffies;
          },
          ...at.map(
            (j, i) =>
              function* (t: Task) {
                yield* schedule_timeout(t, j);
                yield* dma_fence_signal(t, fences[i] as DmaFence);
                out.signalled.push(k.jiffies);
              },
          ),
        ],
        outcome: () => out,
      };
    });
  }

  it('times out at the deadline while the signaller is still asleep: 0 at jiffy 5', () => {
    const r = timed(5, [10]);
    expect(r.complete).toBe(true);
    expect(r.set.map((s) => JSON.parse(s).out)).toEqual([{ ret: 0, at: 5, signalled: [10] }]);
  });

  it('returns the time left when the fence signals first: 7 at jiffy 3', () => {
    expect(timed(10, [3]).set.map((s) => JSON.parse(s).out)).toEqual([{ ret: 7, at: 3, signalled: [3] }]);
  });

  it('passes the remaining time on, fence by fence: 10 - 4 = 6 after fences at 2 and 4', () => {
    expect(timed(10, [2, 4]).set.map((s) => JSON.parse(s).out.ret)).toEqual([6]);
  });

  it('the second fence gets only what the first left: fences at 2 and 8, timeout 5 → 0 at jiffy 5', () => {
    expect(timed(5, [2, 8]).set.map((s) => JSON.parse(s).out)).toEqual([{ ret: 0, at: 5, signalled: [2, 8] }]);
  });

  it('without a timeout it waits for the fence; a fence the query does not see is not waited for', () => {
    const forever = timed(undefined, [10]).set.map((s) => JSON.parse(s).out);
    expect(forever).toEqual([{ ret: Number.MAX_SAFE_INTEGER, at: 10, signalled: [10] }]);
    const invisible = timed(5, [10], DMA_RESV_USAGE_KERNEL).set.map((s) => JSON.parse(s).out);
    expect(invisible).toEqual([{ ret: 5, at: 0, signalled: [10] }]);
  });
});

describe('dma_resv races, explored', () => {
  /** A reader (get_fences + test_signaled), a writer (add) and a signaller on one resv. */
  function readerWriterSignaller(k: Kernel): Built {
    const resv = dma_resv_init(k, 'resv');
    let a: DmaFence | null = null;
    let g: DmaFence | null = null;
    const out = { got: [] as string[], idle: false, refs: [] as number[] };
    return {
      *setup(t) {
        a = fence(t, 'a');
        yield* addAll(t, resv, [
          [a, DMA_RESV_USAGE_READ],
          [fence(t, 'b'), DMA_RESV_USAGE_BOOKKEEP],
        ]);
      },
      threads: [
        function* (t) {
          const got = yield* dma_resv_get_fences(t, resv, DMA_RESV_USAGE_BOOKKEEP);
          out.got = got.map((f) => f.name);
          for (const f of got) put(f);
          out.idle = yield* dma_resv_test_signaled(t, resv, DMA_RESV_USAGE_READ);
        },
        function* (t) {
          g = fence(t, 'g');
          yield* addAll(t, resv, [[g, DMA_RESV_USAGE_WRITE]]);
        },
        function* (t) {
          yield* dma_fence_signal(t, a as DmaFence);
        },
      ],
      outcome: () => ({ ...out, refs: [a?.refcount, g?.refcount], list: entries(resv) }),
    };
  }

  it('get_fences never returns a partial result twice: each fence once, references balanced', () => {
    const r = outcomes('get-fences-race', 3, readerWriterSignaller);
    expect(r.complete).toBe(true);
    const gots = new Set<string>();
    for (const s of r.set) {
      const o = JSON.parse(s).out as { got: string[]; refs: number[]; list: string[] };
      expect(new Set(o.got).size).toBe(o.got.length);
      // creator + one per list entry: every cursor and get_fences reference was put
      expect(o.refs).toEqual(['a', 'g'].map((n) => 1 + o.list.filter((e) => e.startsWith(`${n}@`)).length));
      gots.add(o.got.join(','));
    }
    // The writer's reserve reallocates, so its add drops a once signalled; a restart never duplicates.
    expect(gots).toEqual(new Set(['a,b', 'a,b,g', 'b', 'b,g']));
  });

  it('DPOR reaches exactly the outcomes plain DFS does (declarations are complete)', () => {
    const naive = outcomes('get-fences-race', 3, readerWriterSignaller, 'naive');
    const dpor = outcomes('get-fences-race', 3, readerWriterSignaller, 'dfs');
    expect(naive.complete && dpor.complete).toBe(true);
    expect(dpor.set).toEqual(naive.set);
  });

  /** One lockless query against a signaller (and a writer): its result is the outcome. */
  function queryRace(query: (t: Task, resv: DmaResv) => KGen<unknown>, writer: boolean) {
    return (k: Kernel): Built => {
      const resv = dma_resv_init(k, 'resv');
      let a: DmaFence | null = null;
      const out = { result: null as unknown };
      return {
        *setup(t) {
          a = fence(t, 'a');
          yield* addAll(t, resv, [[a, DMA_RESV_USAGE_WRITE]]);
        },
        threads: [
          function* (t) {
            out.result = yield* query(t, resv);
          },
          function* (t) {
            yield* dma_fence_signal(t, a as DmaFence);
          },
          ...(writer
            ? [
                function* (t: Task) {
                  yield* addAll(t, resv, [[fence(t, 'g'), DMA_RESV_USAGE_READ]]);
                },
              ]
            : []),
        ],
        outcome: () => out,
      };
    };
  }

  const QUERIES: readonly (readonly [string, (t: Task, resv: DmaResv) => KGen<unknown>])[] = [
    ['test_signaled', (t, resv) => dma_resv_test_signaled(t, resv, DMA_RESV_USAGE_WRITE)],
    ['wait_timeout(0)', (t, resv) => dma_resv_wait_timeout(t, resv, DMA_RESV_USAGE_WRITE, false, 0)],
    ['the unlocked walk', (t, resv) => unlockedWalk(t, resv, DMA_RESV_USAGE_BOOKKEEP)],
    [
      'get_fences',
      function* (t, resv) {
        return (yield* dma_resv_get_fences(t, resv, DMA_RESV_USAGE_BOOKKEEP)).map((f) => f.name);
      },
    ],
  ];

  for (const [name, query] of QUERIES) {
    for (const writer of [false, true]) {
      it(`${name} racing with a signal${writer ? ' and an add' : ''}: DPOR reaches exactly the outcomes plain DFS does`, () => {
        const n = writer ? 3 : 2;
        const naive = outcomes(`query-race ${name}`, n, queryRace(query, writer), 'naive');
        const dpor = outcomes(`query-race ${name}`, n, queryRace(query, writer), 'dfs');
        expect(naive.complete && dpor.complete).toBe(true);
        expect(naive.set.length).toBeGreaterThan(1);
        expect(dpor.set).toEqual(naive.set);
      });
    }
  }

  /** A locked writer that reallocates (dropping signalled entries), a signaller and a wait_timeout(0) reader. */
  function reallocRace(k: Kernel): Built {
    const resv = dma_resv_init(k, 'resv');
    const fs: DmaFence[] = [];
    const out = { walk: [] as string[], waited: 0 };
    return {
      *setup(t) {
        for (const n of ['a', 'b', 'c', 'd']) fs.push(fence(t, n));
        yield* addAll(
          t,
          resv,
          fs.map((f) => [f, DMA_RESV_USAGE_READ] as const),
        );
      },
      threads: [
        function* (t) {
          yield* dma_resv_lock(t, resv, null);
          dma_resv_reserve_fences(t, resv, 1);
          yield* dma_resv_add_fence(t, resv, fence(t, 'e'), DMA_RESV_USAGE_KERNEL);
          const cursor = dma_resv_iter_begin(resv, DMA_RESV_USAGE_BOOKKEEP);
          for (const f of dma_resv_for_each_fence(t, cursor)) out.walk.push(f.name);
          yield* dma_resv_unlock(t, resv);
        },
        function* (t) {
          yield* dma_fence_signal(t, fs[0] as DmaFence);
          yield* dma_fence_signal(t, fs[2] as DmaFence);
        },
        function* (t) {
          out.waited = yield* dma_resv_wait_timeout(t, resv, DMA_RESV_USAGE_WRITE, false, 0);
        },
      ],
      outcome: () => ({ ...out, refs: fs.map((f) => f.refcount) }),
    };
  }

  it('reallocation racing with signals: DPOR reaches exactly the outcomes plain DFS does', () => {
    const naive = outcomes('realloc-race', 3, reallocRace, 'naive');
    const dpor = outcomes('realloc-race', 3, reallocRace, 'dfs');
    expect(naive.complete && dpor.complete).toBe(true);
    expect(dpor.set).toEqual(naive.set);
    // The drop depends on which signals came first: several list shapes are reachable.
    expect(new Set(dpor.set.map((s) => JSON.parse(s).out.walk.join(','))).size).toBeGreaterThan(1);
  });

  /** copy_fences from a source another thread is adding to, and a wait on the destination. */
  function copyRace(k: Kernel): Built {
    const src = dma_resv_init(k, 'src');
    const dst = dma_resv_init(k, 'dst');
    const out = { copied: [] as string[], waited: 0 };
    let a: DmaFence | null = null;
    return {
      *setup(t) {
        a = fence(t, 'a');
        yield* addAll(t, src, [[a, DMA_RESV_USAGE_READ]]);
      },
      threads: [
        function* (t) {
          yield* dma_resv_lock(t, dst, null);
          yield* dma_resv_copy_fences(t, dst, src);
          out.copied = entries(dst);
          yield* dma_resv_unlock(t, dst);
        },
        function* (t) {
          yield* addAll(t, src, [[fence(t, 'n'), DMA_RESV_USAGE_KERNEL]]);
          yield* dma_fence_signal(t, a as DmaFence);
        },
        function* (t) {
          out.waited = yield* dma_resv_wait_timeout(t, dst, DMA_RESV_USAGE_BOOKKEEP, false, 0);
        },
      ],
      outcome: () => ({ ...out, refs: a?.refcount }),
    };
  }

  it('copy_fences racing with a writer: DPOR reaches exactly the outcomes plain DFS does', () => {
    const naive = outcomes('copy-race', 3, copyRace, 'naive');
    const dpor = outcomes('copy-race', 3, copyRace, 'dfs');
    expect(naive.complete && dpor.complete).toBe(true);
    expect(dpor.set).toEqual(naive.set);
  });
});
