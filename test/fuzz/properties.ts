/**
 * What must hold for every input at every entry point of the library, as
 * checks that throw a {@link Violation} (a crash, a hang, or an error that
 * does not say where and what). Shared by the test files (a small share) and
 * `npm run fuzz` (scripts/fuzz.ts, 100,000 inputs).
 *
 * - `loadScenario`: a spec, or a ScenarioError whose issues name the file and
 *   a `line:col` inside the text, one line each, no stack trace.
 * - `compile` + `checkScenario` (and `explore` with a step limit): a verdict,
 *   never an exception; `safe` only when every interleaving was covered —
 *   a run stopped by a limit is `unknown`; a `bug`'s token replays it.
 * - `decodeToken`, `replayToken`: a result or TokenError / ReplayMismatchError;
 *   a replayed trace reads back with `loadTrace`.
 * - `loadTrace`: a trace or a TraceError naming the file and `line:col`.
 * Every call must finish within a bound that grows with the input's size.
 */
import fc from 'fast-check';
import { type CheckResult, checkScenario } from '../../src/check.ts';
import { type ExploreResult, explore, type Strategy } from '../../src/explorer/explore.ts';
import type { Program } from '../../src/explorer/program.ts';
import { ReplayMismatchError } from '../../src/explorer/replay.ts';
import { decodeToken, TokenError } from '../../src/explorer/token.ts';
import { compile } from '../../src/scenario/compile.ts';
import { formatIssue, ScenarioError } from '../../src/scenario/errors.ts';
import { loadScenario, MAX_ISSUES } from '../../src/scenario/load-yaml.ts';
import type { ScenarioSpec } from '../../src/scenario/spec.ts';
import { loadTrace, TraceError } from '../../src/trace/load-text.ts';
import { replayToken } from '../../src/trace/replay.ts';

export type ViolationKind = 'crash' | 'hang' | 'bad-error';

/** An input the entry point mishandled. */
export class Violation extends Error {
  constructor(
    readonly kind: ViolationKind,
    message: string,
  ) {
    super(`${kind}: ${message}`);
  }
}

/** A stack frame, or Node's internals, in text meant for the user. */
export const STACK_RE =
  /^\s*at (?:[^\n(]*\()?(?:file:\/\/|node:|\/|[A-Za-z]:\\|<anonymous>)[^\n)]*(?::\d+:\d+)?\)?\s*$|node:internal/m;

/** Words that betray a bug in a message (an unset value, an object printed as text) unless the input has them. */
const JUNK = ['undefined', '[object Object]', 'function ('];

/**
 * Time allowed for one call on `chars` characters of input: `base` ms and
 * 20 ms per 1,000 characters (a 1 MiB file: about 22 s; it takes 1–3).
 * Generous, to flag only real slowness: a quadratic path took minutes.
 */
export function boundMs(base: number, chars: number): number {
  return base + chars / 50;
}

function crash(what: string, e: unknown): Violation {
  const err = e as Error;
  const where = (err?.stack ?? '').split('\n').slice(1, 4).join(' | ');
  return new Violation(
    'crash',
    `${what} threw ${err?.constructor?.name ?? typeof e}: ${err?.message ?? String(e)} ${where}`,
  );
}

/** Checks one user-facing message: one line, no stack, nothing unset printed, not echoing a huge input. */
export function checkMessage(what: string, message: string, input: string): void {
  if (message.length === 0) throw new Violation('bad-error', `${what}: an empty message`);
  if (/[\n\r]/.test(message))
    throw new Violation('bad-error', `${what}: a message of several lines: ${JSON.stringify(message.slice(0, 300))}`);
  if (STACK_RE.test(message))
    throw new Violation('bad-error', `${what}: a stack trace in the message: ${message.slice(0, 300)}`);
  for (const j of JUNK)
    if (message.includes(j) && !input.includes(j))
      throw new Violation('bad-error', `${what}: "${j}" in the message: ${message.slice(0, 300)}`);
  if (message.length > 4000) throw new Violation('bad-error', `${what}: a message of ${message.length} characters`);
}

