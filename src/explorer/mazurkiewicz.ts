/**
 * Mazurkiewicz traces: a brute-force counter, and the check that the model's
 * declared dependence is sound.
 *
 * Two executions of a program are equivalent (the same Mazurkiewicz trace)
 * when one is obtained from the other by swapping adjacent independent steps.
 * The dependence is the explorer's: two steps are dependent when either is
 * global, or when they declare the same object and one of them writes it
 * (`accDependent`, src/kernel/sched.ts), with each step's declaration as it
 * stood when the step ran (after `refresh`). Setup and teardown run alone and
 * are not events of the trace.
 *
 * A trace's canonical fingerprint lists, per thread, its events (kernel
 * function and declared accesses, objects by name) with each event's vector
 * clock: program order plus every earlier dependent event, transitively.
 * Equal per-thread events and equal happens-before orders are exactly what
 * makes two executions equivalent, so two executions are equivalent iff
 * their fingerprints are equal.
 *
 * {@link enumerateTraces} runs every interleaving (plain depth-first search,
 * no reduction), counts the distinct traces, and checks the declared
 * dependence against what the executions did:
 * - equivalent executions must end in the same final state (findings, status
 *   and a summary of the machine, {@link finalFingerprint});
 * - swapping two adjacent independent steps of different threads, where the
 *   second could already run before the first, must give an execution of the
 *   same trace (the "diamond" every reduction relies on).
 * A violation means the model touches something it does not declare, or a
 * declaration changes with state it does not depend on: reductions (sleep
 * sets, DPOR) may then miss behaviour.
 *
 * {@link TraceFingerprinter} is the step observer behind it; with
 * {@link TraceCounter} any strategy's executions can be fingerprinted
 * (`explore(…, { observer })`, `check --count`).
 *
 * Pure TypeScript: runs in a browser.
 */

import { LockGraph } from '../checkers/lockdep.ts';
import type { Kernel, KernelConfig, StepObserver } from '../kernel/kernel.ts';
import { accDependent, runnable, type Task } from '../kernel/sched.ts';
import { HappensBefore } from './clocks.ts';
import { SleepSetDfs } from './dfs.ts';
import { type ExecResult, type ExecStatus, runExecution } from './execution.ts';
import { type ExploreOptions, type ExploreResult, explore } from './explore.ts';
import type { Program } from './program.ts';
import { encodeToken, type ReplayToken } from './token.ts';

/** One scheduled thread step, as the trace sees it. */
export interface TraceEvent {
  /** Thread index (the schedule's). */
  readonly tid: number;
  /** 1-based position among its thread's events. */
  readonly seq: number;
  readonly fn: string;
  /** Declared accesses, packed `objectId * 2 + (write ? 1 : 0)` (a copy). */
  readonly acc: Int32Array;
  readonly global: boolean;
  /** Vector clock: `vc[q]` = how many of thread q's events happen before or are this one. */
  readonly vc: Int32Array;
  /** Threads runnable in the state this event ran from (bitmask). */
  readonly enabled: number;
}

/** What one execution is, up to equivalence, and where it ended. */
export interface ExecutionFingerprint {
  /** Canonical fingerprint of the execution's Mazurkiewicz trace. */
  readonly trace: string;
  /** Fingerprint of the final state: status, findings, machine summary ({@link finalFingerprint}). */
  readonly final: string;
}

/** Two steps are dependent: either is global, or they share an object and one writes it. */
export function eventsDependent(a: TraceEvent, b: TraceEvent): boolean {
  return a.global || b.global || accDependent(a.acc, a.acc.length, b.acc, b.acc.length);
}

/**
 * A step observer that records the scheduled steps of each execution with
 * their vector clocks. Pass it as `observer` to `runExecution` or `explore`;
 * after each execution, {@link finish} gives its fingerprints. It notices a
 * new execution by its new kernel.
 */
export class TraceFingerprinter implements StepObserver {
  private k: Kernel | null = null;
  private ev: TraceEvent[] = [];
  private readonly hb = new HappensBefore();

  /** `threads`: the program's thread count (its tasks are the kernel's tasks 1…threads). */
  constructor(readonly threads: number) {}

  private reset(k: Kernel | null): void {
    const n = this.threads;
    this.k = k;
    this.ev = [];
    this.hb.reset(n);
  }

  /** The events of the execution being (or last) observed, in execution order. */
  get events(): readonly TraceEvent[] {
    return this.ev;
  }

