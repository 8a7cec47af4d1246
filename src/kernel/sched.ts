/**
 * Simulated kernel threads and the steps they take.
 *
 * A modelled kernel thread (a {@link Task}, the model's `task_struct`) is a
 * generator. Before every piece of code that touches shared state it yields
 * its pending {@link Step}: which kernel function is about to run, which
 * objects it will touch and how (read / write / lock / unlock / wait / signal /
 * alloc / free). The explorer decides which thread's pending step runs next;
 * the code between two yields runs atomically.
 *
 * Rules every model function follows (the explorer's soundness depends on
 * them):
 * - yield a step *before* touching shared state, declaring every object the
 *   code up to the next yield reads or writes;
 * - state protected by a lock the caller holds needs no declaration of its own:
 *   the lock's own lock/unlock steps order every access to it (a caller that
 *   does not hold the lock is reported as `lock-not-held`);
 * - a step that blocks (a lock, a fence wait) names a {@link Blocker}: the
 *   thread is runnable only while the blocker says it is ready;
 * - never read shared state before a function's first yield to decide
 *   anything: for a thread's first op that code runs when the thread is
 *   created, before any thread has run.
 *
 * Models: include/linux/sched.h (task_struct, current)
 */
import type { Kernel } from './kernel.ts';

/** What a step does to the object it touches. */
export type AccessKind = 'read' | 'write' | 'lock' | 'unlock' | 'wait' | 'signal' | 'alloc' | 'free';

/** Kinds that only observe: two of them on the same object commute. */
export function isReadKind(kind: AccessKind): boolean {
  return kind === 'read' || kind === 'wait';
}

/** Something a thread can block on: a lock, a fence, an SRCU grace period. */
export interface Blocker {
  /** Whether the pending step of `t` can run now. */
  ready(t: Task, step: Step): boolean;
}

/** Whether the pending step of `t` can run now: its blocker is ready, or its timeout has fired. */
export function runnable(t: Task): boolean {
  const s = t.pending;
  return s.blocker === null || s.blocker.ready(t, s) || t.k.jiffies >= s.deadline;
}

/** Upper bound on declared accesses per step; more make the step global. */
export const MAX_ACCESSES = 16;

/**
 * The step a thread is about to take. One instance per task, reused: a task
 * has exactly one pending step at a time, so the hot path allocates nothing.
 */
export class Step {
  /** Kernel function that performs the access (what the trace prints). */
  fn = '';
  kind: AccessKind = 'read';
  /** The primary object (what the trace shows as touched). */
  obj: KObject | null = null;
  blocker: Blocker | null = null;
  /** Argument for the blocker: lock mode (0 = exclusive, 1 = shared). */
  mode = 0;
  /** Extra argument for the blocker (the ww_acquire_ctx of a ww_mutex_lock). */
  arg: unknown = null;
  /** Declared accesses, packed `objectId * 2 + (write ? 1 : 0)`. */
  readonly acc: Int32Array = new Int32Array(MAX_ACCESSES);
  nacc = 0;
  /** A step that may touch anything (e.g. runs arbitrary fence callbacks). */
  global = false;
  /** Depth of the task's call stack when the step was declared. */
  depth = 0;
  /**
   * For a timed wait: the jiffy at which the step becomes runnable even if
   * its blocker is not ready (the timeout fired). Infinity: no timeout.
   */
  deadline = Number.POSITIVE_INFINITY;
  /**
   * For a step whose accesses depend on shared state it declares (a fence
   * signal runs whatever callbacks are queued when it runs): recomputes the
   * declaration from the current state. The explorer calls it before every
   * dependence test, so the declaration is always the one of this state.
   */
  refresh: ((s: Step) => void) | null = null;

  /** Adds an access to the declaration. */
  touch(obj: KObject, kind: AccessKind): this {
    if (this.nacc === MAX_ACCESSES) {
      this.global = true;
      return this;
    }
    this.acc[this.nacc++] = obj.id * 2 + (isReadKind(kind) ? 0 : 1);
    return this;
  }
}

/** Whether two declared steps conflict (touch one object, at least one writes). */
export function dependent(a: Step, b: Step): boolean {
  if (a.refresh !== null) a.refresh(a);
  if (b.refresh !== null) b.refresh(b);
  if (a.global || b.global) return true;
  return accDependent(a.acc, a.nacc, b.acc, b.nacc);
}

/** {@link dependent} on packed access arrays (used by the explorer's stored copies). */
export function accDependent(a: Int32Array, na: number, b: Int32Array, nb: number): boolean {
  for (let i = 0; i < na; i++) {
    const x = a[i] as number;
    for (let j = 0; j < nb; j++) {
      const y = b[j] as number;
      if (x >> 1 === y >> 1 && ((x | y) & 1) === 1) return true;
    }
  }
  return false;
}

/** A modelled kernel code path: yields steps, returns a value. */
export type KGen<R = void> = Generator<Step, R, void>;

/** A held lock as lockdep records it. */
export interface HeldLock {
  readonly lock: import('./locking.ts').Lock;
  readonly mode: number;
  readonly step: number;
  readonly stack: readonly string[];
}

