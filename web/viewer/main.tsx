/**
 * The single-file viewer page: reads the trace embedded in the page, checks
 * its format and version (src/trace/load.ts) and shows it, or says in words
 * why it cannot.
 */
import { render } from 'preact';
import { readTrace, TraceFormatError } from '../../src/trace/load.ts';
import type { Trace } from '../../src/trace/trace.ts';
import { Viewer } from '../components/Viewer.tsx';

/** How the page names its trace in messages. */
const SOURCE = 'the trace embedded in this page';

const el = document.getElementById('trace');
const app = document.getElementById('app') as HTMLElement;
let trace: Trace | null = null;
let problem = 'No trace embedded in this page: make one with dmabuf-check … --html FILE.html';
try {
  const doc: unknown = el?.textContent ? JSON.parse(el.textContent) : null;
  if (doc !== null) trace = readTrace(doc, SOURCE);
} catch (e) {
  problem = e instanceof TraceFormatError ? e.message : `${SOURCE}: the JSON does not parse: ${(e as Error).message}`;
}
if (trace) {
  document.title = `${trace.scenario.name} — dmabuf-check trace`;
  render(<Viewer trace={trace} />, app);
} else {
  const p = document.createElement('p');
  p.setAttribute('data-testid', 'trace-problem');
  p.textContent = problem;
  app.replaceChildren(p);
}
