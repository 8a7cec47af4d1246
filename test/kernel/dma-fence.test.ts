/**
 * dma_fence semantics ([F1]–[F9], [L11]). The kernel's own selftests are ported in
 * st-dma-fence.test.ts; these cover what they do not: driver ops, references,
 * ordering, timestamps and the wait variants.
 */
import { describe, expect, it } from 'vitest';
import { type ExecResult, runExecution } from '../../src/explorer/execution.ts';
import type { Program } from '../../src/explorer/program.ts';
import {
  type DmaFence,
  type DmaFenceCb,
  dma_fence_add_callback,
  dma_fence_allocate_private_stub,
  dma_fence_begin_signalling,
  dma_fence_check_and_signal,
  dma_fence_driver_name,
  dma_fence_enable_signaling,
  dma_fence_get,
  dma_fence_get_rcu,
  dma_fence_get_status,
  dma_fence_get_stub,
  dma_fence_init,
  dma_fence_is_later,
  dma_fence_is_signaled,
  dma_fence_later,
  dma_fence_put,
  dma_fence_remove_callback,
  dma_fence_set_deadline,
  dma_fence_set_error,
  dma_fence_signal,
  dma_fence_signal_timestamp,
  dma_fence_test_signaled_flag,
  dma_fence_timestamp,
  dma_fence_wait,
  dma_fence_wait_any_timeout,
  dma_fence_wait_timeout,
  MAX_SCHEDULE_TIMEOUT,
} from '../../src/kernel/dma-fence.ts';
import { EDEADLK, EINVAL, EIO, ENOENT, ERESTARTSYS } from '../../src/kernel/errno.ts';
import { Kernel } from '../../src/kernel/kernel.ts';
import type { KGen, Task } from '../../src/kernel/sched.ts';
import { schedule_timeout } from '../../src/kernel/time.ts';
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

/** Runs `threads` under one schedule (lowest runnable thread first), on the simulated clock. */
function run(threads: ((t: Task) => KGen)[]): ExecResult {
  const program: Program = {
    name: 'dma-fence',
    hash: '00000000',
    threads: threads.map((_, i) => `t${i}`),
    instantiate: () => ({
      *setup() {},
      thread: (i, t) => (threads[i] as (t: Task) => KGen)(t),
      *teardown() {},
    }),
  };
  return runExecution(program, { choose: (_x, enabled) => 31 - Math.clz32(enabled & -enabled) });
}

const codes = (k: Kernel) => k.findings.map((f) => f.code);

describe('dma_fence: enable_signaling and ops.signaled ([F4], [F5])', () => {
  it('enable_signaling returning false signals at once: add_callback gets -ENOENT; the op runs once', () => {
    let calls = 0;
    const { result, k } = solo(function* (t) {
      const f = dma_fence_init(t, 'hw', { ...ops, enable_signaling: () => ++calls < 0 }, 1, 1);
      const cb: DmaFenceCb = { func: null, queued: false };
      let ran = false;
      const r = yield* dma_fence_add_callback(t, f, cb, () => (ran = true));
      yield* dma_fence_enable_signaling(t, f);
      return [r, f.signaled, f.enableSignal, ran, cb.queued];
    });
    expect(result).toEqual([-ENOENT, true, true, false, false]);
    expect(calls).toBe(1);
    expect(k.findings).toEqual([]);
  });

  it('enable_signaling is called once, by the first of enable / add_callback / wait', () => {
    let calls = 0;
    const { result } = solo(function* (t) {
      const f = dma_fence_init(t, 'hw', { ...ops, enable_signaling: () => ++calls > 0 }, 1, 1);
      const before = f.enableSignal;
      const w = yield* dma_fence_wait_timeout(t, f, false, 0);
      yield* dma_fence_add_callback(t, f, { func: null, queued: false }, () => {});
      yield* dma_fence_enable_signaling(t, f);
      return [before, w, f.enableSignal, f.signaled];
    });
    expect(result).toEqual([false, 0, true, false]);
    expect(calls).toBe(1);
  });

  it('is_signaled asks ops.signaled and signals when it says so, without enabling', () => {
    let hwDone = false;
    const { result } = solo(function* (t) {
      const f = dma_fence_init(t, 'hw', { ...ops, signaled: () => hwDone }, 1, 1);
      const a = yield* dma_fence_is_signaled(t, f);
      hwDone = true;
      const flagBefore = dma_fence_test_signaled_flag(f);
      const b = yield* dma_fence_is_signaled(t, f);
      return [a, flagBefore, b, f.signaled, f.enableSignal, f.timestamp !== null];
    });
    expect(result).toEqual([false, false, true, true, false, true]);
  });

  it('a step that calls a driver op function, or runs callbacks, is global; plain steps are not', () => {
    const k = new Kernel();
    const t = k.newTask('t');
    const plain = dma_fence_init(t, 'plain', ops, 1, 1);
    const hw = dma_fence_init(t, 'hw', { ...ops, enable_signaling: () => true, release: () => {} }, 2, 1);
    const step = (g: Generator<unknown>) => {
      g.next();
      return t.pending;
    };
    expect(step(dma_fence_enable_signaling(t, plain)).global).toBe(false);
    expect(step(dma_fence_enable_signaling(t, hw)).global).toBe(true);
    expect(step(dma_fence_signal(t, plain)).global).toBe(false);
    plain.cbs.push({ func: () => {}, queued: true });
    expect(step(dma_fence_signal(t, plain)).global).toBe(true);
    expect(step(dma_fence_put(t, hw)).global).toBe(true);
    hw.refcount = 2;
    t.pending.refresh?.(t.pending);
    expect(t.pending.global).toBe(false);
  });
});

