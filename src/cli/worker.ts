/**
 * A worker thread of `check --workers N` (src/cli/workers.ts starts it): it
 * loads and compiles the scenario itself (same loader, same driver modules),
 * then explores the work units (or randomised chunks) the main thread hands
 * it, one at a time, and posts each one's result back. dist/cli/worker.js is this file bundled
 * (scripts/build-cli.mjs); from the sources it runs through tsx.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { type CheckResult, checkScenario } from '../check.ts';
import { NondeterminismError } from '../explorer/dfs.ts';
import { heartbeat } from '../explorer/execution.ts';
import type { ExploreOptions, Strategy } from '../explorer/explore.ts';
import type { Program } from '../explorer/program.ts';
import { type ChunkResult, exploreChunk, exploreUnit, type UnitResult, type WorkUnit } from '../explorer/units.ts';
import { compile } from '../scenario/compile.ts';
import { ScenarioError, type ScenarioIssue } from '../scenario/errors.ts';
import { loadScenario } from '../scenario/load-yaml.ts';
import { loadDriverModules } from './files.ts';
import { UsageError } from './usage-error.ts';

/** What the main thread gives a worker when it starts it. */
export interface WorkerInit {
  readonly dmabufCheckWorker: 1;
  /** The scenario file (as the main thread was given it: the working directory is shared). */
  readonly file: string;
  /** Its name in reports. */
  readonly name: string;
  /** Its text, as the main thread read it. */
  readonly text: string;
}

export interface UnitRunOptions {
  readonly stopOnFinding: boolean;
  /** The search's strategy (chunks: random, pct or portfolio) and seed. */
  readonly strategy?: Strategy;
  readonly seed?: number;
  readonly maxExecutions?: number;
  readonly maxSteps?: number;
  /** The deadline as a wall-clock time (ms since the epoch): each thread has its own `performance` origin. */
  readonly deadlineEpoch?: number;
}

/** A task: a work unit of the exhaustive split, or a chunk of a randomised search; `index` is its place among the tasks. */
export type ToWorker =
  | { readonly type: 'unit'; readonly index: number; readonly unit: WorkUnit; readonly opts: UnitRunOptions }
  | { readonly type: 'chunk'; readonly index: number; readonly chunk: number; readonly opts: UnitRunOptions };

/** An error thrown in a worker, as it crosses to the main thread. */
export type WorkerError =
  | { readonly kind: 'scenario'; readonly issues: readonly ScenarioIssue[] }
  | { readonly kind: 'usage'; readonly message: string }
  | { readonly kind: 'nondeterminism'; readonly depth: number }
  | { readonly kind: 'internal'; readonly message: string; readonly stack?: string };

export type FromWorker =
  | { readonly type: 'ready' }
  | { readonly type: 'result'; readonly index: number; readonly result: UnitResult | ChunkResult }
  | { readonly type: 'error'; readonly error: WorkerError };

function serialise(e: unknown): WorkerError {
  if (e instanceof ScenarioError) return { kind: 'scenario', issues: e.issues.map((i) => ({ ...i })) };
  if (e instanceof UsageError) return { kind: 'usage', message: e.message };
  if (e instanceof NondeterminismError) return { kind: 'nondeterminism', depth: e.depth };
  const err = e as Error;
  return { kind: 'internal', message: err?.message ?? String(e), ...(err?.stack ? { stack: err.stack } : {}) };
}

async function serve(init: WorkerInit): Promise<void> {
  const port = parentPort;
  if (!port) return;
  const post = (m: FromWorker) => port.postMessage(m);
  let program: Program;
  try {
    const modules = await loadDriverModules(init.file, init.text);
    program = compile(loadScenario(init.text, init.name, { modules }));
  } catch (e) {
    post({ type: 'error', error: serialise(e) });
    return;
  }
  port.on('message', (m: ToWorker) => {
    if (m.type !== 'unit' && m.type !== 'chunk') return;
    try {
      const o = m.opts;
      const opts: ExploreOptions = {
        stopOnFinding: o.stopOnFinding,
        ...(o.strategy !== undefined ? { strategy: o.strategy } : {}),
        ...(o.seed !== undefined ? { seed: o.seed } : {}),
        ...(o.maxExecutions !== undefined ? { maxExecutions: o.maxExecutions } : {}),
        ...(o.maxSteps !== undefined ? { maxSteps: o.maxSteps } : {}),
        ...(o.deadlineEpoch !== undefined ? { deadline: o.deadlineEpoch - performance.timeOrigin } : {}),
      };
      const result = m.type === 'unit' ? exploreUnit(program, m.unit, opts) : exploreChunk(program, m.chunk, opts);
      post({ type: 'result', index: m.index, result });
    } catch (e) {
      post({ type: 'error', error: serialise(e) });
    }
  });
  post({ type: 'ready' });
}

/**
 * A supervised check (src/cli/supervise.ts): the whole check of a scenario
 * that names a driver module, here, while the main thread watches the
 * heartbeat for an op that stops making steps.
 */
export interface SupervisedInit {
  readonly dmabufCheckSupervised: 1;
  readonly file: string;
  readonly name: string;
  readonly text: string;
  readonly opts: SupervisedOptions;
  /** The heartbeat's shared memory (three int32: steps, task index, op index). */
  readonly beat: SharedArrayBuffer;
}

/** The check options that cross to the supervised worker (no callbacks; the deadline as wall-clock time). */
export interface SupervisedOptions {
  readonly maxExecutions?: number;
  readonly deadlineEpoch?: number;
  readonly seed?: number;
  readonly strategy?: Strategy;
  readonly count?: boolean;
}

export type FromSupervised =
  | { readonly type: 'check'; readonly result: CheckResult }
  | { readonly type: 'error'; readonly error: WorkerError };

async function supervised(init: SupervisedInit): Promise<void> {
  const port = parentPort;
  if (!port) return;
  const post = (m: FromSupervised) => port.postMessage(m);
  try {
    const modules = await loadDriverModules(init.file, init.text);
    const spec = loadScenario(init.text, init.name, { modules });
    const o = init.opts;
    heartbeat.beat = new Int32Array(init.beat);
    const result = checkScenario(spec, init.name, {
      ...(o.maxExecutions !== undefined ? { maxExecutions: o.maxExecutions } : {}),
      ...(o.deadlineEpoch !== undefined ? { timeoutMs: o.deadlineEpoch - Date.now() } : {}),
      ...(o.seed !== undefined ? { seed: o.seed } : {}),
      ...(o.strategy !== undefined ? { strategy: o.strategy } : {}),
      ...(o.count ? { count: true } : {}),
    });
    post({ type: 'check', result });
  } catch (e) {
    post({ type: 'error', error: serialise(e) });
  }
}

const init = workerData as WorkerInit | SupervisedInit | undefined;
if (parentPort && init && 'dmabufCheckWorker' in init && init.dmabufCheckWorker === 1) void serve(init);
if (parentPort && init && 'dmabufCheckSupervised' in init && init.dmabufCheckSupervised === 1) void supervised(init);
