/**
 * The trace viewer: one lane per thread, one row per step, arrows for lock
 * hand-over and fence signal → wait, the finding's steps highlighted; the
 * selected step's machine state on the right, the kernel-style reports under
 * the lanes. ← / → step through, Home / End jump, / searches kernel function
 * names, f goes to the next finding.
 *
 * Everything the scenario or a driver module names (threads, buffers,
 * importers, ops, locks, fences) is rendered as text, never as HTML.
 */
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type { Trace } from '../../src/trace/trace.ts';
import { FindingPanel } from './FindingPanel.tsx';
import { Lanes } from './Lanes.tsx';
import { layout as computeLayout, ROW } from './layout.ts';
import { StatePanel } from './StatePanel.tsx';
import { VIEWER_CSS } from './styles.ts';

export interface ViewerProps {
  readonly trace: Trace;
}

/** Where the selection starts: the first finding's step, else the first step. */
function initialIndex(trace: Trace): number {
  const withFinding = trace.steps.findIndex((s) => s.findings.length > 0);
  if (withFinding >= 0) return withFinding;
  const f = trace.findings[0];
  const at = f ? trace.steps.findIndex((s) => s.n === f.step) : -1;
  return Math.max(0, at);
}

function isTyping(e: KeyboardEvent): boolean {
  const t = e.target as HTMLElement | null;
  return !!t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT' || t.isContentEditable);
}

