/**
 * The findings as the kernel would print them (findingBody, the same text as
 * the terminal report), each with its rules and the replay command. The
 * findings of the selected step are marked and scrolled into view.
 */
import { useEffect, useRef } from 'preact/hooks';
import type { Finding } from '../../src/checkers/finding.ts';
import { findingBody, replayCommand } from '../../src/report/kernel-text.ts';
import type { Trace } from '../../src/trace/trace.ts';

export interface FindingPanelProps {
  readonly trace: Trace;
  /** Step number (`n`) of the selected step. */
  readonly selectedStep: number;
  readonly onGoto: (stepN: number) => void;
}

function reportText(trace: Trace, f: Finding): string {
  const body = findingBody(f);
  return [
    ...body,
    `Rules: ${f.rules.map((r) => `[${r}]`).join(' ')}`,
    `replay: ${trace.token}`,
    `  ${replayCommand(trace.scenario.file, trace.token, 'dmabuf-check', trace.after ?? [])}`,
  ].join('\n');
}

export function FindingPanel({ trace, selectedStep, onGoto }: FindingPanelProps) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const panel = ref.current;
    const el = panel?.querySelector<HTMLElement>('.dv-report.is-current');
    // The panel is positioned, so it is the report's offsetParent.
    if (panel && el) panel.scrollTop = el.offsetTop - 4;
  }, [selectedStep]);
  if (trace.findings.length === 0) {
    return (
      <div class="dv-findings" data-testid="finding-panel" ref={ref}>
        <p class="dv-none">No finding in this execution ({trace.status}).</p>
      </div>
    );
  }
  return (
    <div class="dv-findings" data-testid="finding-panel" ref={ref}>
      {trace.findings.map((f, i) => (
        <div
          key={i}
          class={`dv-report ${f.step === selectedStep ? 'is-current' : ''}`}
          data-testid="finding-report"
          data-code={f.code}
          data-step={f.step}
        >
          <button type="button" class="dv-report-head" onClick={() => onGoto(f.step)}>
            ⚠ {f.code} · step {f.step} · {f.thread}
          </button>
          <pre>{reportText(trace, f)}</pre>
        </div>
      ))}
    </div>
  );
}
