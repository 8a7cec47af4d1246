/**
 * Sleeping on the simulated clock: `schedule_timeout()` and `msleep()`.
 *
 * The clock (`Kernel.jiffies`) moves only when every unfinished thread is
 * blocked and one of them waits with a deadline; it then jumps to the earliest
 * deadline (explorer/execution.ts). A timed wait is a step whose `deadline`
 * is set: it becomes runnable when its blocker is ready or the clock reaches
 * the deadline, whichever comes first.
 *
 * Models: kernel/time/timer.c (schedule_timeout), kernel/time/sleep_timeout.c
 */
import { type KGen, kfn, type Step, type Task } from './sched.ts';

/** A blocker that is never ready: the step waits for its deadline only. */
const NEVER = { ready: () => false };

/** Declares a timed wait: runnable when `blocker` is ready or at `deadline` (absolute jiffies). */
export function timedWait(s: Step, deadline: number): Step {
  s.deadline = deadline;
  return s;
}

/** `schedule_timeout_uninterruptible()`: sleeps `timeout` jiffies; returns 0. */
export const schedule_timeout = kfn('schedule_timeout', function* (t: Task, timeout: number): KGen<number> {
  const deadline = t.k.jiffies + Math.max(0, timeout);
  yield timedWait(t.at('schedule_timeout', 'wait', t.k.clock, NEVER), deadline);
  return 0;
});

/** `msleep()`. */
export function msleep(t: Task, ms: number): KGen<number> {
  return schedule_timeout(t, Math.ceil((ms * t.k.hz) / 1000));
}
