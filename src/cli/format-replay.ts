/** Prints a replayed trace, one line per step, findings under the step that found them. */
import type { Trace } from '../trace/trace.ts';

export function formatReplay(trace: Trace): string {
  const threadW = Math.max(6, ...trace.threads.map((t) => t.length));
  const fnW = Math.max(8, ...trace.steps.map((s) => s.fn.length));
  const objW = Math.max(6, ...trace.steps.map((s) => (s.object ?? '').length));
  const lines = [
    `replay of ${trace.scenario.name} (${trace.scenario.file}), token ${trace.token}`,
    `${'step'.padStart(5)}  ${'thread'.padEnd(threadW)}  ${'function'.padEnd(fnW)}  ${'access'.padEnd(7)}${'object'.padEnd(objW)}  op`,
  ];
  let lastOp = '';
  for (const s of trace.steps) {
    const op = s.op !== lastOp ? s.op : '';
    lastOp = s.op;
    lines.push(
      `${String(s.n).padStart(5)}  ${s.thread.padEnd(threadW)}  ${s.fn.padEnd(fnW)}  ${s.kind.padEnd(7)}${(s.object ?? '').padEnd(objW)}  ${op}`.trimEnd(),
    );
    for (const i of s.findings) {
      const f = trace.findings[i];
      if (f) lines.push(`${''.padStart(7)}^^^ ${f.code}: ${f.message}`);
    }
  }
  lines.push(
    `execution ${trace.status}: ${trace.steps.length} steps, ${trace.findings.length} finding${trace.findings.length === 1 ? '' : 's'}`,
  );
  return lines.join('\n');
}