/** A modelled kernel thread (`task_struct`). */
export class Task {
  /** Kernel call stack, innermost last (function names). */
  readonly stack: string[] = [];
  /** Locks held, in acquisition order (lockdep's `held_locks`). */
  readonly held: HeldLock[] = [];
  /** Depth of `dma_fence_begin_signalling()` sections ([L11]). */
  signalling = 0;
  /** In direct reclaim (PF_MEMALLOC): allocations here do not reclaim again. */
  inReclaim = false;
  readonly pending: Step = new Step();
  gen: KGen | null = null;
  done = false;
  /** Thread-local counter used to name objects this thread creates. */
  created = 0;
  /** Work queued to run when the thread returns to user space (`task_work_run`), e.g. a deferred fput. */
  readonly deferred: ((t: Task) => KGen)[] = [];
  /** The scenario op being run, for traces ("kvm.access {page: 0}"). */
  op = '';
  /** Its index in the thread's op list (-1: none), for the watchdog of a stalled op. */
  opIndex = -1;
  /**
   * `signal_pending(current)`: a signal is queued for this thread. Interruptible
   * waits return `-ERESTARTSYS` while it is set ([F7]). Set by the test or
   * scenario that sends the signal; delivering a signal is not itself a step.
   */
  sigpending = false;

  constructor(
    readonly k: Kernel,
    readonly idx: number,
    readonly name: string,
  ) {}

  /**
   * Declares the next step; returns it for `yield`. A lock or unlock in
   * shared mode (`mode` 1) reads the lock: shared acquisitions and releases by
   * different threads commute.
   */
  at(fn: string, kind: AccessKind, obj: KObject, blocker: Blocker | null = null, mode = 0): Step {
    const s = this.pending;
    s.fn = fn;
    s.kind = kind;
    s.obj = obj;
    s.blocker = blocker;
    s.mode = mode;
    s.arg = null;
    s.nacc = 0;
    s.global = false;
    s.refresh = null;
    s.deadline = Number.POSITIVE_INFINITY;
    s.depth = this.stack.length;
    return s.touch(obj, mode === 1 && (kind === 'lock' || kind === 'unlock') ? 'read' : kind);
  }

  /** Whether this thread holds `lock` (in any mode). */
  holds(lock: import('./locking.ts').Lock): boolean {
    for (const h of this.held) if (h.lock === lock) return true;
    return false;
  }

  /** The innermost kernel function running. */
  get fn(): string {
    return this.stack[this.stack.length - 1] ?? this.name;
  }
}

/** Anything shared between threads: has an id for the explorer, a name for people. */
export abstract class KObject {
  // Declared, not class fields: every kind of object runs this constructor, and
  // defining fields on that many shapes from one place is V8's slow path.
  // Assigned in the order the fields had (name, then id).
  declare readonly name: string;
  declare readonly id: number;
  abstract readonly type: string;

  constructor(k: Kernel, name: string) {
    this.name = name;
    this.id = k.register(this);
  }

  /** State shown in traces; plain JSON. */
  snapshot(): Record<string, unknown> {
    return {};
  }
}

/** A shared object with no state of its own to show (a machine-wide summary the explorer tracks). */
export class SharedObject extends KObject {
  constructor(
    k: Kernel,
    name: string,
    readonly type: string,
  ) {
    super(k, name);
  }
}

/**
 * Wraps a model function so that it appears on the task's kernel call stack
 * under its kernel name while it runs (reports print these stacks).
 */
export function kfn<A extends unknown[], R>(
  name: string,
  body: (t: Task, ...args: A) => KGen<R>,
): (t: Task, ...args: A) => KGen<R> {
  const f = (t: Task, ...args: A): KGen<R> =>
    new KFrame(name, body as (t: Task, ...args: unknown[]) => KGen<R>, t, args) as unknown as KGen<R>;
  Object.defineProperty(f, 'name', { value: name });
  return f;
}

/**
 * The generator {@link kfn} returns, as a plain iterator: it behaves exactly
 * like `function* () { t.stack.push(name); const r = yield* body(t, ...args);
 * t.stack.pop(); return r; }` (the body starts at the first `next()`), but
 * resuming it is a method call instead of one more generator frame to resume
 * on every step of everything it calls.
 */
class KFrame<R> {
  /** 0: not started, 1: running the body, 2: finished. */
  private state = 0;
  private inner: KGen<R> | null = null;

  constructor(
    private readonly name: string,
    private readonly body: (t: Task, ...args: unknown[]) => KGen<R>,
    private readonly t: Task,
    private readonly args: unknown[],
  ) {}

  next(): IteratorResult<Step, R> {
    let g = this.inner;
    if (g === null) {
      if (this.state === 2) return { value: undefined as R, done: true };
      this.state = 1;
      this.t.stack.push(this.name);
      const a = this.args;
      const t = this.t;
      g =
        a.length === 0
          ? this.body(t)
          : a.length === 1
            ? this.body(t, a[0])
            : a.length === 2
              ? this.body(t, a[0], a[1])
              : this.body(t, ...a);
      this.inner = g;
    }
    const r = g.next();
    if (r.done === true) this.end();
    return r;
  }

  return(value: R): IteratorResult<Step, R> {
    const g = this.inner;
    if (g === null || this.state === 2) {
      this.state = 2;
      return { value, done: true };
    }
    const r = g.return(value);
    // A return that completes leaves the frame without popping it, like the generator it replaces.
    if (r.done === true) {
      this.state = 2;
      this.inner = null;
    }
    return r;
  }

  throw(e: unknown): IteratorResult<Step, R> {
    const g = this.inner;
    if (g === null || this.state === 2) {
      this.state = 2;
      throw e;
    }
    const r = g.throw(e);
    if (r.done === true) this.end();
    return r;
  }

  [Symbol.iterator](): this {
    return this;
  }

  private end(): void {
    this.state = 2;
    this.inner = null;
    this.t.stack.pop();
  }
}