describe('dma_fence: references, release, stubs ([F8])', () => {
  it('the last put calls ops.release once; get_rcu then returns null', () => {
    let released = 0;
    const { result, k } = solo(function* (t) {
      const f = dma_fence_init(t, 'f', { ...ops, release: () => void released++ }, 1, 1);
      yield* dma_fence_get(t, f);
      yield* dma_fence_put(t, f);
      const mid = released;
      const ref = yield* dma_fence_get_rcu(t, f);
      yield* dma_fence_put(t, f);
      yield* dma_fence_put(t, f);
      const gone = yield* dma_fence_get_rcu(t, f);
      return [mid, ref === f, f.refcount, gone];
    });
    expect(result).toEqual([0, true, 0, null]);
    expect(released).toBe(1);
    expect(k.findings).toEqual([]);
  });

  it('a put below zero is a refcount underflow; a use after release is use-after-release ([I7])', () => {
    const { k } = solo(function* (t) {
      const f = fence(t);
      yield* dma_fence_put(t, f);
      yield* dma_fence_put(t, f);
      yield* dma_fence_signal(t, f);
    });
    expect(k.findings.map((f) => [f.code, 'what' in f ? f.what : null])).toEqual([
      ['refcount', 'underflow'],
      ['refcount', 'use-after-release'],
    ]);
  });

  it('releasing a fence with callbacks queued WARNs, sets -EDEADLK and signals ([F6])', () => {
    const { result, k } = solo(function* (t) {
      const f = fence(t);
      let ran = false;
      yield* dma_fence_add_callback(t, f, { func: null, queued: false }, () => (ran = true));
      yield* dma_fence_put(t, f);
      return [ran, f.signaled, dma_fence_get_status(f)];
    });
    expect(result).toEqual([true, true, -EDEADLK]);
    expect(codes(k)).toEqual(['api-misuse']);
    expect(k.findings[0]?.message).toMatch(/released with pending signals/);
  });

  it('the stub is one machine-wide signalled fence; a private stub is new, with the given timestamp', () => {
    const { result } = solo(function* (t) {
      const a = yield* dma_fence_get_stub(t);
      const b = yield* dma_fence_get_stub(t);
      const p = dma_fence_allocate_private_stub(t, 42);
      return [a === b, a.signaled, a.refcount, p === a, p.signaled, dma_fence_timestamp(t, p)];
    });
    expect(result).toEqual([true, true, 3, false, true, 42]);
  });

  it('ops are detached on signal only without a release or wait op (2026)', () => {
    const { result } = solo(function* (t) {
      const bare = fence(t);
      const withRelease = dma_fence_init(t, 'r', { ...ops, release: true }, 2, 1);
      const withWait = dma_fence_init(t, 'w', { ...ops, wait: true }, 3, 1);
      const name = dma_fence_driver_name(bare);
      for (const f of [bare, withRelease, withWait]) yield* dma_fence_signal(t, f);
      return [name, bare.ops, withRelease.ops !== null, withWait.ops !== null, dma_fence_driver_name(bare)];
    });
    expect(result).toEqual(['test', null, true, true, 'detached-driver']);
  });
});