  beforeStep(k: Kernel, t: Task): void {
    if (k !== this.k) this.reset(k);
    // runExecution creates the setup task first, then the threads, then teardown.
    const p = t.idx - 1;
    if (p < 0 || p >= this.threads || k.tasks[0] === t) return;
    let enabled = 0;
    for (let i = 0; i < this.threads; i++) {
      const u = k.tasks[i + 1] as Task;
      if (!u.done && runnable(u)) enabled |= 1 << i;
    }
    const s = t.pending;
    if (s.refresh !== null) s.refresh(s);
    const acc = s.acc.slice(0, s.nacc);
    const global = s.global;
    const vc = new Int32Array(this.threads);
    const seq = this.hb.step(p, acc, acc.length, global, vc);
    this.ev.push({ tid: p, seq, fn: s.fn, acc, global, vc, enabled });
  }

  afterStep(): void {}

  /** The fingerprints of execution `r`, just run under this observer; null for an abandoned one. */
  finish(r: ExecResult): ExecutionFingerprint | null {
    if (r.kernel !== this.k) this.reset(r.kernel);
    if (r.status === 'abandoned') return null;
    return { trace: traceFingerprint(r.kernel, this.ev, this.threads), final: finalFingerprint(r) };
  }
}

/** The canonical fingerprint of a trace: per thread, each event's label and vector clock. */
export function traceFingerprint(k: Kernel, events: readonly TraceEvent[], threads: number): string {
  const per: string[][] = Array.from({ length: threads }, () => []);
  for (const e of events) (per[e.tid] as string[]).push(`${eventLabel(k, e)}@${e.vc.join('.')}`);
  return per.map((xs) => xs.join('\u001e')).join('\u001d');
}

/** An event as people read it: `fn(obj, obj!, …)`, `!` for a write, `*` for a global step. */
export function eventLabel(k: Kernel, e: TraceEvent): string {
  const names: string[] = [];
  for (const a of e.acc) names.push(`${k.objects[a >> 1]?.name ?? `#${a >> 1}`}${a & 1 ? '!' : ''}`);
  return `${e.global ? '*' : ''}${e.fn}(${names.join('\u001f')})`;
}

/**
 * Whether a finding goes into the final-state fingerprint. A circular
 * `lock-order` finding is left out: lockdep's graph is shared by the
 * executions of an exploration, so whether an execution reports a cycle
 * depends on what ran before it, not on the execution alone. (The lock-class
 * dependencies themselves are compared through {@link TraceCounter.edges}.)
 */
function inFinal(f: ExecResult['findings'][number]): boolean {
  return !(f.code === 'lock-order' && f.kind === 'circular');
}

/**
 * Fingerprint of where an execution ended: its status, the sorted set of its
 * findings (code and message) and a summary of the machine: the clock, each
 * task (op, done, locks held), every object's snapshot and every translation
 * not torn down. Lists are sorted, so the order in which threads created
 * objects does not matter; object ids are not used.
 */
export function finalFingerprint(r: {
  readonly status: ExecStatus;
  readonly findings: ExecResult['findings'];
  readonly kernel: Kernel;
}): string {
  const findings = [...new Set(r.findings.filter(inFinal).map((f) => `${f.code}: ${f.message}`))].sort();
  return [`status ${r.status}`, ...findings, stateSummary(r.kernel)].join('\n');
}

/** The machine at the end of an execution, as sorted lines (deterministic, no object ids). */
export function stateSummary(k: Kernel): string {
  const lines: string[] = [`jiffies ${k.jiffies}`];
  for (const t of k.tasks) {
    const held = t.held.map((h) => h.lock.name).join(',');
    lines.push(`task ${t.name} done=${t.done} op=${t.op} held=${held} signalling=${t.signalling}`);
  }
  const objs: string[] = [];
  for (const o of k.objects) {
    // physmem's snapshot lists every translation in creation order: they are summarised below, sorted.
    if (o === k.physmem) continue;
    objs.push(`${o.type} ${o.name} ${JSON.stringify(o.snapshot())}`);
  }
  const trs: string[] = [];
  for (const tr of k.physmem.translations) {
    if (tr.state === 'gone') continue;
    trs.push(
      `translation ${tr.kind} ${tr.importer} ${tr.buffer}[${tr.page}] pfn ${tr.frame.pfn} gen ${tr.gen} ${tr.state}`,
    );
  }
  return [...lines, ...objs.sort(), ...trs.sort()].join('\n');
}

/** A violation of the declared dependence, with the executions that show it. */
export interface DependenceViolation {
  /**
   * `final-differs`: two equivalent executions ended differently.
   * `swap-not-executable`: two adjacent independent steps, the second runnable
   * before the first, cannot run in the other order (or the execution then
   * does not end the same way).
   * `swap-differs`: they can, but the execution is not equivalent.
   */
  readonly kind: 'final-differs' | 'swap-not-executable' | 'swap-differs';
  readonly message: string;
  /** The two executions' replay tokens (the second may not exist for `swap-not-executable`). */
  readonly tokens: readonly [ReplayToken, ReplayToken];
  readonly schedules: readonly [readonly number[], readonly number[]];
}

/** One Mazurkiewicz trace found by {@link enumerateTraces}. */
export interface TraceClass {
  readonly final: string;
  /** Executions (interleavings) of this trace. */
  executions: number;
  /** The first execution of it. */
  readonly schedule: readonly number[];
}

export interface EnumerateOptions {
  /** Stop after this many executions (then `complete` is false). Default 100,000. */
  readonly maxExecutions?: number;
  readonly maxSteps?: number;
  readonly config?: KernelConfig;
  /** Check the swap ("diamond") property too (default true; only when every execution ran). */
  readonly checkSwaps?: boolean;
  /** Keep at most this many violations (default 20). */
  readonly maxViolations?: number;
}

export interface TraceEnumeration {
  /** Executions run: every interleaving, when complete. */
  readonly executions: number;
  /** Every interleaving ran (no execution cap, no step limit). */
  readonly complete: boolean;
  /** The distinct traces, by fingerprint. */
  readonly traces: ReadonlyMap<string, TraceClass>;
  /** The distinct final-state fingerprints. */
  readonly finals: ReadonlySet<string>;
  /** Lockdep dependencies (`from -> to`, by class) any execution recorded. */
  readonly edges: ReadonlySet<string>;
  /** Where the declared dependence is contradicted by what the executions did (should be empty). */
  readonly violations: readonly DependenceViolation[];
}

const letter = (tid: number) => String.fromCharCode(65 + tid);

function firstDifference(a: string, b: string): string {
  const x = a.split('\n');
  const y = b.split('\n');
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    if (x[i] !== y[i]) return `${x[i] ?? '(nothing)'}  vs  ${y[i] ?? '(nothing)'}`;
  }
  return '(equal)';
}

