/**
 * Runs one execution of a program under a {@link ChoiceSource}: setup alone,
 * then the threads interleaved one step at a time, then teardown alone.
 *
 * This is the explorer's hot path: per step it computes the runnable set,
 * asks the source for a thread, and resumes that thread's generator once.
 */
import type { Finding } from '../checkers/finding.ts';
import type { LockGraph } from '../checkers/lockdep.ts';
import { heldInfo } from '../checkers/lockdep.ts';
import { Kernel, type KernelConfig, type StepObserver } from '../kernel/kernel.ts';
import type { Lock } from '../kernel/locking.ts';
import { type KGen, runnable, type Task } from '../kernel/sched.ts';
import type { Program } from './program.ts';
import { encodeToken } from './token.ts';

export type ExecStatus = 'complete' | 'deadlock' | 'abandoned' | 'setup-failed' | 'step-limit' | 'driver-error';

/**
 * A thread that ran away: its op threw (`driver-error`: a bug in a driver
 * module, or in the model, never a finding about the modelled kernel) or it
 * was still running at the step bound (`step-limit`: an op that yields for
 * ever, or a scenario whose executions are longer than the bound), or
 * (`stall`, seen by the command line's watchdog) it stopped making steps: an
 * op that loops without yielding.
 */
export interface Runaway {
  readonly kind: 'driver-error' | 'step-limit' | 'stall';
  /** The thread (`setup` and `teardown` included) and the op it was running ("x.go"). */
  readonly thread: string;
  readonly op: string;
  /** Steps of the execution so far. */
  readonly steps: number;
  /** What was thrown (its message), or why the run stopped. */
  readonly message: string;
  /** The thrown error's stack (the driver's own), or null. */
  readonly stack: string | null;
  /** The kernel call stack of the thread when it ran away, outermost first. */
  readonly kstack: readonly string[];
}

/** What a source sees when asked for the next thread. */
export interface ExecState {
  readonly threads: readonly Task[];
  /** Number of thread steps scheduled so far in this execution. */
  readonly depth: number;
  /** Index of the thread that ran the previous step, or -1. */
  readonly last: number;
}

/** A source of scheduling choices: depth-first, random, replay, bounded. */
export interface ChoiceSource {
  /**
   * Picks a thread (an index) among the runnable ones (`enabled`, a bitmask).
   * Returns -1 to abandon the execution (it is redundant).
   */
  choose(x: ExecState, enabled: number): number;
  /** The interleaved part of the execution ended (all done, deadlock, step limit or abandoned). */
  finish?(x: ExecState): void;
}

export interface ExecResult {
  readonly status: ExecStatus;
  readonly findings: readonly Finding[];
  /** Thread index of every scheduled step, in order (the replay token's content). */
  readonly schedule: readonly number[];
  /** Steps executed, setup and teardown included. */
  readonly steps: number;
  /** Context switches away from a thread that could have gone on. */
  readonly preemptions: number;
  /** Changes of the running thread. */
  readonly switches: number;
  readonly kernel: Kernel;
  /** Set with status `driver-error` and `step-limit`: which thread ran away, and how. */
  readonly runaway?: Runaway;
}

export interface ExecOptions {
  readonly config?: KernelConfig;
  readonly observer?: StepObserver;
  /** Bound on thread steps per execution (a runaway scenario stops here). */
  readonly maxSteps?: number;
  /** Lockdep's graph, shared by the executions of one exploration (default: a fresh one). */
  readonly lockGraph?: LockGraph;
  /** This execution's number in the exploration (lockdep edges remember it). */
  readonly execution?: number;
}

const DEFAULT_MAX_STEPS = 100_000;

/**
 * The watchdog's view of a search running in another thread (the command
 * line's supervised check of a scenario that names a driver module): before
 * every step, [0] counts steps, [1] is the running task's index (0 setup,
 * 1… the threads, then teardown) and [2] its op's index. A plain shared
 * memory store per step; null (the default) costs one test.
 */
export const heartbeat: { beat: Int32Array | null } = { beat: null };

function beat(b: Int32Array, t: Task): void {
  b[0] = ((b[0] as number) + 1) | 0;
  b[1] = t.idx;
  b[2] = t.opIndex;
}