describe('dma_fence: ordering, timestamps, deadlines ([F1], [F9])', () => {
  it('is_later compares the lower 32 bits with wraparound, or 64 bits when asked', () => {
    const k = new Kernel();
    const t = k.newTask('t');
    const a = dma_fence_init(t, 'a', ops, 7, 0xffff_ffff);
    const b = dma_fence_init(t, 'b', ops, 7, 0x1_0000_0001);
    const a64 = dma_fence_init(t, 'a64', { ...ops, use_64bit_seqno: true }, 8, 0xffff_ffff);
    const b64 = dma_fence_init(t, 'b64', { ...ops, use_64bit_seqno: true }, 8, 0x1_0000_0001);
    expect(dma_fence_is_later(t, b, a)).toBe(true);
    expect(dma_fence_is_later(t, a, b)).toBe(false);
    // 32-bit wraparound: 1 is "later" than 0xffffffff.
    const low = dma_fence_init(t, 'low', ops, 7, 1);
    expect(dma_fence_is_later(t, low, a)).toBe(true);
    expect(dma_fence_is_later(t, b64, a64)).toBe(true);
    const low64 = dma_fence_init(t, 'low64', { ...ops, use_64bit_seqno: true }, 8, 1);
    expect(dma_fence_is_later(t, low64, a64)).toBe(false);
    expect(codes(k)).toEqual([]);
    expect(dma_fence_is_later(t, a, a64)).toBe(false);
    expect(codes(k)).toEqual(['api-misuse']);
  });

  it('dma_fence_later returns the later fence, or null once it has signalled', () => {
    const { result } = solo(function* (t) {
      const a = dma_fence_init(t, 'a', ops, 5, 1);
      const b = dma_fence_init(t, 'b', ops, 5, 2);
      const first = yield* dma_fence_later(t, a, b);
      yield* dma_fence_signal(t, a);
      yield* dma_fence_signal(t, b);
      return [first === b, yield* dma_fence_later(t, a, b)];
    });
    expect(result).toEqual([true, null]);
  });

  it('the timestamp is the signal time; before signal dma_fence_timestamp WARNs; set_deadline has no effect', () => {
    const { result, k } = solo(function* (t) {
      const f = fence(t);
      const g = fence(t);
      dma_fence_timestamp(t, f);
      yield* dma_fence_set_deadline(t, f, 10);
      const after = [f.signaled, f.enableSignal, f.deadlineHint];
      yield* dma_fence_signal_timestamp(t, g, 17);
      return [...after, dma_fence_timestamp(t, g)];
    });
    expect(result).toEqual([false, false, 10, 17]);
    expect(codes(k)).toEqual(['api-misuse']);
  });
});

