/**
 * Geometry of the lane diagram: one column per thread, one row per step,
 * computed once per trace. Pure (no DOM), so it is the same in every browser.
 */
import { findingSteps, type TraceLink, traceLinks } from '../../src/report/trace-links.ts';
import type { Trace, TraceStep } from '../../src/trace/trace.ts';

/** Monospace text at FONT px: every character is CHAR px wide (0.6 em for DejaVu/Liberation Mono, Menlo, Consolas). */
export const FONT = 11;
export const CHAR = FONT * 0.6;
export const ROW = 20;
export const BOX_H = 16;
export const GUTTER = 36;
/** Labels in a box are cut to this many characters (the whole name is in the tooltip and the state panel). */
const MAX_BOX_CHARS = 24;
const MIN_BOX_CHARS = 10;
const PAD = 7;
const LANE_GAP = 16;

export interface StepBox {
  readonly step: TraceStep;
  readonly index: number;
  readonly lane: number;
  readonly x: number;
  readonly y: number;
  readonly w: number;
  /** The box label, cut to fit. */
  readonly label: string;
  /** The scenario op, when it differs from this thread's previous step. */
  readonly opChange: string | null;
  /** Annotations go right of the box, except in the last lane (left). */
  readonly annotateLeft: boolean;
  readonly finding: boolean;
  /** Codes of the findings this step raised. */
  readonly codes: readonly string[];
}

export interface Arrow {
  readonly link: TraceLink;
  readonly d: string;
}

export interface Layout {
  readonly lanes: readonly {
    readonly thread: string;
    readonly x: number;
    readonly w: number;
    readonly steps: number;
  }[];
  readonly boxes: readonly StepBox[];
  readonly arrows: readonly Arrow[];
  readonly width: number;
  readonly height: number;
}

export function cut(s: string, chars: number): string {
  return s.length <= chars ? s : `${s.slice(0, Math.max(1, chars - 1))}…`;
}

export function layout(trace: Trace): Layout {
  const threads = [...trace.threads];
  for (const s of trace.steps) if (!threads.includes(s.thread)) threads.push(s.thread);
  // Each lane is as wide as its longest function name (within limits).
  const lanes: { thread: string; x: number; w: number; chars: number; steps: number }[] = [];
  let x = GUTTER;
  for (const thread of threads) {
    const mine = trace.steps.filter((s) => s.thread === thread);
    const longest = Math.max(thread.length, ...mine.map((s) => s.fn.length));
    const chars = Math.min(MAX_BOX_CHARS, Math.max(MIN_BOX_CHARS, longest));
    const w = Math.ceil(chars * CHAR + 2 * PAD) + LANE_GAP;
    lanes.push({ thread, x, w, chars, steps: mine.length });
    x += w;
  }
  const laneOf = new Map(threads.map((t, i) => [t, i]));
  const found = findingSteps(trace);
  const lastOp = new Map<string, string>();
  const boxes: StepBox[] = trace.steps.map((step, index) => {
    const lane = laneOf.get(step.thread) ?? 0;
    const l = lanes[lane] as (typeof lanes)[number];
    const prevOp = lastOp.get(step.thread);
    lastOp.set(step.thread, step.op);
    return {
      step,
      index,
      lane,
      x: l.x + LANE_GAP / 2,
      y: index * ROW + (ROW - BOX_H) / 2,
      w: l.w - LANE_GAP,
      label: cut(step.fn, l.chars),
      opChange: step.op && step.op !== prevOp ? step.op : null,
      annotateLeft: lane === threads.length - 1 && threads.length > 1,
      finding: found.has(step.n),
      codes: step.findings.map((i) => trace.findings[i]?.code ?? 'finding'),
    };
  });
  const byN = new Map(boxes.map((b) => [b.step.n, b]));
  const arrows: Arrow[] = [];
  for (const link of traceLinks(trace)) {
    const a = byN.get(link.from);
    const b = byN.get(link.to);
    if (!a || !b) continue;
    const right = b.lane > a.lane;
    const x1 = right ? a.x + a.w : a.x;
    const x2 = right ? b.x : b.x + b.w;
    const y1 = a.y + BOX_H / 2;
    const y2 = b.y + BOX_H / 2;
    const dx = (right ? 1 : -1) * Math.max(18, Math.abs(x2 - x1) / 3);
    arrows.push({ link, d: `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}` });
  }
  return {
    lanes,
    boxes,
    arrows,
    // Room for the last lanes' annotations (object, op, finding) right of their boxes.
    width: x + 24 * CHAR,
    height: trace.steps.length * ROW + 4,
  };
}
