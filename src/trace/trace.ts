/**
 * The trace of one execution: every step with its thread, kernel function,
 * what it touched and the state of those objects after it, plus the findings.
 * A versioned JSON format (docs/trace-format.md), for tools that step through an execution.
 */
import type { Finding } from '../checkers/finding.ts';
import type { Kernel, StepObserver } from '../kernel/kernel.ts';
import type { AccessKind, Task } from '../kernel/sched.ts';
import { TRACE_FORMAT, TRACE_VERSION } from './version.ts';
import { type WorldState, worldState } from './world.ts';

export { TRACE_FORMAT, TRACE_VERSION };

export interface TraceAccess {
  readonly object: string;
  readonly type: string;
  readonly mode: 'read' | 'write';
}

export interface TraceStep {
  /** Step number (1-based), as findings and reports cite it. */
  readonly n: number;
  readonly thread: string;
  /** Kernel function performing the step. */
  readonly fn: string;
  readonly kind: AccessKind;
  /** The primary object touched. */
  readonly object: string | null;
  readonly accesses: readonly TraceAccess[];
  /** True when the step may touch anything (runs fence callbacks). */
  readonly global: boolean;
  /** The scenario op the thread is running ("kvm.access { page: 0 }"). */
  readonly op: string;
  /** Kernel call stack when the step ran, outermost first. */
  readonly stack: readonly string[];
  /** State of every object the step touched, after it. */
  readonly state: Readonly<Record<string, unknown>>;
  /** Indexes into `findings` of what this step found. */
  readonly findings: readonly number[];
  /** The whole machine after the step (trace/world.ts). */
  readonly world: WorldState;
}

export interface Trace {
  readonly format: typeof TRACE_FORMAT;
  readonly version: typeof TRACE_VERSION;
  readonly scenario: { readonly name: string; readonly file: string; readonly hash: string };
  readonly token: string;
  /** Tokens replayed before this one on the same lockdep graph (absent when none). */
  readonly after?: readonly string[];
  /** Every task: setup, the scenario's threads, teardown. */
  readonly threads: readonly string[];
  readonly status: string;
  readonly steps: readonly TraceStep[];
  readonly findings: readonly Finding[];
}

/** Records steps as they run (slow: only for replays). */
export class TraceRecorder implements StepObserver {
  readonly steps: TraceStep[] = [];
  private pending: Omit<TraceStep, 'state' | 'findings' | 'world'> | null = null;
  private ids: number[] = [];
  private findingsBefore = 0;

  beforeStep(k: Kernel, t: Task): void {
    const s = t.pending;
    const accesses: TraceAccess[] = [];
    this.ids = [];
    for (let i = 0; i < s.nacc; i++) {
      const a = s.acc[i] as number;
      const o = k.objects[a >> 1];
      if (!o) continue;
      this.ids.push(a >> 1);
      accesses.push({ object: o.name, type: o.type, mode: a & 1 ? 'write' : 'read' });
    }
    this.pending = {
      n: k.step + 1,
      thread: t.name,
      fn: s.fn,
      kind: s.kind,
      object: s.obj?.name ?? null,
      accesses,
      global: s.global,
      op: t.op,
      stack: t.stack.slice(),
    };
    this.findingsBefore = k.findings.length;
  }

  afterStep(k: Kernel, _t: Task): void {
    if (!this.pending) return;
    const state: Record<string, unknown> = {};
    for (const id of this.ids) {
      const o = k.objects[id];
      if (o) state[o.name] = o.snapshot();
    }
    const findings: number[] = [];
    for (let i = this.findingsBefore; i < k.findings.length; i++) findings.push(i);
    this.steps.push({ ...this.pending, state, findings, world: worldState(k) });
    this.pending = null;
  }
}
