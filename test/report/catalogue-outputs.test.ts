/**
 * Issue 4's promise for every bug in the catalogue: a kernel-style report that
 * ends with its replay command, a minimal counterexample (no execution with
 * fewer preemptions reaches a finding; none with as many preemptions and fewer
 * context switches does), a trace that embeds in the HTML page and parses
 * back, and Mermaid text made only of the statements the renderer emits.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LockGraph } from '../../src/checkers/lockdep.ts';
import { PreemptionBoundedDfs } from '../../src/explorer/bounded.ts';
import { type ExecResult, runExecution } from '../../src/explorer/execution.ts';
import { embedTrace, TRACE_PLACEHOLDER } from '../../src/report/html-embed.ts';
import { renderFinding } from '../../src/report/kernel-text.ts';
import { traceMermaid } from '../../src/report/mermaid.ts';
import { compile } from '../../src/scenario/compile.ts';
import { replayToken } from '../../src/trace/replay.ts';
import { catalogueFiles, check, loadFile, ROOT } from '../helpers.ts';

/** Executions of the preemption-bounded search (every one within the bound, up to `cap`). */
function* bounded(spec: ReturnType<typeof loadFile>, bound: number, cap: number): Generator<ExecResult> {
  const program = compile(spec);
  const src = new PreemptionBoundedDfs(bound);
  // A fresh lockdep graph: findings of one execution alone (lock-order ones are left out below).
  const graph = new LockGraph();
  for (let i = 0; i < cap; i++) {
    yield runExecution(program, src, { lockGraph: graph, execution: i });
    if (!src.advance()) return;
  }
  throw new Error(`${spec.name}: more than ${cap} executions within ${bound} preemptions`);
}

const local = (r: ExecResult) => r.status !== 'abandoned' && r.findings.some((f) => f.code !== 'lock-order');

describe('every catalogue bug', () => {
  for (const file of catalogueFiles()) {
    const spec = loadFile(file);
    if (spec.expect?.verdict !== 'bug') continue;
    const rel = path.relative(ROOT, file);
    describe(spec.name, () => {
      const r = check(spec);
      const cx = r.counterexample;

      it('has a kernel-style report for each finding, ending with the replay command', () => {
        expect(cx).not.toBeNull();
        expect(r.findings.length).toBeGreaterThan(0);
        for (const f of r.findings) {
          const text = renderFinding(f, { file: rel });
          const lines = text.split('\n');
          // refcount_t: the header of lib/refcount.c's warnings (first in the catalogue with the poll scenarios).
          expect(lines[1]).toMatch(/^(BUG: |WARNING: |WARNING: possible |INFO: |refcount_t: |=+$)/);
          expect(text).toContain(`replay: ${f.token}`);
          expect(lines.at(-2)).toContain(`dmabuf-check replay ${rel}`);
          expect(lines.at(-2)).toContain(`--token ${f.token}`);
        }
      });

      it('is minimal: no fewer preemptions, then no fewer context switches', () => {
        if (!cx?.findings.some((f) => f.code !== 'lock-order')) return;
        if (cx.preemptions > 0) {
          for (const e of bounded(spec, cx.preemptions - 1, 20_000)) expect(local(e), e.schedule.join(',')).toBe(false);
        }
        for (const e of bounded(spec, cx.preemptions, 20_000)) {
          if (local(e) && e.preemptions === cx.preemptions) expect(e.switches).toBeGreaterThanOrEqual(cx.switches);
        }
      });

      it('gives a trace that embeds in the HTML page and a Mermaid diagram', () => {
        if (!cx) throw new Error('no counterexample');
        const trace = replayToken(compile(spec), cx.token, rel).trace;
        const page = `<!doctype html><html><body>${TRACE_PLACEHOLDER}</body></html>`;
        const html = embedTrace(page, trace);
        const m = /<script type="application\/json" id="trace">([^<]*)<\/script>/.exec(html);
        expect(JSON.parse(m?.[1] as string)).toEqual(JSON.parse(JSON.stringify(trace)));
        const mmd = traceMermaid(trace);
        expect(mmd.startsWith('sequenceDiagram\n')).toBe(true);
        for (const line of mmd.trimEnd().split('\n').slice(1)) {
          expect(line).toMatch(/^ {2}(title |participant T\d+ as |T\d+(->>|-->>)T\d+: |Note (over|right of) T\d+: )/);
        }
        // The finding's step is in the diagram.
        for (const f of cx.findings) expect(mmd).toContain(f.code);
      });
    });
  }
});
