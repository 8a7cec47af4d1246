/** The single-file viewer page: reads the trace embedded in the page and shows it. */
import { render } from 'preact';
import { loadTrace, TraceError } from '../../src/trace/load.ts';
import type { Trace } from '../../src/trace/trace.ts';
import { Viewer } from '../components/Viewer.tsx';

const el = document.getElementById('trace');
const app = document.getElementById('app') as HTMLElement;
let trace: Trace | null = null;
let problem = 'No trace embedded in this page: make one with dmabuf-check … --html FILE.html';
const text = el?.textContent?.trim() ?? '';
if (text && text !== 'null') {
  // Checked before it is shown: a trace from another version, or edited by hand, gets a message, not a blank page.
  try {
    trace = loadTrace(text, 'the embedded trace');
  } catch (e) {
    problem = e instanceof TraceError ? `This page's trace cannot be shown: ${e.message}` : String(e);
  }
}
if (trace) {
  document.title = `${trace.scenario.name} — dmabuf-check trace`;
  render(<Viewer trace={trace} />, app);
} else {
  const p = document.createElement('p');
  p.textContent = problem;
  app.replaceChildren(p);
}
