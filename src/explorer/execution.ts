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

export type ExecStatus = 'complete' | 'deadlock' | 'abandoned' | 'setup-failed' | 'step-limit';

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

function stepOnce(k: Kernel, t: Task, observer: StepObserver | undefined): void {
  if (observer) observer.beforeStep(k, t);
  k.step++;
  const r = (t.gen as KGen).next();
  if (r.done) t.done = true;
  if (observer) observer.afterStep(k, t);
}

function prime(t: Task, gen: KGen): void {
  t.gen = gen;
  const r = gen.next();
  if (r.done) t.done = true;
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

/**
 * Runs one task alone to its end: `blocked` when it cannot go on (the rest is
 * stuck), `step-limit` when it ran more than `maxSteps` steps — a limit of
 * the search, not a deadlock of the kernel, so not reported as one.
 */
function runAlone(
  k: Kernel,
  t: Task,
  gen: KGen,
  observer: StepObserver | undefined,
  maxSteps: number,
): 'done' | 'blocked' | 'step-limit' {
  prime(t, gen);
  let n = 0;
  while (!t.done) {
    if (!runnable(t) && !(advanceClock(k, [t]) && runnable(t))) return 'blocked';
    if (++n > maxSteps) return 'step-limit';
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
  const finish = (status: ExecStatus): ExecResult => {
    // Lockdep edges this execution added can be replayed from its token.
    if (k.newEdges.length > 0) {
      const token = encodeToken(program.hash, schedule);
      for (const e of k.newEdges) e.token = token;
    }
    return finished(status);
  };
  const finished = (status: ExecStatus): ExecResult => ({
    status,
    findings: k.findings,
    schedule,
    steps: k.step,
    preemptions,
    switches,
    kernel: k,
  });

  const setup = k.newTask('setup');
  const set = runAlone(k, setup, world.setup(setup), observer, maxSteps);
  if (set === 'step-limit') return finish('step-limit');
  if (set === 'blocked') {
    reportDeadlock(k, [setup]);
    return finish('setup-failed');
  }
  if (k.findings.length > 0) return finish('setup-failed');

  const threads: Task[] = [];
  for (let i = 0; i < program.threads.length; i++) {
    const t = k.newTask(program.threads[i] as string);
    threads.push(t);
  }
  for (let i = 0; i < threads.length; i++) {
    const t = threads[i] as Task;
    prime(t, world.thread(i, t));
  }

  const state = { threads, depth: 0, last: -1 };
  const n = threads.length;
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
      source.finish?.(state);
      return finish('step-limit');
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

  source.finish?.(state);
  const down = k.newTask('teardown');
  const tore = runAlone(k, down, world.teardown(down), observer, maxSteps);
  if (tore === 'step-limit') return finish('step-limit');
  if (tore === 'blocked') {
    reportDeadlock(k, [down]);
    return finish('deadlock');
  }
  return finish('complete');
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