function lineCount(text: string): number {
  let n = 1;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

/**
 * `f()`, within `bound` ms. An input over the bound is run once more (inputs
 * are deterministic): only when that is over too is it a hang, so that a
 * machine busy for a moment is not taken for a slow input.
 */
function time<T>(what: string, bound: number, f: () => T): T {
  const t0 = performance.now();
  const r = f();
  const ms = performance.now() - t0;
  if (ms <= bound) return r;
  const t1 = performance.now();
  f();
  const again = performance.now() - t1;
  if (again > bound)
    throw new Violation(
      'hang',
      `${what} took ${Math.round(ms)} ms, then ${Math.round(again)} ms (bound ${Math.round(bound)} ms)`,
    );
  return r;
}

export const FILE = 'fuzz/input.yaml';

/** `loadScenario` on `text`: the spec, or null when it was (properly) refused. */
export function loadProperty(text: string, file = FILE): ScenarioSpec | null {
  return time('loadScenario', boundMs(1500, text.length), () => {
    try {
      return loadScenario(text, file);
    } catch (e) {
      if (!(e instanceof ScenarioError)) throw crash('loadScenario', e);
      checkScenarioError(e, text, file);
      return null;
    }
  });
}

export function checkScenarioError(e: ScenarioError, text: string, file: string): void {
  if (e.code !== 'DMABUF_SCENARIO_INVALID') throw new Violation('bad-error', `code ${e.code}`);
  if (e.issues.length === 0) throw new Violation('bad-error', 'a ScenarioError without issues');
  if (e.issues.length > MAX_ISSUES + 1)
    throw new Violation('bad-error', `${e.issues.length} issues (more than the cap)`);
  const lines = lineCount(text);
  for (const i of e.issues) {
    if (i.file !== file) throw new Violation('bad-error', `issue names file ${JSON.stringify(i.file)}, not ${file}`);
    if (!Number.isInteger(i.line) || !Number.isInteger(i.col) || i.line < 1 || i.col < 1 || i.line > lines + 1)
      throw new Violation('bad-error', `issue at ${i.line}:${i.col} outside the text (${lines} lines): ${i.message}`);
    checkMessage('ScenarioError issue', i.message, text);
  }
  if (e.message !== e.issues.map(formatIssue).join('\n'))
    throw new Violation('bad-error', 'ScenarioError message is not its issues as file:line:col: message');
}

export interface CheckInput {
  readonly maxExecutions: number;
  readonly timeoutMs: number;
  readonly strategy: Strategy | undefined;
  readonly seed: number;
  /** With a step limit, `explore` is called directly (the command line has no such option). */
  readonly maxSteps: number | undefined;
}

const RANDOMISED: ReadonlySet<string> = new Set(['random', 'pct', 'portfolio']);

/** The verdict rules: `safe` only when complete and not stopped; stopped means `unknown`. */
function checkVerdict(
  r: Pick<ExploreResult, 'verdict' | 'stopped'> & { stats: { complete: boolean } },
  findings: number,
  strategy: string,
): void {
  if (!['safe', 'bug', 'unknown'].includes(r.verdict)) throw new Violation('crash', `verdict ${String(r.verdict)}`);
  if (r.verdict === 'safe' && (!r.stats.complete || r.stopped !== null || findings > 0))
    throw new Violation('crash', `safe, but complete=${r.stats.complete} stopped=${r.stopped} findings=${findings}`);
  if (r.stopped !== null && r.verdict !== 'unknown')
    throw new Violation('crash', `stopped by ${r.stopped}, but the verdict is ${r.verdict}`);
  if (r.verdict === 'safe' && RANDOMISED.has(strategy))
    throw new Violation('crash', `strategy ${strategy} (a random search) claimed safe`);
}

/** Slack for a run's own bound: one execution past the deadline, minimisation's last round. */
const CHECK_SLACK_MS = 4000;

/**
 * `compile` and `checkScenario` (or `explore` with a step limit) on a loaded
 * spec: a verdict, by the rules, in time; a bug's token replays it.
 */
export function checkProperty(spec: ScenarioSpec, o: CheckInput): CheckResult | ExploreResult {
  let program: Program;
  try {
    program = compile(spec);
  } catch (e) {
    throw crash('compile', e);
  }
  const strategy = o.strategy ?? spec.explore.strategy ?? 'dfs';
  const bound = o.timeoutMs + CHECK_SLACK_MS;
  if (o.maxSteps !== undefined) {
    const maxSteps = o.maxSteps;
    const r = time('explore', bound, () => {
      try {
        const t0 = performance.now();
        return explore(program, {
          strategy,
          maxExecutions: o.maxExecutions,
          maxSteps,
          seed: o.seed,
          deadline: t0 + o.timeoutMs,
          searchBudget: 200,
        });
      } catch (e) {
        throw crash('explore', e);
      }
    });
    checkVerdict(r, r.counterexample?.findings.length ?? 0, strategy);
    return r;
  }
  const r = time('checkScenario', bound, () => {
    try {
      return checkScenario(spec, FILE, {
        maxExecutions: o.maxExecutions,
        timeoutMs: o.timeoutMs,
        seed: o.seed,
        ...(o.strategy ? { strategy: o.strategy } : {}),
      });
    } catch (e) {
      throw crash('checkScenario', e);
    }
  });
  checkVerdict(r, r.findings.length, strategy);
  if (r.verdict === 'bug') {
    const cex = r.counterexample;
    if (!cex) throw new Violation('crash', 'bug without a counterexample');
    // What was established is kept: the token replays the same findings.
    let codes: string[];
    try {
      codes = replayToken(program, cex.token, FILE).result.findings.map((f) => f.code);
    } catch (e) {
      throw crash(`replay of the counterexample ${cex.token}`, e);
    }
    // Lockdep's lock-order report depends on the dependencies earlier executions recorded (the
    // search's graph), not only on this one: a fresh replay may show one the search had already
    // reported, or need `requires` tokens to show it (trace/replay.ts). Every other finding replays.
    const want = cex.findings.map((f) => f.code).filter((c) => c !== 'lock-order');
    codes = codes.filter((c) => c !== 'lock-order');
    if (codes.join() !== want.join())
      throw new Violation('crash', `the counterexample ${cex.token} replays ${codes.join()} instead of ${want.join()}`);
  }
  return r;
}

/** `decodeToken`: a schedule, or a TokenError. */
export function decodeProperty(token: string): 'decoded' | 'refused' {
  return time('decodeToken', boundMs(2000, token.length), () => {
    try {
      decodeToken(token);
      return 'decoded';
    } catch (e) {
      if (!(e instanceof TokenError)) throw crash('decodeToken', e);
      checkMessage('TokenError', e.message, token);
      return 'refused';
    }
  });
}

/** `replayToken`: a trace (which reads back), or TokenError / ReplayMismatchError. */
export function replayProperty(program: Program, token: string, before: readonly string[]): 'replayed' | 'refused' {
  const input = [token, ...before].join(' ');
  const trace = time('replayToken', boundMs(5000, input.length), () => {
    try {
      return replayToken(program, token, FILE, before).trace;
    } catch (e) {
      if (!(e instanceof TokenError || e instanceof ReplayMismatchError)) throw crash('replayToken', e);
      checkMessage(e.constructor.name, e.message, input);
      return null;
    }
  });
  if (trace) {
    try {
      loadTrace(JSON.stringify(trace), 'replayed.json');
    } catch (e) {
      throw new Violation('crash', `a replayed trace does not read back: ${(e as Error).message}`);
    }
  }
  return trace ? 'replayed' : 'refused';
}

/** `loadTrace`: a trace, or a TraceError naming the file and line:col. */
export function traceProperty(text: string, file = 'fuzz/trace.json'): 'loaded' | 'refused' {
  return time('loadTrace', boundMs(1000, text.length), () => {
    try {
      loadTrace(text, file);
      return 'loaded';
    } catch (e) {
      if (!(e instanceof TraceError)) throw crash('loadTrace', e);
      if (e.file !== file) throw new Violation('bad-error', `TraceError names ${e.file}`);
      if (
        !Number.isInteger(e.line) ||
        !Number.isInteger(e.col) ||
        e.line < 1 ||
        e.col < 1 ||
        e.line > lineCount(text) + 1
      )
        throw new Violation('bad-error', `TraceError at ${e.line}:${e.col} outside the text`);
      if (!e.message.startsWith(`${file}:${e.line}:${e.col}: `))
        throw new Violation('bad-error', 'TraceError message is not file:line:col: problem');
      checkMessage('TraceError', e.problem, text);
      return 'refused';
    }
  });
}

/** Limits for one check: small, so that a generated scenario is explored in milliseconds. */
export const checkInputArb: fc.Arbitrary<CheckInput> = fc.record({
  maxExecutions: fc.integer({ min: 1, max: 60 }),
  timeoutMs: fc.integer({ min: 5, max: 200 }),
  strategy: fc.constantFrom(
    undefined,
    'dfs',
    'sleep',
    'state',
    'naive',
    'random',
    'pct',
    'portfolio',
    'dpor',
    'optimal',
  ),
  seed: fc.nat(),
  maxSteps: fc.option(fc.integer({ min: 1, max: 40 }), { nil: undefined }),
});