export function Viewer({ trace }: ViewerProps) {
  const lay = useMemo(() => computeLayout(trace), [trace]);
  const [selected, setSelected] = useState(() => initialIndex(trace));
  const [query, setQuery] = useState('');
  const scroller = useRef<HTMLDivElement>(null);
  const header = useRef<HTMLDivElement>(null);
  const search = useRef<HTMLInputElement>(null);
  const firstScroll = useRef(true);
  const count = trace.steps.length;

  const matches = useMemo(() => {
    const q = query.trim().toLowerCase();
    if (!q) return null;
    const out: number[] = [];
    trace.steps.forEach((s, i) => {
      if (s.fn.toLowerCase().includes(q)) out.push(i);
    });
    return out;
  }, [trace, query]);
  const matchSet = useMemo(() => (matches ? new Set(matches) : null), [matches]);
  const findingIdx = useMemo(() => lay.boxes.filter((b) => b.finding).map((b) => b.index), [lay]);

  const clamp = useCallback((i: number) => Math.max(0, Math.min(count - 1, i)), [count]);
  const select = useCallback((i: number) => setSelected(clamp(i)), [clamp]);
  /** Relative moves read the latest selection: keys may come faster than renders. */
  const move = useCallback((by: number) => setSelected((s) => clamp(s + by)), [clamp]);
  const gotoStep = useCallback(
    (n: number) => {
      const i = trace.steps.findIndex((s) => s.n === n);
      if (i >= 0) select(i);
    },
    [trace, select],
  );
  const nextOf = useCallback((list: readonly number[], dir: 1 | -1) => {
    if (list.length === 0) return;
    setSelected((cur) => {
      const after = dir > 0 ? list.find((i) => i > cur) : [...list].reverse().find((i) => i < cur);
      return after ?? (dir > 0 ? (list[0] as number) : (list[list.length - 1] as number));
    });
  }, []);

  // Keep the selected step in view: centred on load, then only when it leaves the view.
  useEffect(() => {
    const box = lay.boxes[selected];
    const el = scroller.current;
    if (!box || !el) return;
    // Rows start under the sticky lane header (height h) in the scroller's content.
    const h = header.current?.offsetHeight ?? 0;
    const top = h + box.index * ROW;
    if (firstScroll.current) {
      el.scrollTop = Math.max(0, top - h - (el.clientHeight - h) / 2 + ROW / 2);
    } else if (top < el.scrollTop + h + 2 * ROW) {
      el.scrollTop = Math.max(0, top - h - 3 * ROW);
    } else if (top + 3 * ROW > el.scrollTop + el.clientHeight) {
      el.scrollTop = top + 4 * ROW - el.clientHeight;
    }
    const left = box.x;
    if (left < el.scrollLeft || left + box.w > el.scrollLeft + el.clientWidth) {
      el.scrollLeft = Math.max(0, left - 60);
    }
    firstScroll.current = false;
  }, [selected, lay]);

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.defaultPrevented || e.altKey || e.ctrlKey || e.metaKey) return;
      if (isTyping(e)) return;
      switch (e.key) {
        case 'ArrowRight':
          move(1);
          break;
        case 'ArrowLeft':
          move(-1);
          break;
        case 'Home':
          select(0);
          break;
        case 'End':
          select(count - 1);
          break;
        case 'f':
          nextOf(findingIdx, 1);
          break;
        case 'F':
          nextOf(findingIdx, -1);
          break;
        case '/':
          search.current?.focus();
          search.current?.select();
          break;
        default:
          return;
      }
      e.preventDefault();
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [select, move, count, nextOf, findingIdx]);

  const step = trace.steps[selected];
  const position = matches && step ? matches.indexOf(selected) : -1;

  return (
    <div class="dv-root" data-testid="viewer">
      <style>{VIEWER_CSS}</style>
      <header class="dv-top">
        <div class="dv-title">
          <strong data-testid="scenario-name">{trace.scenario.name}</strong>
          <span class="dv-dim"> {trace.scenario.file}</span>
          <span class="dv-dim"> · token </span>
          <span data-testid="token">{trace.token}</span>
          {trace.after?.length ? <span class="dv-dim"> (after {trace.after.join(', ')})</span> : null}
          <span class="dv-dim">
            {' '}
            · {count} steps · {trace.status}
          </span>
        </div>
        <div class="dv-bar">
          {trace.findings.map((f, i) => (
            <button
              key={i}
              type="button"
              class="dv-chip"
              data-testid="finding-link"
              data-step={f.step}
              onClick={() => gotoStep(f.step)}
              title={f.message}
            >
              ⚠ {f.code} @{f.step}
            </button>
          ))}
          <span class="dv-spacer" />
          <label class="dv-search">
            <span class="dv-dim">fn </span>
            <input
              ref={search}
              type="search"
              placeholder="search kernel function (/)"
              data-testid="search"
              value={query}
              onInput={(e) => setQuery((e.target as HTMLInputElement).value)}
              onKeyDown={(e) => {
                if (e.key === 'Enter') {
                  e.preventDefault();
                  nextOf(matches ?? [], e.shiftKey ? -1 : 1);
                } else if (e.key === 'Escape') {
                  (e.target as HTMLInputElement).blur();
                }
              }}
            />
          </label>
          <span class="dv-dim dv-search-count" data-testid="search-count">
            {matches === null
              ? ''
              : matches.length === 0
                ? 'no match'
                : `${position >= 0 ? `${position + 1}/` : ''}${matches.length} match${matches.length === 1 ? '' : 'es'}`}
          </span>
          <button
            type="button"
            class="dv-btn"
            data-testid="search-prev"
            disabled={!matches?.length}
            onClick={() => nextOf(matches ?? [], -1)}
          >
            ▲
          </button>
          <button
            type="button"
            class="dv-btn"
            data-testid="search-next"
            disabled={!matches?.length}
            onClick={() => nextOf(matches ?? [], 1)}
          >
            ▼
          </button>
        </div>
      </header>
      <div class="dv-main">
        <div class="dv-left">
          <div
            class="dv-diagram"
            ref={scroller}
            data-testid="diagram"
            role="listbox"
            tabIndex={0}
            aria-label="steps by thread: ← / → to step"
          >
            <div class="dv-lanes-head" ref={header} style={{ width: `${lay.width}px` }}>
              {lay.lanes.map((l) => (
                <div
                  key={l.thread}
                  class={`dv-lane-head ${step?.thread === l.thread ? 'is-current' : ''}`}
                  data-testid="lane"
                  data-thread={l.thread}
                  style={{ left: `${l.x}px`, width: `${l.w}px` }}
                  title={`${l.thread}: ${l.steps} steps`}
                >
                  {l.thread}
                </div>
              ))}
            </div>
            <Lanes layout={lay} selected={selected} matches={matchSet} onSelect={select} />
          </div>
          <div class="dv-legend">
            <span>
              <i class="dv-key k-lock" /> lock
            </span>
            <span>
              <i class="dv-key k-sync" /> fence / wait
            </span>
            <span>
              <i class="dv-key k-mem" /> alloc
            </span>
            <span>
              <i class="dv-key k-free" /> free
            </span>
            <span>
              <i class="dv-key k-rw" /> read / write
            </span>
            <span>
              <i class="dv-line dv-line-lock" /> lock handed over
            </span>
            <span>
              <i class="dv-line dv-line-sync" /> signal → wait
            </span>
            <span class="dv-dim">←/→ step · Home/End · f finding · / search</span>
          </div>
          <FindingPanel trace={trace} selectedStep={step?.n ?? -1} onGoto={gotoStep} />
        </div>
        <aside class="dv-side">
          {step ? (
            <>
              <div class="dv-step-head" data-testid="selected-step" data-step={step.n}>
                <div>
                  <strong>step {step.n}</strong>
                  <span class="dv-dim">/{count}</span> · <span class="dv-name">{step.thread}</span> ·{' '}
                  <strong>{step.fn}</strong>
                </div>
                <div class="dv-sub">
                  {step.kind}
                  {step.object !== null ? ` ${step.object}` : ''}
                  {step.global ? <span class="dv-warn"> (global)</span> : null}
                </div>
                {step.op ? <div class="dv-sub">op: {step.op}</div> : null}
                {step.stack.length ? <div class="dv-sub dv-dim">stack: {step.stack.join(' › ')}</div> : null}
                {step.findings.map((i) => {
                  const f = trace.findings[i];
                  return f ? (
                    <div key={i} class="dv-bad dv-sub">
                      ⚠ {f.code}: {f.message}
                    </div>
                  ) : null;
                })}
              </div>
              <StatePanel trace={trace} step={step} prev={trace.steps[selected - 1]} />
            </>
          ) : (
            <p class="dv-none">This trace has no steps.</p>
          )}
        </aside>
      </div>
    </div>
  );
}
