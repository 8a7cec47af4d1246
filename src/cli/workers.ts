/**
 * `check --workers N`: a search that does not finish within the small-first
 * cap is split into work units (src/explorer/units.ts: the exhaustive
 * search's schedule prefixes, or a randomised search's chunks of executions)
 * explored by N worker threads (src/cli/worker.ts); with N = 1 here, without
 * a thread.
 *
 * Units go out in index order, one at a time, to whichever worker is free
 * (dynamic, so the load balances). Once unit k ends the search (a finding,
 * or for the exhaustive split a timed wait) no unit after k starts (and
 * workers busy with one are stopped), while every unit before k still
 * finishes; the results of units after k are dropped even if they ran, so
 * the result is the same for any N: the one `exploreParallel` makes of the
 * results in unit order.
 */
import { Worker } from 'node:worker_threads';
import type { SplitExploreResult } from '../check-async.ts';
import { NondeterminismError } from '../explorer/dfs.ts';
import type { ExploreOptions } from '../explorer/explore.ts';
import type { Program } from '../explorer/program.ts';
import {
  type ChunkResult,
  chunkEnds,
  exploreParallel,
  SMALL_FIRST,
  type UnitResult,
  type UnitRunner,
  unitEnds,
  type WorkUnit,
} from '../explorer/units.ts';
import { compile } from '../scenario/compile.ts';
import { ScenarioError } from '../scenario/errors.ts';
import { loadScenario } from '../scenario/load-yaml.ts';
import { loadDriverModules } from './files.ts';
import { interrupted, onInterrupt } from './interrupt.ts';
import { UsageError } from './usage-error.ts';
import type { FromWorker, SupervisedInit, ToWorker, UnitRunOptions, WorkerError, WorkerInit } from './worker.ts';

