/**
 * The lane diagram, hand-written SVG: one column per thread, one row per
 * step, a box per step labelled with its kernel function, arrows for a lock
 * handed over and a fence signalled then waited for. Every scenario string is
 * a text node (JSX children), never markup.
 */
import type { Layout, StepBox } from './layout.ts';
import { BOX_H, FONT, GUTTER, ROW } from './layout.ts';

export interface LanesProps {
  readonly layout: Layout;
  readonly selected: number;
  /** Indexes of the steps matching the search (null: no search). */
  readonly matches: ReadonlySet<number> | null;
  readonly onSelect: (index: number) => void;
}

const KIND_CLASS: Record<string, string> = {
  lock: 'k-lock',
  unlock: 'k-lock',
  wait: 'k-sync',
  signal: 'k-sync',
  alloc: 'k-mem',
  free: 'k-free',
  read: 'k-rw',
  write: 'k-rw',
};

function annotation(b: StepBox): string {
  const parts: string[] = [];
  if (b.step.object !== null) parts.push(b.step.object);
  return parts.join(' ');
}

function Step({
  b,
  width,
  selected,
  match,
  onSelect,
}: {
  b: StepBox;
  width: number;
  selected: boolean;
  match: boolean | null;
  onSelect: (i: number) => void;
}) {
  const s = b.step;
  const codes = b.codes.join(' ');
  const textY = b.y + BOX_H / 2 + FONT * 0.35;
  const ax = b.annotateLeft ? b.x - 6 : b.x + b.w + 6;
  const anchor = b.annotateLeft ? 'end' : 'start';
  const cls = [
    'dv-step',
    KIND_CLASS[s.kind] ?? 'k-rw',
    selected ? 'is-selected' : '',
    b.finding ? 'is-finding' : '',
    match === true ? 'is-match' : match === false ? 'is-dim' : '',
  ]
    .filter(Boolean)
    .join(' ');
  return (
    <g
      class={cls}
      data-testid="step"
      data-step={s.n}
      data-thread={s.thread}
      data-fn={s.fn}
      data-selected={selected ? 'true' : undefined}
      data-finding={b.finding ? 'true' : undefined}
      data-match={match === true ? 'true' : undefined}
      role="option"
      aria-selected={selected}
      onClick={() => onSelect(b.index)}
    >
      <title>
        {`step ${s.n} · ${s.thread} · ${s.fn} · ${s.kind}${s.object !== null ? ` ${s.object}` : ''}${s.op ? `\nop: ${s.op}` : ''}${s.stack.length ? `\nstack: ${s.stack.join(' › ')}` : ''}`}
      </title>
      <rect class="dv-row" x={0} y={b.index * ROW} width={width} height={ROW} />
      <text class="dv-n" x={GUTTER - 8} y={textY} text-anchor="end">
        {s.n}
      </text>
      <rect class="dv-box" x={b.x} y={b.y} width={b.w} height={BOX_H} rx={3} />
      <text class="dv-fn" x={b.x + 8} y={textY}>
        {b.label}
      </text>
      <text class="dv-ann" x={ax} y={textY} text-anchor={anchor}>
        {b.annotateLeft ? (
          <>
            {codes && <tspan class="dv-ann-finding">{`⚠ ${codes}  `}</tspan>}
            {b.opChange !== null && <tspan class="dv-ann-op">{`${b.opChange} ▸ `}</tspan>}
            <tspan>{annotation(b)}</tspan>
          </>
        ) : (
          <>
            <tspan>{annotation(b)}</tspan>
            {b.opChange !== null && <tspan class="dv-ann-op">{` ◂ ${b.opChange}`}</tspan>}
            {codes && <tspan class="dv-ann-finding">{`  ⚠ ${codes}`}</tspan>}
          </>
        )}
      </text>
    </g>
  );
}

export function Lanes({ layout, selected, matches, onSelect }: LanesProps) {
  const { lanes, boxes, arrows, width, height } = layout;
  const fullWidth = width;
  return (
    <svg
      class="dv-svg"
      data-testid="lanes"
      width={fullWidth}
      height={height}
      viewBox={`0 0 ${fullWidth} ${height}`}
      aria-label="steps by thread"
    >
      <defs>
        <marker id="dv-head-lock" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" orient="auto">
          <path d="M0,0 L8,4 L0,8 z" class="dv-head-lock" />
        </marker>
        <marker id="dv-head-sync" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" orient="auto">
          <path d="M0,0 L8,4 L0,8 z" class="dv-head-sync" />
        </marker>
      </defs>
      {lanes.map((l, i) => (
        <g key={l.thread} data-testid="lane-line" data-thread={l.thread}>
          {i % 2 === 1 && <rect class="dv-lane-band" x={l.x} y={0} width={l.w} height={height} />}
          <line class="dv-lane-line" x1={l.x + l.w / 2} y1={0} x2={l.x + l.w / 2} y2={height} />
        </g>
      ))}
      {boxes.map((b) => (
        <Step
          key={b.step.n}
          b={b}
          width={fullWidth}
          selected={b.index === selected}
          match={matches ? matches.has(b.index) : null}
          onSelect={onSelect}
        />
      ))}
      {arrows.map((a) => (
        <path
          key={`${a.link.kind}-${a.link.from}-${a.link.to}`}
          class={a.link.kind === 'lock-handover' ? 'dv-arrow dv-arrow-lock' : 'dv-arrow dv-arrow-sync'}
          data-testid="arrow"
          data-kind={a.link.kind}
          data-from={a.link.from}
          data-to={a.link.to}
          d={a.d}
          marker-end={a.link.kind === 'lock-handover' ? 'url(#dv-head-lock)' : 'url(#dv-head-sync)'}
        >
          <title>
            {a.link.kind === 'lock-handover'
              ? `${a.link.object}: released at step ${a.link.from}, taken at step ${a.link.to}`
              : `${a.link.object}: signalled at step ${a.link.from}, waited for at step ${a.link.to}`}
          </title>
        </path>
      ))}
    </svg>
  );
}
