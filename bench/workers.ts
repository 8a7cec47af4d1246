/**
 * `--workers`: the wall time of one search with one worker (in-process) and
 * with two worker threads (src/cli/workers.ts), on a scenario too big to
 * finish: the random portfolio with a fixed number of executions, and the
 * exhaustive split on a bigger family size with an execution cap. The
 * results must be identical (the point of the work units); the figure is the
 * speed-up, wall time of 1 / wall time of 2.
 */
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { exploreSplit } from '../src/cli/workers.ts';
import type { ExploreOptions } from '../src/explorer/explore.ts';
import { type Family, kvmRetryTtm, scenarioName } from './families.ts';

export interface WorkersRun {
  readonly label: string;
  readonly family: string;
  readonly size: string;
  readonly opts: ExploreOptions;
  readonly ms1: number;
  readonly ms2: number;
  readonly speedup: number;
  readonly units: number;
  readonly executions: number;
  /** The two results were identical (JSON). */
  readonly same: boolean;
}

async function measure(label: string, f: Family, params: number[], opts: ExploreOptions): Promise<WorkersRun> {
  const name = `${scenarioName(f, params)}.yaml`;
  const text = f.yaml(params);
  const times: number[] = [];
  const outs: string[] = [];
  let units = 0;
  let executions = 0;
  for (const n of [1, 2]) {
    const t = performance.now();
    const r = await exploreSplit(name, text, opts, n, { name });
    times.push(performance.now() - t);
    outs.push(JSON.stringify(r.result));
    units = r.split?.units ?? 0;
    executions = r.result.stats.executions;
  }
  const [ms1, ms2] = times as [number, number];
  return {
    label,
    family: f.id,
    size: params.join('×'),
    opts,
    ms1,
    ms2,
    speedup: ms1 / ms2,
    units,
    executions,
    same: outs[0] === outs[1],
  };
}

/** A fixed busy loop in `n` threads at once: their wall time. */
async function spin(n: number): Promise<number> {
  const code =
    "const { parentPort } = require('node:worker_threads'); let x = 0; for (let i = 0; i < 3e8; i++) x = (x + i * 7) % 1000003; parentPort.postMessage(x);";
  const t = performance.now();
  await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<void>((resolve, reject) => {
          const w = new Worker(code, { eval: true });
          w.once('message', () => {
            void w.terminate();
            resolve();
          });
          w.once('error', reject);
        }),
    ),
  );
  return performance.now() - t;
}

/**
 * What two threads can give on this machine at best: 2 × the time of one
 * busy loop / the time of two at once (2.0 on two free cores; 1.0 when the
 * two "cores" share one).
 */
export async function parallelCapacity(): Promise<number> {
  const one = await spin(1);
  const two = await spin(2);
  return (2 * one) / two;
}

/** Both measurements and the machine's capacity (about 10–20 s on two cores). */
export async function measureWorkers(): Promise<{
  readonly cores: number;
  readonly capacity: number;
  readonly runs: WorkersRun[];
}> {
  const capacity = await parallelCapacity();
  const runs = [
    await measure('random portfolio, 20,000 executions', kvmRetryTtm, [3, 3, 3], {
      strategy: 'portfolio',
      maxExecutions: 20_000,
    }),
    await measure('exhaustive split (dfs), 20,000-execution cap', kvmRetryTtm, [2, 1, 1], { maxExecutions: 20_000 }),
  ];
  return { cores: os.availableParallelism(), capacity, runs };
}
