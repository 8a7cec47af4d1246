/**
 * The playground's checker: explores the scenario off the page's thread,
 * reports progress, renders the result as the command line would and replays
 * each counterexample's token to send its trace. One worker per check: the
 * page stops a check by terminating it.
 */
import { checkScenario, type ReportedFinding } from '../../src/check.ts';
import { renderFinding } from '../../src/report/kernel-text.ts';
import { compile } from '../../src/scenario/compile.ts';
import { ScenarioError } from '../../src/scenario/errors.ts';
import { loadScenario } from '../../src/scenario/load-yaml.ts';
import { replayToken } from '../../src/trace/replay.ts';
import type { CheckRequest, ResultOut, TraceOut, WorkerMessage } from './protocol.ts';

const scope = self as unknown as { postMessage(m: WorkerMessage): void; onmessage: ((e: MessageEvent) => void) | null };
const post = (m: WorkerMessage) => scope.postMessage(m);

/** The tokens to replay first for a lock-order finding (its cycle uses other executions' dependencies). */
function before(findings: readonly ReportedFinding[], token: string): readonly string[] {
  for (const f of findings) if (f.token === token && f.code === 'lock-order') return f.requires;
  return [];
}

function check(req: CheckRequest): void {
  const spec = loadScenario(req.text, req.file);
  post({ type: 'progress', executions: 0, steps: 0, phase: 'explore' });
  const r = checkScenario(spec, req.file, {
    ...(req.maxExecutions !== undefined ? { maxExecutions: req.maxExecutions } : {}),
    ...(req.strategy !== undefined ? { strategy: req.strategy } : {}),
    ...(req.seed !== undefined ? { seed: req.seed } : {}),
    onProgress: (p) => post({ type: 'progress', executions: p.executions, steps: p.steps, phase: p.phase }),
  });
  const ctx = { file: req.file };
  const tokens = [...new Set(r.findings.map((f) => f.token as string))];
  if (tokens.length) post({ type: 'replaying' });
  const program = tokens.length ? compile(spec) : null;
  const traces: TraceOut[] = tokens.map((token) => {
    try {
      // JSON round trip: the trace is a JSON document by definition; this drops anything that is not.
      const { trace } = replayToken(program!, token, req.file, before(r.findings, token));
      return { token, trace: JSON.parse(JSON.stringify(trace)), error: null };
    } catch (e) {
      return { token, trace: null, error: (e as Error).message };
    }
  });
  const cx = r.counterexample;
  const result: ResultOut = {
    name: r.name,
    description: spec.description,
    verdict: r.verdict,
    expected: r.expected ? { ...r.expected } : null,
    met: r.met,
    stopped: r.stopped,
    strategy: r.strategy,
    stats: {
      executions: r.stats.executions,
      steps: r.stats.steps,
      complete: r.stats.complete,
      ms: r.stats.ms,
      extraExecutions: r.stats.extraExecutions,
    },
    counterexample: cx
      ? { token: cx.token, scheduled: cx.schedule.length, switches: cx.switches, preemptions: cx.preemptions }
      : null,
    findings: r.findings.map((f) => ({
      code: f.code,
      token: f.token,
      step: f.step,
      thread: f.thread,
      text: renderFinding(f, ctx),
    })),
    traces,
  };
  post({ type: 'result', result });
}

scope.onmessage = (e: MessageEvent) => {
  const req = e.data as CheckRequest;
  if (req?.type !== 'check') return;
  try {
    check(req);
  } catch (err) {
    if (err instanceof ScenarioError) post({ type: 'invalid', issues: err.issues.map((i) => ({ ...i })) });
    else post({ type: 'error', message: (err as Error)?.message ?? String(err) });
  }
};