/** Thrown by a thread's generator: carried out of the step loop to the execution's result. */
class ThreadThrew {
  constructor(
    readonly task: Task,
    readonly error: unknown,
  ) {}
}

function stepOnce(k: Kernel, t: Task, observer: StepObserver | undefined): void {
  if (observer) observer.beforeStep(k, t);
  k.step++;
  if (heartbeat.beat !== null) beat(heartbeat.beat, t);
  let r: IteratorResult<unknown, unknown>;
  try {
    r = (t.gen as KGen).next();
  } catch (e) {
    throw new ThreadThrew(t, e);
  }
  if (r.done) t.done = true;
  if (observer) observer.afterStep(k, t);
}

function prime(t: Task, gen: KGen): void {
  t.gen = gen;
  if (heartbeat.beat !== null) beat(heartbeat.beat, t);
  let r: IteratorResult<unknown, unknown>;
  try {
    r = gen.next();
  } catch (e) {
    throw new ThreadThrew(t, e);
  }
  if (r.done) t.done = true;
}

function runawayOf(k: Kernel, t: Task, kind: Runaway['kind'], message: string, stack: string | null): Runaway {
  return { kind, thread: t.name, op: t.op, steps: k.step, message, stack, kstack: t.stack.slice() };
}

/** The runaway record of what a thread threw. */
function thrown(k: Kernel, x: ThreadThrew): Runaway {
  const e = x.error;
  const message = e instanceof Error ? `${e.name}: ${e.message}` : `threw ${String(e)}`;
  return runawayOf(k, x.task, 'driver-error', message, e instanceof Error ? (e.stack ?? null) : null);
}

/**
 * Nothing can run: moves the simulated clock to the earliest deadline of a
 * blocked thread's timed wait. False when no thread waits with a deadline.
 * Simplification: time passes only when every thread is blocked, so a timeout
 * never fires while some thread could still make progress.
 */
function advanceClock(k: Kernel, blocked: readonly Task[]): boolean {
  let next = Number.POSITIVE_INFINITY;
  for (const t of blocked) if (!t.done && t.pending.deadline < next) next = t.pending.deadline;
  if (next === Number.POSITIVE_INFINITY) return false;
  if (next > k.jiffies) k.jiffies = next;
  return true;
}

/** Runs one task alone to its end: 'done', 'blocked' (the rest is stuck) or 'limit' (the step bound). */
function runAlone(
  k: Kernel,
  t: Task,
  gen: KGen,
  observer: StepObserver | undefined,
  maxSteps: number,
): 'done' | 'blocked' | 'limit' {
  prime(t, gen);
  let n = 0;
  while (!t.done) {
    if (!runnable(t) && !(advanceClock(k, [t]) && runnable(t))) return 'blocked';
    if (++n > maxSteps) return 'limit';
    stepOnce(k, t, observer);
  }
  return 'done';
}

