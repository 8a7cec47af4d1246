/**
 * `npm run fuzz`: 100,000 generated malformed and adversarial inputs
 * through every entry point (test/fuzz/phases.ts): scenario YAML, enormous
 * files, the explorer on what loads, replay tokens, trace files, and the
 * command line as processes. Prints per-entry-point counts and a final line
 * `fuzz: N inputs, C crashes, H hangs, B bad errors`; exits 1 when any.
 *
 * Deterministic: the seed is printed; `FUZZ_SEED=n` changes it, `FUZZ_SCALE=x`
 * multiplies every phase's count (0.1 for a quick look), `FUZZ_ONLY=a,b`
 * runs only those phases. The first failing input of each kind is shrunk
 * by fast-check and written to tmp/fuzz-failures/.
 *
 * The library phases run in two worker threads (one per core) while the
 * main thread runs the command-line phase. A worker that stops answering
 * for a minute (an endless loop no per-input clock can see) is stopped and
 * counted as a hang; the input it was on is regenerated and saved.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import fc from 'fast-check';
import { setupCliDir } from '../test/fuzz/cli.ts';
import { ROOT } from '../test/fuzz/corpus.ts';
import {
  cliPhase,
  describeFailures,
  type Failure,
  type LibraryPhaseName,
  PHASES,
  type Phase,
  type PhaseResult,
  runAsyncPhase,
  runPhase,
} from '../test/fuzz/phases.ts';

/** Inputs per phase at scale 1: 100,000 in all. */
const RUNS: Record<LibraryPhaseName | 'cli', number> = {
  'scenario-yaml': 60_000,
  'scenario-huge': 20,
  check: 6_000,
  token: 20_000,
  replay: 7_000,
  trace: 6_600,
  cli: 400,
};

/**
 * How the library phases are split over the two workers, about equally in
 * time: a phase split in parts runs each part on its own seed (seed + part).
 */
const WORKERS: readonly (readonly {
  readonly phase: LibraryPhaseName;
  readonly share: number;
  readonly part: number;
}[])[] = [
  [
    { phase: 'scenario-yaml', share: 0.55, part: 0 },
    { phase: 'scenario-huge', share: 1, part: 0 },
  ],
  [
    { phase: 'check', share: 1, part: 0 },
    { phase: 'token', share: 1, part: 0 },
    { phase: 'replay', share: 1, part: 0 },
    { phase: 'trace', share: 1, part: 0 },
    { phase: 'scenario-yaml', share: 0.45, part: 1 },
  ],
];

/** A worker silent this long is stuck (`FUZZ_WATCHDOG_MS`, to try the watchdog). */
const WATCHDOG_MS = Number(process.env.FUZZ_WATCHDOG_MS) || 60_000;

const FAILURES_DIR = path.join(ROOT, 'tmp', 'fuzz-failures');

interface Shard {
  readonly phase: LibraryPhaseName;
  readonly runs: number;
  readonly seed: number;
}

interface WorkerJob {
  readonly mode: 'run' | 'extract';
  readonly shards: readonly Shard[];
  /** Heartbeat: [shard index, run index, beats]. */
  readonly beat: SharedArrayBuffer;
  /** mode extract: the run of `shards[0]` whose input to regenerate. */
  readonly index?: number;
}

type WorkerMessage =
  | { readonly type: 'result'; readonly result: PhaseResult }
  | { readonly type: 'input'; readonly input: string };

function workerMain(job: WorkerJob): void {
  const port = parentPort as NonNullable<typeof parentPort>;
  const beat = new Int32Array(job.beat);
  if (job.mode === 'extract') {
    // The input of one run, regenerated: fast-check replays run `index` of the same seed.
    const shard = job.shards[0] as Shard;
    const p = PHASES[shard.phase] as Phase<unknown>;
    let input = '';
    fc.check(
      fc.property(p.arb, (x) => {
        // The replayed run is the first call; later calls are other runs.
        if (!input) input = fc.stringify(x);
        return true;
      }),
      { seed: shard.seed, numRuns: (job.index ?? 0) + 1, path: String(job.index ?? 0) },
    );
    port.postMessage({ type: 'input', input } satisfies WorkerMessage);
    return;
  }
  job.shards.forEach((shard, k) => {
    Atomics.store(beat, 0, k);
    const result = runPhase(PHASES[shard.phase] as Phase<unknown>, shard.runs, shard.seed, (i) => {
      Atomics.store(beat, 1, i);
      Atomics.add(beat, 2, 1);
    });
    port.postMessage({ type: 'result', result } satisfies WorkerMessage);
  });
}

