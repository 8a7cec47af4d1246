/**
 * The counterexample's trace as files and diagrams: `--trace FILE.json` (the
 * versioned trace), `--html FILE.html` (the viewer page with the trace
 * embedded: one self-contained file) and `--mermaid` (a sequenceDiagram on
 * stdout), for `check` and `replay`.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CheckResult } from '../check.ts';
import { embedTrace, TRACE_PLACEHOLDER } from '../report/html-embed.ts';
import { traceMermaid } from '../report/mermaid.ts';
import { compile } from '../scenario/compile.ts';
import type { ScenarioSpec } from '../scenario/spec.ts';
import { replayToken } from '../trace/replay.ts';
import type { Trace } from '../trace/trace.ts';
import { UsageError } from './files.ts';
import { addCheckOutputOptions, addReplayOutputOptions, type OutputFlags } from './output-options.ts';

/** The built viewer page (`npm run build:web`). */
export const VIEWER_PAGE = fileURLToPath(new URL('../../dist/web/viewer/index.html', import.meta.url));

export { addCheckOutputOptions, addReplayOutputOptions, type OutputFlags };

/** `out.html` → `out.<name>.html` (checking several scenarios writes one file each). */
export function outputPath(file: string, scenario: string, multi: boolean): string {
  if (!multi) return file;
  const ext = path.extname(file);
  return `${file.slice(0, file.length - ext.length)}.${scenario}${ext}`;
}

/** The viewer page, read once; exit 2 when it was never built. */
export function viewerPage(file = VIEWER_PAGE): string {
  let page: string;
  try {
    page = readFileSync(file, 'utf8');
  } catch {
    throw new UsageError(`--html needs the built viewer (${file} is missing): run npm run build:web`);
  }
  if (!page.includes(TRACE_PLACEHOLDER))
    throw new UsageError(`--html: ${file} is not the viewer page (no trace placeholder): run npm run build:web`);
  return page;
}

function write(file: string, text: string, flag: string): void {
  try {
    writeFileSync(file, text);
  } catch (e) {
    throw new UsageError(`${flag} ${file}: cannot write the file: ${(e as Error).message}`);
  }
}

/** Writes `trace` as the flags ask; returns the paths written. `multi`: name the files after the scenario. */
export function writeTraceFiles(trace: Trace, o: OutputFlags, page: string | null, multi: boolean): string[] {
  const written: string[] = [];
  if (o.trace) {
    const f = outputPath(o.trace, trace.scenario.name, multi);
    write(f, `${JSON.stringify(trace, null, 2)}\n`, '--trace');
    written.push(f);
  }
  if (o.html && page !== null) {
    const f = outputPath(o.html, trace.scenario.name, multi);
    write(f, embedTrace(page, trace), '--html');
    written.push(f);
  }
  return written;
}

/** Replays a result's counterexample (after the executions its lock-order findings require). */
export function counterexampleTrace(spec: ScenarioSpec, r: CheckResult, file: string): Trace | null {
  const cx = r.counterexample;
  if (!cx) return null;
  const before: string[] = [];
  for (const f of cx.findings)
    if (f.code === 'lock-order') for (const t of f.requires) if (!before.includes(t)) before.push(t);
  return replayToken(compile(spec), cx.token, file, before).trace;
}

/** The outputs of `check`: one trace per scenario with a counterexample. */
export class CheckOutputs {
  private readonly page: string | null;
  private diagrams = 0;

  constructor(
    private readonly o: OutputFlags,
    private readonly multi: boolean,
  ) {
    this.page = o.html ? viewerPage() : null;
  }

  get active(): boolean {
    return Boolean(this.o.trace || this.o.html || this.o.mermaid);
  }

  /** After a scenario is checked: replay its counterexample, write the files, print the diagram. */
  add(spec: ScenarioSpec, r: CheckResult, file: string): void {
    if (!this.active) return;
    const trace = counterexampleTrace(spec, r, file);
    if (!trace) {
      process.stderr.write(`dmabuf-check: ${r.name}: no counterexample (verdict ${r.verdict}): nothing written\n`);
      return;
    }
    for (const f of writeTraceFiles(trace, this.o, this.page, this.multi)) process.stderr.write(`wrote ${f}\n`);
    if (this.o.mermaid) {
      process.stdout.write(`${this.diagrams++ ? '\n' : ''}${traceMermaid(trace)}`);
    }
  }
}

/** `replay --html`: the page is read before the replay runs, the file written after it is printed. */
export function replayHtml(o: OutputFlags): (trace: Trace) => void {
  const page = o.html ? viewerPage() : null;
  return (trace) => {
    if (!o.html) return;
    for (const f of writeTraceFiles(trace, { html: o.html }, page, false)) process.stderr.write(`wrote ${f}\n`);
  };
}
