/**
 * Messages between the playground page and its worker (worker.ts). Plain data
 * only (structured clone): the worker renders the reports to text and sends
 * the traces as the JSON documents the command line writes.
 */
import type { Progress, Strategy, Verdict } from '../../src/explorer/explore.ts';
import type { ScenarioIssue } from '../../src/scenario/errors.ts';
import type { Trace } from '../../src/trace/trace.ts';

export interface CheckRequest {
  readonly type: 'check';
  readonly text: string;
  /** The file name reports and replay commands show. */
  readonly file: string;
  readonly maxExecutions?: number;
  readonly strategy?: Strategy;
  readonly seed?: number;
}

/** A counterexample's trace, or why it could not be replayed. */
export interface TraceOut {
  readonly token: string;
  readonly trace: Trace | null;
  readonly error: string | null;
}

export interface ResultOut {
  readonly name: string;
  readonly description: string;
  readonly verdict: Verdict;
  readonly expected: { readonly verdict: string; readonly finding?: string } | null;
  readonly met: boolean;
  readonly stopped: string | null;
  readonly strategy: Strategy;
  readonly stats: {
    readonly executions: number;
    readonly steps: number;
    readonly complete: boolean;
    readonly ms: number;
    readonly extraExecutions: number;
  };
  readonly counterexample: {
    readonly token: string;
    readonly scheduled: number;
    readonly switches: number;
    readonly preemptions: number;
  } | null;
  /** Each finding: its code, the step and thread it was found at, and its kernel-style report. */
  readonly findings: readonly {
    readonly code: string;
    readonly token: string;
    readonly step: number;
    readonly thread: string;
    readonly text: string;
  }[];
  /** One trace per distinct token, the counterexample's first. */
  readonly traces: readonly TraceOut[];
}

export type WorkerMessage =
  | ({ readonly type: 'progress' } & Progress)
  | { readonly type: 'replaying' }
  | { readonly type: 'result'; readonly result: ResultOut }
  | { readonly type: 'invalid'; readonly issues: readonly ScenarioIssue[] }
  | { readonly type: 'error'; readonly message: string };