/**
 * Runs every interleaving of `program` (plain DFS; each execution on a fresh
 * lockdep graph, so its findings are its own), fingerprints each, and checks
 * the declared dependence (see the module comment).
 */
export function enumerateTraces(program: Program, opts: EnumerateOptions = {}): TraceEnumeration {
  const max = opts.maxExecutions ?? 100_000;
  const maxViolations = opts.maxViolations ?? 20;
  const n = program.threads.length;
  const src = new SleepSetDfs(false);
  const fp = new TraceFingerprinter(n);
  const traces = new Map<string, TraceClass>();
  const finals = new Set<string>();
  const edges = new Set<string>();
  const violations: DependenceViolation[] = [];
  /** Schedule (one letter per step) → the trace of that execution. */
  const bySchedule = new Map<string, string>();
  /** Swaps to check once every execution is known: schedule, position. */
  const swaps: { key: string; i: number; trace: string; schedule: readonly number[] }[] = [];
  const token = (s: readonly number[]) => encodeToken(program.hash, s);
  const violation = (v: DependenceViolation, finals: readonly string[]) => {
    if (violations.length >= maxViolations) return;
    // Rule 2 of sched.ts: state a lock protects needs no declaration, so a
    // caller that touches it without the lock (reported) breaks the dependence.
    const unlocked = finals.some((f) => f.includes('\nlock-not-held: '));
    violations.push(
      unlocked
        ? {
            ...v,
            message: `${v.message} (after a lock-not-held finding: state a lock protects was touched without it)`,
          }
        : v,
    );
  };
  let executions = 0;
  let complete = false;
  let stepLimited = false;
  while (executions < max) {
    const r = runExecution(program, src, {
      observer: fp,
      lockGraph: new LockGraph(),
      execution: executions,
      ...(opts.config ? { config: opts.config } : {}),
      ...(opts.maxSteps !== undefined ? { maxSteps: opts.maxSteps } : {}),
    });
    executions++;
    if (r.status === 'step-limit') stepLimited = true;
    for (const e of r.kernel.newEdges) edges.add(`${e.from} -> ${e.to}`);
    const x = fp.finish(r);
    if (!x) throw new Error('plain DFS abandoned an execution');
    finals.add(x.final);
    const seen = traces.get(x.trace);
    if (seen) {
      seen.executions++;
      if (seen.final !== x.final) {
        violation(
          {
            kind: 'final-differs',
            message: `equivalent executions end differently: ${firstDifference(seen.final, x.final)}`,
            tokens: [token(seen.schedule), token(r.schedule)],
            schedules: [seen.schedule, r.schedule],
          },
          [seen.final, x.final],
        );
      }
    } else {
      traces.set(x.trace, { final: x.final, executions: 1, schedule: r.schedule });
    }
    if (opts.checkSwaps ?? true) {
      const key = r.schedule.map(letter).join('');
      bySchedule.set(key, x.trace);
      const ev = fp.events;
      for (let i = 0; i + 1 < ev.length; i++) {
        const a = ev[i] as TraceEvent;
        const b = ev[i + 1] as TraceEvent;
        if (a.tid !== b.tid && a.enabled & (1 << b.tid) && !eventsDependent(a, b))
          swaps.push({ key, i, trace: x.trace, schedule: r.schedule });
      }
    }
    if (!src.advance()) {
      complete = !stepLimited;
      break;
    }
  }
  if (complete) {
    for (const s of swaps) {
      if (violations.length >= maxViolations) break;
      const k = s.key;
      const other = `${k.slice(0, s.i)}${k[s.i + 1]}${k[s.i]}${k.slice(s.i + 2)}`;
      const schedule2 = [...other].map((c) => c.charCodeAt(0) - 65);
      const t2 = bySchedule.get(other);
      const finals = [traces.get(s.trace)?.final ?? ''];
      const what = `steps ${s.i + 1} (thread ${program.threads[s.schedule[s.i] as number]}) and ${s.i + 2} (thread ${program.threads[s.schedule[s.i + 1] as number]}) are declared independent`;
      if (t2 === undefined) {
        violation(
          {
            kind: 'swap-not-executable',
            message: `${what}, but no execution runs them in the other order`,
            tokens: [token(s.schedule), token(schedule2)],
            schedules: [s.schedule, schedule2],
          },
          finals,
        );
      } else if (t2 !== s.trace) {
        violation(
          {
            kind: 'swap-differs',
            message: `${what}, but swapping them gives a different trace`,
            tokens: [token(s.schedule), token(schedule2)],
            schedules: [s.schedule, schedule2],
          },
          finals,
        );
      }
    }
  }
  return { executions, complete, traces, finals, edges, violations };
}

