/** The single-file viewer page: reads the trace embedded in the page and shows it. */
import { render } from 'preact';
import type { Trace } from '../../src/trace/trace.ts';
import { Viewer } from '../components/Viewer.tsx';

const el = document.getElementById('trace');
const app = document.getElementById('app') as HTMLElement;
let trace: Trace | null = null;
let problem = 'No trace embedded in this page: make one with dmabuf-check … --html FILE.html';
try {
  trace = el?.textContent ? (JSON.parse(el.textContent) as Trace | null) : null;
} catch (e) {
  problem = `The embedded trace is not valid JSON: ${(e as Error).message}`;
}
if (trace && trace.format === 'dmabuf-check-trace' && Array.isArray(trace.steps)) {
  document.title = `${trace.scenario.name} — dmabuf-check trace`;
  render(<Viewer trace={trace} />, app);
} else {
  if (trace) problem = 'The embedded JSON is not a dmabuf-check trace.';
  const p = document.createElement('p');
  p.textContent = problem;
  app.replaceChildren(p);
}
