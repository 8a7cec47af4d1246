/** The single-file viewer page: reads the trace embedded in the page and shows it. */
import { render } from 'preact';
import type { Trace } from '../../src/trace/trace.ts';
import { Viewer } from '../components/Viewer.tsx';

const el = document.getElementById('trace');
const app = document.getElementById('app') as HTMLElement;
const trace = el?.textContent ? (JSON.parse(el.textContent) as Trace | null) : null;
if (trace) render(<Viewer trace={trace} />, app);
else app.textContent = 'No trace embedded in this page: make one with dmabuf-check … --html FILE.html';
