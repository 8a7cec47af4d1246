/**
 * The playground: pick or paste a scenario, edit it with validation at the
 * right line, check it in a worker (with progress and Stop), and read the
 * verdict, the kernel-style reports and the counterexample's trace.
 *
 * Everything that comes from a scenario is rendered as text (JSX
 * interpolation), never as HTML.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import type { Strategy } from '../../src/explorer/explore.ts';
import type { Trace } from '../../src/trace/trace.ts';
import { Viewer } from '../components/Viewer.tsx';
import { CATALOGUE } from './catalogue.ts';
import { Editor, gotoLine } from './Editor.tsx';
import type { CheckRequest, ResultOut, WorkerMessage } from './protocol.ts';
import { type Issue, type Validation, validate } from './validate.ts';
import CheckWorker from './worker.ts?worker&inline';

const DEFAULT_SCENARIO = 'kvm-unlocked-no-retry-vs-ttm-move';
/** The file name of a scenario that is not an unedited catalogue file. */
const PASTED_FILE = 'playground.yaml';
const DEBOUNCE_MS = 250;

interface Progress {
  readonly phase: 'explore' | 'minimise' | 'search' | 'replay';
  readonly executions: number;
  readonly steps: number;
}

type Run =
  | { readonly state: 'idle' }
  | { readonly state: 'running'; readonly progress: Progress; readonly started: number; readonly file: string }
  | { readonly state: 'done'; readonly result: ResultOut; readonly file: string }
  | { readonly state: 'stopped'; readonly progress: Progress; readonly ms: number }
  | { readonly state: 'invalid'; readonly issues: readonly Issue[] }
  | { readonly state: 'error'; readonly message: string };

const PHASE: Record<Progress['phase'], string> = {
  explore: 'exploring',
  minimise: 'minimising the counterexample',
  search: 'searching for the expected finding',
  replay: 'replaying the counterexample',
};

const fmt = (n: number) => n.toLocaleString('en-US');
/** "1 execution", "2 executions". */
const count = (n: number, word: string) => `${fmt(n)} ${word}${n === 1 ? '' : 's'}`;

function parseIntField(s: string, min: number, max: number): number | null | undefined {
  const t = s.trim();
  if (!t) return undefined;
  if (!/^\d+$/.test(t)) return null;
  const n = Number(t);
  return Number.isSafeInteger(n) && n >= min && n <= max ? n : null;
}