/** A worker running this file: it registers tsx first (workers do not inherit `--import tsx`). */
function startWorker(job: WorkerJob): Worker {
  const tsx = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(import.meta.url)}); });`;
  return new Worker(boot, { eval: true, workerData: job });
}

/** The input a stuck worker was on, regenerated in a fresh worker. */
function extractInput(shard: Shard, index: number): Promise<string> {
  return new Promise((resolve) => {
    const w = startWorker({ mode: 'extract', shards: [shard], beat: new SharedArrayBuffer(12), index });
    const timer = setTimeout(() => {
      void w.terminate();
      resolve('(could not regenerate the input)');
    }, 120_000);
    w.on('message', (m: WorkerMessage) => {
      if (m.type === 'input') {
        clearTimeout(timer);
        void w.terminate();
        resolve(m.input);
      }
    });
    w.on('error', () => resolve('(could not regenerate the input)'));
  });
}

function stuck(shard: Shard, index: number, failure: Failure): PhaseResult {
  return {
    name: shard.phase,
    what: PHASES[shard.phase].what,
    seed: shard.seed,
    inputs: index + 1,
    crashes: failure.kind === 'hang' ? 0 : 1,
    hangs: failure.kind === 'hang' ? 1 : 0,
    badErrors: 0,
    labels: {},
    ms: 0,
    failures: [failure],
  };
}

/** Runs shards in a worker; a result arrives as each ends. A stuck or dead worker ends its share. */
function runWorker(shards: readonly Shard[], onResult: (r: PhaseResult) => void): Promise<void> {
  return new Promise((resolve) => {
    const beat = new SharedArrayBuffer(12);
    const view = new Int32Array(beat);
    const w = startWorker({ mode: 'run', shards, beat });
    let done = 0;
    let last = -1;
    let quietSince = performance.now();
    const finish = () => {
      clearInterval(watch);
      resolve();
    };
    const watch = setInterval(() => {
      const b = Atomics.load(view, 2);
      if (b !== last) {
        last = b;
        quietSince = performance.now();
        return;
      }
      if (performance.now() - quietSince < WATCHDOG_MS) return;
      // Stuck: stop it, and report the shard it was in as hung on the input it was on.
      const shard = shards[Atomics.load(view, 0)] as Shard;
      const index = Atomics.load(view, 1);
      clearInterval(watch);
      void w.terminate().then(async () => {
        const message = `no progress for ${WATCHDOG_MS / 1000} s (the rest of this worker's share did not run)`;
        const input = await extractInput(shard, index);
        onResult(stuck(shard, index, { kind: 'hang', seed: shard.seed, index, message, input }));
        finish();
      });
    }, 1000);
    w.on('message', (m: WorkerMessage) => {
      if (m.type !== 'result') return;
      onResult(m.result);
      if (++done === shards.length) {
        void w.terminate();
        finish();
      }
    });
    w.on('error', (e) => {
      const shard = shards[Atomics.load(view, 0)] as Shard;
      const index = Atomics.load(view, 1);
      const message = `the worker died: ${e.message}`;
      onResult(stuck(shard, index, { kind: 'harness', seed: shard.seed, index, message }));
      finish();
    });
  });
}

/** The parts of one phase as one result. */
function merged(parts: readonly PhaseResult[]): PhaseResult {
  const first = parts[0] as PhaseResult;
  const labels: Record<string, number> = {};
  for (const r of parts) for (const [k, v] of Object.entries(r.labels)) labels[k] = (labels[k] ?? 0) + v;
  const sum = (f: (r: PhaseResult) => number) => parts.reduce((n, r) => n + f(r), 0);
  return {
    name: first.name,
    what: first.what,
    seed: first.seed,
    inputs: sum((r) => r.inputs),
    crashes: sum((r) => r.crashes),
    hangs: sum((r) => r.hangs),
    badErrors: sum((r) => r.badErrors),
    labels,
    // The parts ran side by side: the longest.
    ms: Math.max(...parts.map((r) => r.ms)),
    failures: parts.flatMap((r) => r.failures),
  };
}

function pad(s: string | number, n: number): string {
  return String(s).padStart(n);
}

