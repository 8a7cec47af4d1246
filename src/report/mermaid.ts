/**
 * A trace as a Mermaid `sequenceDiagram`, short enough to paste into a mail
 * or an issue: one participant per thread, one message per step of the
 * scenario's threads (a self-message `fn (object)`), a lock handed over or a
 * fence signalled and then waited for drawn as a message from the other
 * thread, the scenario op as a note where it changes, a note on each finding.
 * Setup and teardown steps are folded into one note per run unless a finding
 * or an arrow needs them. Browser-safe.
 */
import type { Trace, TraceStep } from '../trace/trace.ts';
import { findingSteps, type TraceLink, traceLinks } from './trace-links.ts';

const PHASES = new Set(['setup', 'teardown']);
const MAX_TEXT = 120;

/**
 * Text Mermaid shows as written: `#` and `;` end a message in Mermaid's
 * grammar, `<` and `&` would reach its HTML labels, `%` can open a directive.
 * Each becomes a numeric entity code (`#59;`), which Mermaid decodes.
 */
export function mermaidText(s: string, max = MAX_TEXT): string {
  let t = s.replace(/[\r\n\t]+/g, ' ');
  if (t.length > max) t = `${t.slice(0, max - 1)}…`;
  return t.replace(/[#;<&%]/g, (c) => `#${c.charCodeAt(0)};`);
}

function label(s: TraceStep): string {
  return `${s.n} ${s.fn}${s.object !== null ? ` (${s.object})` : ''}`;
}

export function traceMermaid(trace: Trace): string {
  const ids = new Map(trace.threads.map((t, i) => [t, `T${i}`]));
  const id = (thread: string) => ids.get(thread) ?? 'T0';
  const links = traceLinks(trace);
  const into = new Map<number, TraceLink>();
  for (const l of links) if (!into.has(l.to)) into.set(l.to, l);
  const from = new Set(links.map((l) => l.from));
  const found = findingSteps(trace);
  const byN = new Map(trace.steps.map((s) => [s.n, s]));

  const out = [
    'sequenceDiagram',
    `  title ${mermaidText(`${trace.scenario.name} — replay ${trace.token}`)}`,
    ...trace.threads.map((t) => `  participant ${id(t)} as ${mermaidText(t)}`),
  ];
  const lastOp = new Map<string, string>();
  let folded: TraceStep[] = [];
  const flush = () => {
    const first = folded[0];
    if (!first) return;
    const ops = [...new Set(folded.map((s) => s.op).filter((o) => o))];
    const range = folded.length === 1 ? `step ${first.n}` : `steps ${first.n}–${folded[folded.length - 1]?.n}`;
    out.push(
      `  Note over ${id(first.thread)}: ${mermaidText(`${first.thread}: ${range}${ops.length ? `: ${ops.join(', ')}` : ''}`)}`,
    );
    folded = [];
  };

  for (const s of trace.steps) {
    const phase = PHASES.has(s.thread);
    const keep = !phase || found.has(s.n) || from.has(s.n) || into.has(s.n);
    if (!keep) {
      if (folded.length && folded[0]?.thread !== s.thread) flush();
      folded.push(s);
      lastOp.set(s.thread, s.op);
      continue;
    }
    flush();
    if (!phase && s.op && s.op !== lastOp.get(s.thread))
      out.push(`  Note right of ${id(s.thread)}: ${mermaidText(s.op)}`);
    lastOp.set(s.thread, s.op);
    const link = into.get(s.n);
    const src = link ? byN.get(link.from) : undefined;
    if (link && src) {
      const why = link.kind === 'lock-handover' ? `released at ${src.n}` : `signalled at ${src.n}`;
      out.push(`  ${id(src.thread)}-->>${id(s.thread)}: ${mermaidText(`${label(s)}, ${why}`)}`);
    } else {
      out.push(`  ${id(s.thread)}->>${id(s.thread)}: ${mermaidText(label(s))}`);
    }
    for (const i of s.findings) {
      const f = trace.findings[i];
      if (f) out.push(`  Note over ${id(s.thread)}: ${mermaidText(`step ${s.n} ${f.code}: ${f.message}`)}`);
    }
  }
  flush();
  // Findings whose step the trace does not show as the step's own (rare: reported at a step of another thread).
  for (const [i, f] of trace.findings.entries()) {
    const s = byN.get(f.step);
    if (s?.findings.includes(i)) continue;
    out.push(`  Note over ${id(f.thread)}: ${mermaidText(`step ${f.step} ${f.code}: ${f.message}`)}`);
  }
  return `${out.join('\n')}\n`;
}
