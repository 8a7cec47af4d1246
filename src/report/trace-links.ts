/**
 * The happens-before edges between threads that a reader of a trace wants to
 * see drawn: a lock handed over (one thread releases it, another takes it
 * next) and a fence signalled then waited for by another thread. Derived only
 * from the steps' `kind` and `object`. Browser-safe: the viewer and the
 * Mermaid renderer share it.
 */
import type { Trace, TraceStep } from '../trace/trace.ts';

export type TraceLinkKind = 'lock-handover' | 'signal-wait';

export interface TraceLink {
  readonly kind: TraceLinkKind;
  /** Step number (`n`) of the release or the signal. */
  readonly from: number;
  /** Step number of the acquisition or the wait. */
  readonly to: number;
  /** The lock or fence. */
  readonly object: string;
}

/** Names of the objects that are locks (the world lists them; SRCU and the like are not). */
function lockNames(trace: Trace): Set<string> {
  const names = new Set<string>();
  for (const s of trace.steps) for (const l of s.world?.locks ?? []) names.add(l.name);
  return names;
}

/**
 * The links between the scenario's threads, in the order of their second
 * step. Setup and teardown run alone, so links from or to them say nothing
 * and are left out.
 */
export function traceLinks(trace: Trace): TraceLink[] {
  const locks = lockNames(trace);
  const phase = (s: TraceStep) => s.thread === 'setup' || s.thread === 'teardown';
  const links: TraceLink[] = [];
  const released = new Map<string, TraceStep>();
  const signalled = new Map<string, TraceStep>();
  for (const s of trace.steps) {
    const o = s.object;
    if (o === null) continue;
    if (s.kind === 'unlock' && locks.has(o)) {
      released.set(o, s);
    } else if (s.kind === 'lock' && locks.has(o)) {
      const r = released.get(o);
      if (r && r.thread !== s.thread && !phase(r) && !phase(s))
        links.push({ kind: 'lock-handover', from: r.n, to: s.n, object: o });
      released.delete(o);
    } else if (s.kind === 'signal') {
      signalled.set(o, s);
    } else if (s.kind === 'wait') {
      const g = signalled.get(o);
      if (g && g.thread !== s.thread && !phase(g) && !phase(s))
        links.push({ kind: 'signal-wait', from: g.n, to: s.n, object: o });
    }
  }
  return links;
}

/** Step numbers with a finding: the steps' own `findings` and the findings' `step`. */
export function findingSteps(trace: Trace): Set<number> {
  const out = new Set<number>();
  for (const s of trace.steps) if (s.findings.length) out.add(s.n);
  for (const f of trace.findings) if (trace.steps.some((s) => s.n === f.step)) out.add(f.step);
  return out;
}