function labels(r: PhaseResult): string {
  return Object.entries(r.labels)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${v} ${k}`)
    .join(', ');
}

function line(r: PhaseResult): string {
  return `  ${r.name.padEnd(14)}${pad(r.inputs, 7)}${pad(r.crashes, 9)}${pad(r.hangs, 7)}${pad(r.badErrors, 12)}${pad(`${(r.ms / 1000).toFixed(1)} s`, 9)}  ${labels(r)}`;
}

function saveFailures(r: PhaseResult, seed: number): void {
  if (!r.failures.length) return;
  mkdirSync(FAILURES_DIR, { recursive: true });
  for (const f of r.failures) {
    const file = path.join(FAILURES_DIR, `${r.name}-${f.kind}-${f.seed}.txt`);
    writeFileSync(
      file,
      `phase: ${r.name} (${r.what})\nkind: ${f.kind}\nfast-check seed: ${f.seed}, run (path): ${f.index}\nreproduce: FUZZ_SEED=${seed} FUZZ_ONLY=${r.name} npm run fuzz (with the same FUZZ_SCALE)\n\n${f.message}\n\ninput (fast-check, shrunk):\n${f.input ?? '(none)'}\n`,
    );
  }
}

async function main(): Promise<number> {
  const seed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : 20_261_125;
  const scale = process.env.FUZZ_SCALE ? Number(process.env.FUZZ_SCALE) : 1;
  const only = process.env.FUZZ_ONLY ? new Set(process.env.FUZZ_ONLY.split(',')) : null;
  if (!Number.isSafeInteger(seed) || !(scale > 0)) {
    process.stderr.write('fuzz: FUZZ_SEED must be an integer and FUZZ_SCALE a positive number\n');
    return 2;
  }
  const runs: Record<string, number> = {};
  for (const [k, v] of Object.entries(RUNS)) if (!only || only.has(k)) runs[k] = Math.max(1, Math.round(v * scale));
  // Parts of a phase are reported together, when the last one ends.
  const pending = new Map<string, PhaseResult[]>();
  const partsOf = new Map<string, number>();
  const plan = WORKERS.map((w) =>
    w
      .filter((x) => runs[x.phase] !== undefined)
      .map((x): Shard => {
        partsOf.set(x.phase, (partsOf.get(x.phase) ?? 0) + 1);
        return { phase: x.phase, runs: Math.max(1, Math.round((runs[x.phase] ?? 0) * x.share)), seed: seed + x.part };
      }),
  );
  // Rounding: the phase's last part takes what the others left.
  for (const [phase, n] of Object.entries(runs)) {
    const parts = plan.flat().filter((x) => x.phase === phase);
    const last = parts[parts.length - 1];
    if (last) (last as { runs: number }).runs = n - parts.slice(0, -1).reduce((a, x) => a + x.runs, 0);
  }
  const total = plan.flat().reduce((a, x) => a + x.runs, 0) + (runs.cli ?? 0);
  process.stdout.write(
    `fuzz: seed ${seed} (FUZZ_SEED), scale ${scale} (FUZZ_SCALE): ${total} inputs over ${Object.keys(runs).length} entry points\n` +
      `  ${'entry point'.padEnd(14)}${pad('inputs', 7)}${pad('crashes', 9)}${pad('hangs', 7)}${pad('bad errors', 12)}${pad('time', 9)}  outcomes\n`,
  );
  const t0 = performance.now();
  const results: PhaseResult[] = [];
  const report = (r: PhaseResult) => {
    results.push(r);
    saveFailures(r, seed);
    process.stdout.write(`${line(r)}\n`);
  };
  rmSync(FAILURES_DIR, { recursive: true, force: true });
  const collect = (r: PhaseResult) => {
    const got = [...(pending.get(r.name) ?? []), r];
    pending.set(r.name, got);
    if (got.length === partsOf.get(r.name)) report(merged(got));
  };
  const work: Promise<void>[] = plan.flatMap((shards) => (shards.length ? [runWorker(shards, collect)] : []));
  if (runs.cli !== undefined) {
    const dir = path.join(ROOT, 'tmp', `fuzz-cli-${process.pid}`);
    setupCliDir(dir);
    work.push(
      runAsyncPhase(cliPhase(dir), runs.cli, seed).then((r) => {
        rmSync(dir, { recursive: true, force: true });
        report(r);
      }),
    );
  }
  await Promise.all(work);
  // A part that never reported (its worker stopped early) still shows what the others did.
  for (const [name, got] of pending) if (got.length < (partsOf.get(name) ?? 0)) report(merged(got));
  const sum = (f: (r: PhaseResult) => number) => results.reduce((n, r) => n + f(r), 0);
  const inputs = sum((r) => r.inputs);
  const crashes = sum((r) => r.crashes);
  const hangs = sum((r) => r.hangs);
  const bad = sum((r) => r.badErrors);
  for (const r of results) for (const d of describeFailures(r)) process.stdout.write(`\n${d}\n`);
  if (crashes + hangs + bad)
    process.stdout.write(`\nthe failing inputs (shrunk) are in ${path.relative(ROOT, FAILURES_DIR)}/\n`);
  process.stdout.write(
    `fuzz: ${inputs} inputs, ${crashes} crashes, ${hangs} hangs, ${bad} bad errors (seed ${seed}, ${((performance.now() - t0) / 1000).toFixed(0)} s)\n`,
  );
  return crashes + hangs + bad > 0 || inputs < total ? 1 : 0;
}

if (isMainThread) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`fuzz: the harness failed: ${(e as Error)?.stack ?? String(e)}\n`);
      process.exitCode = 1;
    },
  );
} else {
  workerMain(workerData as WorkerJob);
}
