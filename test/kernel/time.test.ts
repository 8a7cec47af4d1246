/** The simulated clock: time passes only when every thread is blocked. */
import { describe, expect, it } from 'vitest';
import { runExecution } from '../../src/explorer/execution.ts';
import type { Program } from '../../src/explorer/program.ts';
import { Replay } from '../../src/explorer/replay.ts';
import type { Kernel } from '../../src/kernel/kernel.ts';
import type { KGen, Task } from '../../src/kernel/sched.ts';
import { schedule_timeout } from '../../src/kernel/time.ts';

function program(threads: ((t: Task, k: Kernel) => KGen)[]): Program {
  return {
    name: 'clock',
    hash: '00000000',
    threads: threads.map((_, i) => `t${i}`),
    instantiate: (k) => ({
      *setup() {},
      thread: (i, t) => (threads[i] as (t: Task, k: Kernel) => KGen)(t, k),
      *teardown() {},
    }),
  };
}

describe('simulated clock', () => {
  it('a sleep ends at its deadline; the clock jumps straight there', () => {
    const seen: number[] = [];
    const r = runExecution(
      program([
        function* (t, k) {
          yield* schedule_timeout(t, 5);
          seen.push(k.jiffies);
          yield* schedule_timeout(t, 3);
          seen.push(k.jiffies);
        },
      ]),
      new Replay([0, 0]),
    );
    expect(r.status).toBe('complete');
    expect(seen).toEqual([5, 8]);
  });

  it('the earliest deadline wakes first', () => {
    const order: string[] = [];
    runExecution(
      program([
        function* (t) {
          yield* schedule_timeout(t, 10);
          order.push('slow');
        },
        function* (t) {
          yield* schedule_timeout(t, 2);
          order.push('fast');
        },
      ]),
      new Replay([1, 0]),
      {},
    );
    expect(order).toEqual(['fast', 'slow']);
  });
});