export function runExecution(program: Program, source: ChoiceSource, opts: ExecOptions = {}): ExecResult {
  const k = new Kernel(opts.config, opts.lockGraph);
  k.execution = opts.execution ?? 0;
  const observer = opts.observer;
  const maxSteps = opts.maxSteps ?? DEFAULT_MAX_STEPS;
  const world = program.instantiate(k);
  const schedule: number[] = [];
  let preemptions = 0;
  let switches = 0;
  const threads: Task[] = [];
  const state = { threads, depth: 0, last: -1 };
  /** Whether the threads are being interleaved (the source expects its `finish`). */
  let interleaving = false;
  const finish = (status: ExecStatus, runaway?: Runaway): ExecResult => {
    // Lockdep edges this execution added can be replayed from its token.
    if (k.newEdges.length > 0) {
      const token = encodeToken(program.hash, schedule);
      for (const e of k.newEdges) e.token = token;
    }
    return finished(status, runaway);
  };
  const finished = (status: ExecStatus, runaway?: Runaway): ExecResult => ({
    status,
    findings: k.findings,
    schedule,
    steps: k.step,
    preemptions,
    switches,
    kernel: k,
    ...(runaway ? { runaway } : {}),
  });
  try {
    return interleave();
  } catch (e) {
    if (!(e instanceof ThreadThrew)) throw e;
    if (interleaving) source.finish?.(state);
    return finish('driver-error', thrown(k, e));
  }

  function interleave(): ExecResult {
    const setup = k.newTask('setup');
    const set = runAlone(k, setup, world.setup(setup), observer, maxSteps);
    if (set === 'limit') return finish('step-limit', limitOf(k, setup, maxSteps));
    if (set === 'blocked') {
      reportDeadlock(k, [setup]);
      return finish('setup-failed');
    }
    if (k.findings.length > 0) return finish('setup-failed');

    for (let i = 0; i < program.threads.length; i++) {
      const t = k.newTask(program.threads[i] as string);
      threads.push(t);
    }
    for (let i = 0; i < threads.length; i++) {
      const t = threads[i] as Task;
      prime(t, world.thread(i, t));
    }

    const n = threads.length;
    interleaving = true;
    for (;;) {
      let enabled = 0;
      let unfinished = 0;
      for (let i = 0; i < n; i++) {
        const t = threads[i] as Task;
        if (t.done) continue;
        unfinished++;
        if (runnable(t)) enabled |= 1 << i;
      }
      if (enabled === 0) {
        if (unfinished === 0) break;
        if (advanceClock(k, threads)) continue;
        source.finish?.(state);
        reportDeadlock(
          k,
          threads.filter((t) => !t.done),
        );
        return finish('deadlock');
      }
      if (state.depth >= maxSteps) {
        // No source.finish: the search stops at a runaway execution (and a race analysis over this many steps would be its slowest part).
        return finish('step-limit', limitOf(k, longest(threads, schedule), maxSteps));
      }
      const c = source.choose(state, enabled);
      if (c < 0) {
        source.finish?.(state);
        return finish('abandoned');
      }
      if (state.last >= 0 && c !== state.last) {
        switches++;
        if (enabled & (1 << state.last)) preemptions++;
      }
      schedule.push(c);
      state.depth++;
      state.last = c;
      stepOnce(k, threads[c] as Task, observer);
    }

    interleaving = false;
    source.finish?.(state);
    const down = k.newTask('teardown');
    const td = runAlone(k, down, world.teardown(down), observer, maxSteps);
    if (td === 'limit') return finish('step-limit', limitOf(k, down, maxSteps));
    if (td === 'blocked') {
      reportDeadlock(k, [down]);
      return finish('deadlock');
    }
    return finish('complete');
  }
}

/** The step-bound record: the thread that was still running. */
function limitOf(k: Kernel, t: Task, maxSteps: number): Runaway {
  return runawayOf(
    k,
    t,
    'step-limit',
    `still running after ${maxSteps} steps (an op that never returns, or an execution longer than the step bound)`,
    null,
  );
}

/** The unfinished thread that ran the most steps of `schedule`. */
function longest(threads: readonly Task[], schedule: readonly number[]): Task {
  const counts = new Array<number>(threads.length).fill(0);
  for (const c of schedule) counts[c] = (counts[c] ?? 0) + 1;
  let best = -1;
  for (let i = 0; i < threads.length; i++) {
    if ((threads[i] as Task).done) continue;
    if (best < 0 || (counts[i] as number) > (counts[best] as number)) best = i;
  }
  return threads[Math.max(best, 0)] as Task;
}

/** Every unfinished thread is blocked: report who waits for what, held by whom. */
function reportDeadlock(k: Kernel, blocked: readonly Task[]): void {
  const waiters = blocked.map((t) => {
    const s = t.pending;
    const obj = s.obj;
    const holder = obj && 'holderName' in obj ? (obj as Lock).holderName() : null;
    return {
      thread: t.name,
      fn: s.fn,
      stack: t.stack.slice(),
      waitsFor: obj?.name ?? '?',
      holder,
      held: heldInfo(t),
    };
  });
  const first = blocked[0] as Task;
  k.report(first, {
    code: 'deadlock',
    kind: 'all-blocked',
    waiters,
    rules: ['I16'],
    message: `deadlock: ${waiters.map((w) => `${w.thread} waits for ${w.waitsFor}${w.holder ? ` held by ${w.holder}` : ''}`).join('; ')}`,
  });
}
