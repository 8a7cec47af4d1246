/**
 * The trace viewer: one lane per thread, one row per step. (Placeholder until
 * the viewer lands; the props are the contract the pages use.)
 */
import type { Trace } from '../../src/trace/trace.ts';

export interface ViewerProps {
  readonly trace: Trace;
}

export function Viewer({ trace }: ViewerProps) {
  return (
    <div class="viewer">
      <h1>{trace.scenario.name}</h1>
      <p>{trace.steps.length} steps</p>
    </div>
  );
}
