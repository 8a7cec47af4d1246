/**
 * `--workers`: the wall time of one search with one worker (in-process) and
 * with two worker threads, run as a user runs it — `node bin/dmabuf-check.js
 * FILE --json --workers N` (the bundled worker, start-up included) — on the
 * random portfolio with a fixed number of executions, and on an exhaustive
 * search that the split finishes. The results must be identical (the point
 * of the work units; the timing field aside); the figure is the speed-up,
 * wall time with 1 / wall time with 2.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { type Family, kvmRetryTtm, scenarioName } from './families.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DIR = path.join(ROOT, 'bench', 'out', 'workers');

export interface WorkersRun {
  readonly label: string;
  readonly family: string;
  readonly size: string;
  readonly args: readonly string[];
  readonly ms1: number;
  readonly ms2: number;
  readonly speedup: number;
  readonly units: number;
  readonly executions: number;
  /** The two results were identical (JSON, timing and workers count aside). */
  readonly same: boolean;
  /** Why the units used sleep sets instead of optimal DPOR (`timed`, `state-dependent`), or null. */
  readonly fallback: string | null;
}

function measure(label: string, f: Family, params: number[], args: string[]): WorkersRun {
  mkdirSync(DIR, { recursive: true });
  const file = path.join(DIR, `${scenarioName(f, params)}.yaml`);
  writeFileSync(file, f.yaml(params));
  const times: number[] = [];
  const outs: string[] = [];
  let units = 0;
  let executions = 0;
  let fallback: string | null = null;
  for (const n of [1, 2]) {
    const t = performance.now();
    const r = spawnSync(
      process.execPath,
      [path.join(ROOT, 'bin', 'dmabuf-check.js'), file, '--json', '--workers', String(n), ...args],
      { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, timeout: 600_000 },
    );
    times.push(performance.now() - t);
    const out = r.stdout ?? '';
    outs.push(out.replace(/"ms": [\d.]+/g, '"ms": 0').replace(/"workers": \d+/g, '"workers": 0'));
    try {
      const res = (
        JSON.parse(out) as {
          results: { stats: { units?: number; executions: number; split_fallback?: string } }[];
        }
      ).results[0];
      units = res?.stats.units ?? 0;
      executions = res?.stats.executions ?? 0;
      fallback = res?.stats.split_fallback ?? null;
    } catch {
      units = 0;
    }
  }
  const [ms1, ms2] = times as [number, number];
  return {
    label,
    family: f.id,
    size: params.join('×'),
    args,
    ms1,
    ms2,
    speedup: ms1 / ms2,
    units,
    executions,
    same: outs[0] === outs[1] && (outs[0] ?? '') !== '',
    fallback,
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

/** Both measurements and the machine's capacity (about 60 s on two cores; quick: about 15 s). */
export async function measureWorkers(quick = false): Promise<{
  readonly cores: number;
  readonly capacity: number;
  readonly runs: WorkersRun[];
}> {
  const capacity = await parallelCapacity();
  const n = quick ? 40_000 : 200_000;
  const runs = [
    measure(
      `random portfolio, ${n.toLocaleString('en')} executions`,
      kvmRetryTtm,
      [3, 3, 3],
      ['--strategy', 'portfolio', '--max-executions', String(n)],
    ),
    measure('exhaustive split (dfs), to the end', kvmRetryTtm, quick ? [2, 1, 1] : [2, 2, 1], []),
  ];
  return { cores: os.availableParallelism(), capacity, runs };
}