describe('dma_fence: waits on the simulated clock ([F7])', () => {
  it('a timed wait on a fence nobody signals times out at its deadline and returns 0', () => {
    let f: DmaFence | null = null;
    const seen: number[] = [];
    const r = run([
      function* (t) {
        f = fence(t);
        seen.push(yield* dma_fence_wait_timeout(t, f, false, 7));
        seen.push(t.k.jiffies);
      },
    ]);
    expect(r.status).toBe('complete');
    expect(seen).toEqual([0, 7]);
  });

  it('signalled in time: the jiffies left; already signalled: the whole timeout', () => {
    const seen: number[] = [];
    const shared: { f: DmaFence | null } = { f: null };
    const r = run([
      function* (t) {
        shared.f = fence(t);
        yield t.at('publish', 'write', shared.f);
        seen.push(yield* dma_fence_wait_timeout(t, shared.f, false, 10));
        seen.push(yield* dma_fence_wait_timeout(t, shared.f, false, 10));
      },
      function* (t) {
        yield* schedule_timeout(t, 3);
        yield* dma_fence_signal(t, shared.f as DmaFence);
      },
    ]);
    expect(r.status).toBe('complete');
    expect(seen).toEqual([7, 10]);
  });

  it('a negative timeout is -EINVAL with a WARN; MAX_SCHEDULE_TIMEOUT waits without limit', () => {
    const { result, k } = solo(function* (t) {
      const f = fence(t);
      const bad = yield* dma_fence_wait_timeout(t, f, false, -1);
      yield* dma_fence_signal(t, f);
      return [
        bad,
        yield* dma_fence_wait_timeout(t, f, false, MAX_SCHEDULE_TIMEOUT),
        yield* dma_fence_wait(t, f, false),
      ];
    });
    expect(result).toEqual([-EINVAL, MAX_SCHEDULE_TIMEOUT, 0]);
    expect(codes(k)).toEqual(['api-misuse']);
  });

  it('interruptible waits return -ERESTARTSYS with a signal pending; uninterruptible ones ignore it', () => {
    const seen: number[] = [];
    const r = run([
      function* (t) {
        t.sigpending = true;
        const f = fence(t);
        seen.push(yield* dma_fence_wait(t, f, true));
        seen.push(yield* dma_fence_wait_timeout(t, f, true, 5));
        seen.push(yield* dma_fence_wait_timeout(t, f, false, 5));
        yield* dma_fence_signal(t, f);
        // Signalled wins over the pending signal at entry.
        seen.push(yield* dma_fence_wait_timeout(t, f, true, 5));
      },
    ]);
    expect(r.status).toBe('complete');
    expect(seen).toEqual([-ERESTARTSYS, -ERESTARTSYS, 0, 5]);
  });

  it('ops.wait replaces the default wait', () => {
    const { result } = solo(function* (t) {
      const f = dma_fence_init(
        t,
        'w',
        {
          ...ops,
          *wait(_t, _f, _intr, timeout) {
            return timeout + 1000;
          },
        },
        1,
        1,
      );
      return [yield* dma_fence_wait_timeout(t, f, false, 3), f.enableSignal];
    });
    expect(result).toEqual([1003, true]);
  });

  it('wait_any: -EINVAL without fences; timeout 0 polls; otherwise the first to signal, or 0 on timeout', () => {
    const seen: unknown[] = [];
    const shared: DmaFence[] = [];
    const r = run([
      function* (t) {
        const a = fence(t);
        const b = fence(t);
        shared.push(a, b);
        yield t.at('publish', 'write', b);
        seen.push(yield* dma_fence_wait_any_timeout(t, [], false, 1));
        seen.push(yield* dma_fence_wait_any_timeout(t, [a, b], false, 0));
        seen.push(yield* dma_fence_wait_any_timeout(t, [a, b], false, 2));
        seen.push(t.k.jiffies);
        seen.push(yield* dma_fence_wait_any_timeout(t, [a, b], false, 20));
        seen.push(yield* dma_fence_wait_any_timeout(t, [a, b], false, 0));
        seen.push(yield* dma_fence_wait_any_timeout(t, [a, b], false, 20));
        t.sigpending = true;
        seen.push(yield* dma_fence_wait_any_timeout(t, [a], true, 20));
      },
      function* (t) {
        yield* schedule_timeout(t, 5);
        yield* dma_fence_signal(t, shared[1] as DmaFence);
      },
    ]);
    expect(r.status).toBe('complete');
    expect(seen).toEqual([
      { ret: -EINVAL, idx: -1 },
      { ret: 0, idx: -1 },
      { ret: 0, idx: -1 },
      2,
      { ret: 17, idx: 1 },
      { ret: 1, idx: 1 },
      { ret: 20, idx: 1 },
      { ret: -ERESTARTSYS, idx: -1 },
    ]);
    expect(codes(r.kernel)).toEqual(['api-misuse']);
  });
});
