/** A one-line progress display on stderr, only when it is a terminal. */
import type { Progress } from '../explorer/explore.ts';

export interface ProgressLine {
  update(name: string, p: Progress): void;
  clear(): void;
}

export function progressLine(stream: NodeJS.WriteStream): ProgressLine {
  if (!stream.isTTY) return { update() {}, clear() {} };
  let last = 0;
  let shown = false;
  return {
    update(name, p) {
      const now = Date.now();
      if (now - last < 100) return;
      last = now;
      shown = true;
      const what =
        p.phase === 'explore'
          ? `${p.executions} executions, ${p.steps} steps`
          : `${p.phase}: ${p.executions} executions`;
      stream.write(`\r\x1b[K${name}: ${what}…`);
    },
    clear() {
      if (shown) stream.write('\r\x1b[K');
      shown = false;
    },
  };
}