/** A worker thread: the bundled worker.js next to the running chunk, or worker.ts through tsx from the sources. */
export function startWorker(init: WorkerInit | SupervisedInit): Worker {
  const here = import.meta.url;
  if (!/\.ts$/.test(new URL(here).pathname)) return new Worker(new URL('./worker.js', here), { workerData: init });
  // From the sources: the worker registers tsx (as bin/dmabuf-check.js does) before importing worker.ts.
  const tsx = import.meta.resolve('tsx/esm/api');
  const entry = new URL('./worker.ts', here).href;
  const boot = `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(boot, { eval: true, workerData: init });
}

export function revive(e: WorkerError): Error {
  switch (e.kind) {
    case 'scenario':
      return new ScenarioError(e.issues);
    case 'usage':
      return new UsageError(e.message);
    case 'nondeterminism':
      return new NondeterminismError(e.depth);
    default: {
      const err = new Error(`in a worker thread: ${e.message}`);
      if (e.stack) err.stack = e.stack;
      return err;
    }
  }
}

/** The program as the command line compiles it (the main thread needs it to split and combine). */
export async function compileFile(file: string, name: string, text: string): Promise<Program> {
  const modules = await loadDriverModules(file, text);
  return compile(loadScenario(text, name, { modules }));
}

export interface WorkersSource {
  /** The scenario's name in reports (default: `file`). */
  readonly name?: string;
  /** The program, when the caller has compiled it already (from the same file and text). */
  readonly program?: Program;
  /** The small-first cap (default {@link SMALL_FIRST}; the tests lower it). */
  readonly smallFirst?: number;
}

/**
 * Explores the scenario in `file` (read as `text`) with `opts` (as
 * `explore()` takes them: the default `dfs` or a randomised strategy) split
 * over `n` workers: one explores here, more run worker threads. Rejects, with
 * every worker stopped, when a worker fails.
 */
export async function exploreSplit(
  file: string,
  text: string,
  opts: ExploreOptions,
  n: number,
  source: WorkersSource = {},
): Promise<SplitExploreResult> {
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`--workers must be a positive integer, got ${n}`);
  const name = source.name ?? file;
  const program = source.program ?? (await compileFile(file, name, text));
  const init: WorkerInit = { dmabufCheckWorker: 1, file, name, text };
  // Even one worker is a thread: the main thread stays free for Ctrl-C and SIGTERM.
  const runner = threadRunner(init, n);
  const r = await exploreParallel(
    program,
    { ...opts, cancelled: () => interrupted() !== null },
    runner,
    source.smallFirst ?? SMALL_FIRST,
  );
  // Interrupted before the search decided: say so (a finding reached, or a search that ended, stands).
  const result =
    interrupted() && r.result.verdict === 'unknown' ? { ...r.result, stopped: 'interrupted' as const } : r.result;
  return { result, ...(r.split ? { split: r.split } : {}) };
}

/** What crosses to a worker of the options. */
function runOptions(opts: ExploreOptions): UnitRunOptions {
  return {
    stopOnFinding: opts.stopOnFinding ?? true,
    ...(opts.strategy !== undefined ? { strategy: opts.strategy } : {}),
    ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
    ...(opts.maxExecutions !== undefined ? { maxExecutions: opts.maxExecutions } : {}),
    ...(opts.maxSteps !== undefined ? { maxSteps: opts.maxSteps } : {}),
    ...(opts.deadline !== undefined ? { deadlineEpoch: performance.timeOrigin + opts.deadline } : {}),
  };
}

/**
 * A worker started before there is work for it: what it says meanwhile (its
 * `ready`, an error) is kept for the pool that takes it.
 */
interface Spare {
  readonly w: Worker;
  readonly early: FromWorker[];
  failure: Error | null;
  detach(): void;
}

function spare(init: WorkerInit): Spare {
  const w = startWorker(init);
  const s: Spare = {
    w,
    early: [],
    failure: null,
    detach: () => {
      w.off('message', onMessage);
      w.off('error', onError);
      w.off('exit', onExit);
    },
  };
  const onMessage = (m: FromWorker) => s.early.push(m);
  const onError = (e: Error) => {
    s.failure ??= new Error(`a worker thread failed: ${e?.message ?? String(e)}`);
  };
  const onExit = (code: number) => {
    s.failure ??= new Error(`a worker thread exited unexpectedly (exit code ${code})`);
  };
  w.on('message', onMessage);
  w.on('error', onError);
  w.on('exit', onExit);
  return s;
}

/** Units and chunks explored by up to `n` worker threads. */
function threadRunner(init: WorkerInit, n: number): UnitRunner {
  /** Workers started early (prepare), handed to the first pool. */
  let spares: Spare[] = [];
  let prepared = false;
  const take = () => {
    const ws = spares;
    spares = [];
    return ws;
  };
  return {
    units: (units, opts) =>
      pool<UnitResult>(
        init,
        units.length,
        (index) => ({ type: 'unit', index, unit: units[index] as WorkUnit, opts: runOptions(opts) }),
        (r) => unitEnds(r, opts),
        n,
        take(),
      ),
    chunks: (from, to, opts) =>
      pool<ChunkResult>(
        init,
        to - from,
        (index) => ({ type: 'chunk', index, chunk: from + index, opts: runOptions(opts) }),
        (r) => chunkEnds(r, opts),
        n,
        take(),
      ),
    workers: (count) => Math.min(n, count),
    prepare() {
      if (prepared) return;
      prepared = true;
      spares = Array.from({ length: n }, () => spare(init));
    },
    dispose() {
      for (const s of take()) {
        s.detach();
        void s.w.terminate();
      }
    },
  };
}

/**
 * Runs `count` tasks over at most `n` worker threads, handed out in index
 * order; the results in order, null for tasks after the first that `ends`.
 */
function pool<R>(
  init: WorkerInit,
  count: number,
  message: (index: number) => ToWorker,
  ends: (r: R) => boolean,
  n: number,
  spares: Spare[] = [],
): Promise<(R | null)[]> {
  const results: (R | null)[] = new Array(count).fill(null);
  for (const s of spares) s.detach();
  if (count === 0) {
    for (const s of spares) void s.w.terminate();
    return Promise.resolve(results);
  }
  return new Promise((resolve, reject) => {
    /** Each live worker and the task it is on (-1: none). */
    const busy = new Map<Worker, number>();
    let unsubscribe = () => {};
    let next = 0;
    /** The first task known to end the search: no later one starts. */
    let cutoff = count;
    let pending = count;
    let ended = false;

    const stop = (w: Worker) => {
      busy.delete(w);
      void w.terminate();
    };
    const end = (e: Error | null) => {
      if (ended) return;
      ended = true;
      unsubscribe();
      for (const w of [...busy.keys()]) stop(w);
      if (e) reject(e);
      else resolve(results.map((r, i) => (i <= cutoff ? r : null)));
    };
    // Ctrl-C / SIGTERM: stop every worker now; the tasks done so far are the result.
    unsubscribe = onInterrupt(() => end(null));
    const give = (w: Worker) => {
      if (next < Math.min(count, cutoff + 1)) {
        const index = next++;
        busy.set(w, index);
        w.postMessage(message(index));
      } else {
        // Nothing left to hand out: this worker is done.
        stop(w);
      }
    };
    const onMessage = (w: Worker, m: FromWorker) => {
      if (ended || !busy.has(w)) return;
      if (m.type === 'error') return end(revive(m.error));
      if (m.type === 'result') {
        if (m.index !== busy.get(w))
          return end(new Error(`a worker thread answered task ${m.index} instead of ${busy.get(w)}`));
        if (m.index <= cutoff) {
          results[m.index] = m.result as R;
          pending--;
        }
        if (m.index < cutoff && ends(m.result as R)) {
          cutoff = m.index;
          pending = 0;
          for (let i = 0; i <= cutoff; i++) if (!results[i]) pending++;
          // Tasks after it are not needed: stop the workers on one.
          for (const [o, i] of [...busy]) if (o !== w && i > cutoff) stop(o);
        }
      }
      if (pending === 0) return end(null);
      give(w);
    };
    const started = Math.min(n, count);
    // Workers started beforehand (booting while the first executions ran) come first.
    for (const s of spares.splice(started)) void s.w.terminate();
    try {
      for (let k = 0; k < started; k++) {
        const s = spares[k];
        const w = s?.w ?? startWorker(init);
        busy.set(w, -1);
        w.on('message', (m: FromWorker) => onMessage(w, m));
        w.on('error', (e: Error) => {
          if (!ended && busy.has(w)) end(new Error(`a worker thread failed: ${e?.message ?? String(e)}`));
        });
        w.on('messageerror', (e: Error) => {
          if (!ended && busy.has(w)) end(new Error(`a worker thread's message could not be read: ${e.message}`));
        });
        w.on('exit', (code) => {
          if (!ended && busy.has(w)) end(new Error(`a worker thread exited unexpectedly (exit code ${code})`));
        });
        // What a worker started beforehand said before this pool listened.
        if (s) {
          if (s.failure) return end(s.failure);
          for (const m of s.early) onMessage(w, m);
        }
      }
    } catch (e) {
      end(e as Error);
    }
  });
}