/** What `check --count` prints: executions, traces, and why the others were redundant. */
export interface TraceCount {
  /** Executions run by the search (abandoned ones included). */
  readonly executions: number;
  /** Distinct Mazurkiewicz traces among the executions that ran to their end. */
  readonly traces: number;
  /** Executions that did not add a trace: `sleepBlocked + equivalent`. */
  readonly redundant: number;
  /** Abandoned because every runnable thread was asleep. */
  readonly sleepBlocked: number;
  /** Ran to their end, equivalent to an earlier execution. */
  readonly equivalent: number;
}

/**
 * Fingerprints the executions of an exploration: give {@link observer} to
 * `explore` and call {@link record} from `onExecution` (or use {@link countTraces}).
 */
export class TraceCounter {
  readonly observer: TraceFingerprinter;
  /** Trace fingerprint → final-state fingerprint of its first execution. */
  readonly traces = new Map<string, string>();
  readonly finals = new Set<string>();
  /** Lockdep dependencies recorded by the executions, abandoned ones included. */
  readonly edges = new Set<string>();
  executions = 0;
  sleepBlocked = 0;
  equivalent = 0;

  constructor(threads: number) {
    this.observer = new TraceFingerprinter(threads);
  }

  record(r: ExecResult): ExecutionFingerprint | null {
    this.executions++;
    for (const e of r.kernel.newEdges) this.edges.add(`${e.from} -> ${e.to}`);
    const x = this.observer.finish(r);
    if (!x) {
      this.sleepBlocked++;
      return null;
    }
    this.finals.add(x.final);
    if (this.traces.has(x.trace)) this.equivalent++;
    else this.traces.set(x.trace, x.final);
    return x;
  }

  get count(): TraceCount {
    return {
      executions: this.executions,
      traces: this.traces.size,
      redundant: this.sleepBlocked + this.equivalent,
      sleepBlocked: this.sleepBlocked,
      equivalent: this.equivalent,
    };
  }
}

/**
 * Explores `program` over every interleaving the strategy runs (no stop at
 * the first finding, no minimisation) and counts the Mazurkiewicz traces.
 */
export function countTraces(
  program: Program,
  opts: ExploreOptions = {},
): { readonly result: ExploreResult; readonly counter: TraceCounter } {
  const counter = new TraceCounter(program.threads.length);
  const result = explore(program, {
    ...opts,
    stopOnFinding: false,
    minimise: false,
    observer: counter.observer,
    onExecution: (r) => {
      counter.record(r);
      opts.onExecution?.(r);
    },
  });
  return { result, counter };
}