function download(name: string, text: string, type: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function initialId(): string {
  return CATALOGUE.some((e) => e.id === DEFAULT_SCENARIO) ? DEFAULT_SCENARIO : (CATALOGUE[0]?.id ?? '');
}

export function App() {
  const [selected, setSelected] = useState<string>(initialId);
  const [text, setText] = useState<string>(() => CATALOGUE.find((e) => e.id === selected)?.text ?? '');
  // The validation and the text it was made for (the debounce lags behind typing).
  const [checked, setChecked] = useState<{ text: string; v: Validation }>(() => ({
    text,
    v: validate(text, fileFor(selected, text)),
  }));
  const validation = checked.v;
  const setValidation = (t: string, v: Validation) => setChecked({ text: t, v });
  const [maxExec, setMaxExec] = useState('');
  const [strategy, setStrategy] = useState<'' | Strategy>('');
  const [seed, setSeed] = useState('');
  const [run, setRun] = useState<Run>({ state: 'idle' });
  const [traceIdx, setTraceIdx] = useState(0);
  // Ticks while a check runs, to refresh the elapsed time.
  const [, setTick] = useState(0);
  const worker = useRef<Worker | null>(null);
  const progress = useRef<Progress>({ phase: 'explore', executions: 0, steps: 0 });
  const textarea = useRef<HTMLTextAreaElement>(null);

  const entry = CATALOGUE.find((e) => e.id === selected);
  const edited = entry !== undefined && entry.text !== text;
  const file = fileFor(selected, text);

  // Validate while typing (debounced).
  useEffect(() => {
    const t = setTimeout(() => setValidation(text, validate(text, fileFor(selected, text))), DEBOUNCE_MS);
    return () => clearTimeout(t);
  }, [text, selected]);

  // The elapsed-time display while a check runs.
  useEffect(() => {
    if (run.state !== 'running') return;
    const t = setInterval(() => setTick((n) => n + 1), 200);
    return () => clearInterval(t);
  }, [run.state]);

  useEffect(() => () => worker.current?.terminate(), []);

  const maxN = parseIntField(maxExec, 1, 1_000_000_000);
  const seedN = parseIntField(seed, 0, 2 ** 32 - 1);
  const running = run.state === 'running';

  function choose(id: string): void {
    stop(false);
    setSelected(id);
    const t = CATALOGUE.find((e) => e.id === id)?.text ?? '';
    setText(t);
    setValidation(t, validate(t, fileFor(id, t)));
    setRun({ state: 'idle' });
    if (!id) setTimeout(() => textarea.current?.focus(), 0);
  }

  function stop(show: boolean): void {
    const w = worker.current;
    if (!w) return;
    w.terminate();
    worker.current = null;
    if (show && run.state === 'running') {
      setRun({ state: 'stopped', progress: progress.current, ms: Math.round(performance.now() - run.started) });
    }
  }

  function check(): void {
    if (running) return;
    const v = validate(text, file);
    setValidation(text, v);
    if (!v.scenario || maxN === null || seedN === null) return;
    let w: Worker;
    try {
      w = new CheckWorker({ name: 'dmabuf-check' });
    } catch (e) {
      setRun({ state: 'error', message: `cannot start the worker: ${(e as Error).message}` });
      return;
    }
    worker.current = w;
    const started = performance.now();
    progress.current = { phase: 'explore', executions: 0, steps: 0 };
    setTraceIdx(0);
    setRun({ state: 'running', progress: progress.current, started, file });
    w.onmessage = (e: MessageEvent<WorkerMessage>) => {
      if (worker.current !== w) return;
      const m = e.data;
      if (m.type === 'progress' || m.type === 'replaying') {
        progress.current =
          m.type === 'progress'
            ? { phase: m.phase, executions: m.executions, steps: m.steps }
            : { ...progress.current, phase: 'replay' };
        setRun({ state: 'running', progress: progress.current, started, file });
        return;
      }
      w.terminate();
      worker.current = null;
      if (m.type === 'result') setRun({ state: 'done', result: m.result, file });
      else if (m.type === 'invalid') setRun({ state: 'invalid', issues: m.issues });
      else setRun({ state: 'error', message: m.message });
    };
    w.onerror = (e) => {
      if (worker.current !== w) return;
      w.terminate();
      worker.current = null;
      setRun({ state: 'error', message: `the checker failed: ${e.message || 'unknown error'}` });
    };
    const req: CheckRequest = {
      type: 'check',
      text,
      file,
      ...(maxN !== undefined ? { maxExecutions: maxN } : {}),
      ...(strategy ? { strategy } : {}),
      ...(seedN !== undefined ? { seed: seedN } : {}),
    };
    w.postMessage(req);
  }

  const issues = run.state === 'invalid' ? run.issues : validation.issues;
  const sc = validation.scenario;
  const canCheck = !running && sc !== null && maxN !== null && seedN !== null;

  return (
    <div class="playground">
      <header>
        <h1>dmabuf-check playground</h1>
        <p>
          Check a dma-buf scenario over every interleaving, in your browser: pick one from the catalogue or paste your
          own, press Check, read the verdict, the kernel-style report and the counterexample's trace.
        </p>
      </header>

      <section class="source">
        <label>
          Scenario{' '}
          <select
            data-testid="catalogue"
            value={selected}
            disabled={running}
            onChange={(e) => choose((e.currentTarget as HTMLSelectElement).value)}
          >
            <option value="">— paste your own —</option>
            {CATALOGUE.map((e) => (
              <option key={e.id} value={e.id}>
                {e.id}
              </option>
            ))}
          </select>
        </label>
        {edited ? <span class="edited">(edited)</span> : null}
        <span class="file" data-testid="file">
          {file}
        </span>
        <button
          type="button"
          data-testid="download-yaml"
          disabled={!text}
          onClick={() => download(file.split('/').pop() ?? PASTED_FILE, text, 'text/yaml')}
        >
          Save YAML
        </button>
      </section>

      <Editor
        value={text}
        issues={issues}
        onInput={(t) => {
          setText(t);
          if (run.state === 'invalid') setRun({ state: 'idle' });
        }}
        onRun={check}
        textareaRef={textarea}
      />

      <section
        class="validation"
        data-testid="validation"
        data-valid={sc ? 'true' : 'false'}
        data-pending={checked.text === text ? 'false' : 'true'}
      >
        {sc ? (
          <p class="ok">
            Valid: <strong data-testid="pg-scenario-name">{sc.name}</strong>, {sc.threads} thread
            {sc.threads === 1 ? '' : 's'}.{' '}
            {sc.description ? (
              <span class="description" data-testid="scenario-description">
                {sc.description}
              </span>
            ) : null}
          </p>
        ) : text.trim() === '' ? (
          <p>Paste a scenario or pick one from the catalogue.</p>
        ) : (
          <p class="bad">
            {validation.modules
              ? 'This scenario names driver modules: modules cannot be loaded in the browser.'
              : `${issues.length} problem${issues.length === 1 ? '' : 's'}:`}
          </p>
        )}
        {issues.length > 0 ? (
          <ul class="issues" data-testid="issues">
            {issues.map((i, k) => (
              <li key={k} data-testid="issue">
                <button
                  type="button"
                  class="issue-loc"
                  data-testid="issue-loc"
                  title="go to this line"
                  onClick={() => textarea.current && gotoLine(textarea.current, i.line, i.col)}
                >
                  {i.line}:{i.col}
                </button>{' '}
                <span class="issue-message" data-testid="issue-message">
                  {i.message}
                </span>
              </li>
            ))}
          </ul>
        ) : null}
      </section>

      <section class="controls">
        <label>
          max executions{' '}
          <input
            data-testid="opt-max-executions"
            inputMode="numeric"
            size={12}
            placeholder={String(sc?.maxExecutions ?? 1_000_000)}
            title="empty: what the scenario's explore: says, else 1000000"
            value={maxExec}
            disabled={running}
            class={maxN === null ? 'invalid' : ''}
            onInput={(e) => setMaxExec((e.currentTarget as HTMLInputElement).value)}
          />
        </label>
        <label>
          strategy{' '}
          <select
            data-testid="opt-strategy"
            value={strategy}
            disabled={running}
            onChange={(e) => setStrategy((e.currentTarget as HTMLSelectElement).value as '' | Strategy)}
          >
            <option value="">as the scenario says{sc ? ` (${sc.strategy})` : ''}</option>
            <option value="dfs">dfs (exhaustive)</option>
            <option value="random">random (never proves safe)</option>
          </select>
        </label>
        <label>
          seed{' '}
          <input
            data-testid="opt-seed"
            inputMode="numeric"
            size={10}
            placeholder={String(sc?.seed ?? 1)}
            title="seed of the random strategy; empty: what the scenario's explore: says, else 1"
            value={seed}
            disabled={running}
            class={seedN === null ? 'invalid' : ''}
            onInput={(e) => setSeed((e.currentTarget as HTMLInputElement).value)}
          />
        </label>
        <button type="button" class="primary" data-testid="check" disabled={!canCheck} onClick={check}>
          Check
        </button>
        <button type="button" data-testid="stop" disabled={!running} onClick={() => stop(true)}>
          Stop
        </button>
        {maxN === null ? <span class="bad">max executions: a whole number from 1 to 1000000000</span> : null}
        {seedN === null ? <span class="bad">seed: a whole number from 0 to 4294967295</span> : null}
      </section>

      {run.state === 'running' ? (
        <section class="progress" data-testid="progress" data-phase={run.progress.phase}>
          <span class="spinner" aria-hidden="true" /> {PHASE[run.progress.phase]}:{' '}
          <span data-testid="progress-executions">{fmt(run.progress.executions)}</span> executions,{' '}
          <span data-testid="progress-steps">{fmt(run.progress.steps)}</span> steps —{' '}
          {((performance.now() - run.started) / 1000).toFixed(1)} s
        </section>
      ) : null}

      {run.state === 'stopped' ? (
        <section class="result" data-testid="result">
          <p>
            Verdict:{' '}
            <span class="verdict verdict-unknown" data-testid="verdict">
              unknown (stopped)
            </span>
          </p>
          <p data-testid="stats">
            Stopped by you after {count(run.progress.executions, 'execution')}, {count(run.progress.steps, 'step')} (
            {(run.ms / 1000).toFixed(1)} s). Not every interleaving was covered: this is no proof of safety.
          </p>
        </section>
      ) : null}

      {run.state === 'error' ? (
        <section class="result" data-testid="result">
          <p class="bad" data-testid="error">
            {run.message}
          </p>
        </section>
      ) : null}

      {run.state === 'done' ? (
        <ResultView result={run.result} file={run.file} traceIdx={traceIdx} setTraceIdx={setTraceIdx} />
      ) : null}
    </div>
  );
}

function fileFor(selected: string, text: string): string {
  const e = CATALOGUE.find((x) => x.id === selected);
  return e && e.text === text ? e.file : PASTED_FILE;
}

function verdictText(r: ResultOut): string {
  if (r.verdict !== 'unknown') return r.verdict;
  return `unknown (${r.stopped ?? 'limit'})`;
}

function ResultView({
  result: r,
  file,
  traceIdx,
  setTraceIdx,
}: {
  result: ResultOut;
  file: string;
  traceIdx: number;
  setTraceIdx: (i: number) => void;
}) {
  const how =
    r.verdict === 'bug'
      ? 'a counterexample was found'
      : r.verdict === 'safe'
        ? 'every interleaving covered, no finding'
        : r.strategy === 'random'
          ? 'the random strategy never proves safety'
          : 'a limit stopped the exploration: no proof of safety';
  const expected = r.expected
    ? `${r.expected.verdict}${r.expected.finding ? ` (${r.expected.finding})` : ''}`
    : 'safe (the scenario has no expect)';
  const cur = r.traces[Math.min(traceIdx, r.traces.length - 1)];
  return (
    <section class="result" data-testid="result">
      <p>
        Verdict:{' '}
        <span class={`verdict verdict-${r.verdict}`} data-testid="verdict">
          {verdictText(r)}
        </span>{' '}
        — {how}.
      </p>
      <p data-testid="expectation">
        Expected {expected}:{' '}
        <span class={r.met ? 'ok' : 'bad'} data-testid="met">
          {r.met ? 'met' : 'not met'}
        </span>
      </p>
      <p data-testid="stats">
        {count(r.stats.executions, 'execution')}, {count(r.stats.steps, 'step')} ({r.strategy}
        {r.stats.complete ? ', complete' : ''}), {fmt(r.stats.ms)} ms
        {r.stats.extraExecutions ? `; ${fmt(r.stats.extraExecutions)} more to minimise the counterexample` : ''}.
      </p>
      {r.counterexample ? (
        <p data-testid="counterexample">
          Counterexample: {r.counterexample.scheduled} scheduled steps, {r.counterexample.switches} context switch
          {r.counterexample.switches === 1 ? '' : 'es'} ({r.counterexample.preemptions} preemption
          {r.counterexample.preemptions === 1 ? '' : 's'}); findings: {r.findings.map((f) => f.code).join(', ')}.
        </p>
      ) : null}
      {cur ? (
        <div class="trace" data-testid="trace">
          <h2>Trace</h2>
          {r.traces.length > 1 ? (
            <p>
              {r.traces.map((t, i) => (
                <button
                  key={t.token}
                  type="button"
                  data-testid="trace-tab"
                  class={t === cur ? 'selected' : ''}
                  onClick={() => setTraceIdx(i)}
                >
                  {i === 0 ? 'counterexample' : 'the expected finding'}
                </button>
              ))}
            </p>
          ) : null}
          <TraceView token={cur.token} trace={cur.trace} error={cur.error} findings={r.findings} file={file} />
        </div>
      ) : null}
      {r.findings.length ? (
        <details class="reports" data-testid="reports" open={!cur?.trace}>
          <summary>
            The kernel-style report{r.findings.length === 1 ? '' : 's'} ({r.findings.length}), as the command line
            prints {r.findings.length === 1 ? 'it' : 'them'}
          </summary>
          {r.findings.map((f, i) => (
            <pre key={i} class="report" data-testid="pg-finding" data-code={f.code}>
              {f.text}
            </pre>
          ))}
        </details>
      ) : null}
    </section>
  );
}

function TraceView({
  token,
  trace,
  error,
  findings,
  file,
}: {
  token: string;
  trace: Trace | null;
  error: string | null;
  findings: ResultOut['findings'];
  file: string;
}) {
  if (!trace) {
    return (
      <p class="bad" data-testid="trace-error">
        The counterexample could not be replayed: {error}
      </p>
    );
  }
  const mine = findings.filter((f) => f.token === token);
  return (
    <>
      <p data-testid="trace-header">
        {trace.steps.length} steps, replay token <code>{token}</code>; {mine.length ? 'findings: ' : ''}
        {mine.map((f) => `${f.code} at step ${f.step} (${f.thread})`).join(', ')}{' '}
        <button
          type="button"
          data-testid="download-trace"
          onClick={() =>
            download(`${trace.scenario.name}.trace.json`, `${JSON.stringify(trace, null, 2)}\n`, 'application/json')
          }
        >
          Save trace JSON
        </button>
      </p>
      <p class="hint">
        On the command line:{' '}
        <code>
          dmabuf-check replay {file}
          {[...(trace.after ?? []), token].map((t) => ` --token ${t}`).join('')}
        </code>
      </p>
      <div data-testid="trace-viewer">
        <Viewer key={token} trace={trace} />
      </div>
    </>
  );
}
