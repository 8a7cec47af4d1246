/**
 * `dmabuf-check show TRACE.json`: prints a saved trace (a `--trace` file, or
 * one the playground saved) as `replay` prints one, or as a Mermaid diagram,
 * and writes it as the viewer page, without the scenario. The trace's format
 * and version are checked first (trace/load.ts): a trace of another version is
 * bad input (exit 2) with the version found and the one supported.
 */
import { readFileSync } from 'node:fs';
import pc from 'picocolors';
import { colors } from '../report/colors.ts';
import { renderFinding } from '../report/kernel-text.ts';
import { traceMermaid } from '../report/mermaid.ts';
import { parseTrace } from '../trace/load.ts';
import type { Trace } from '../trace/trace.ts';
import { EXIT_OK } from './exit.ts';
import { formatReplay } from './format-replay.ts';
import { replayHtml } from './outputs.ts';
import { UsageError } from './usage-error.ts';

export interface ShowCliOptions {
  html?: string;
  mermaid?: boolean;
  color?: boolean;
}

export function readTraceFile(file: string): Trace {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UsageError(`${file}: no such file`);
    if (code === 'EISDIR') throw new UsageError(`${file} is a directory; a trace file (*.json) is expected here`);
    throw new UsageError(`${file}: cannot read: ${(e as Error).message}`);
  }
  return parseTrace(text, file);
}

export function runShow(file: string, o: ShowCliOptions): number {
  const html = replayHtml(o);
  const trace = readTraceFile(file);
  if (o.mermaid) {
    process.stdout.write(traceMermaid(trace));
  } else {
    const c = colors(o.color !== false && process.stdout.isTTY === true && pc.isColorSupported);
    process.stdout.write(`${formatReplay(trace)}\n`);
    for (const f of trace.findings)
      process.stdout.write(
        `${renderFinding({ ...f, token: trace.token as never }, { file: trace.scenario.file }, c)}\n`,
      );
  }
  html(trace);
  return EXIT_OK;
}
