/**
 * The fuzzing campaign, one phase per entry point: what is generated, what
 * is checked, and a runner that counts crashes, hangs and bad errors over
 * every input (it does not stop at the first), then has fast-check shrink
 * the first failing input of each kind by replaying its run (`path`).
 * `npm run fuzz` (scripts/fuzz.ts) runs the phases with 100,000 inputs in
 * all; test/fuzz/*.test.ts run a small share.
 */
import fc from 'fast-check';
import {
  enormousArb,
  loadableScenarioArb,
  scenarioTextArb,
  type TokenInput,
  tokenInputArb,
  tokenTextArb,
  traceTextArb,
} from './arbitraries.ts';
import { type CliInput, cliInputArb, cliProperty } from './cli.ts';
import { corpus } from './corpus.ts';
import {
  type CheckInput,
  checkInputArb,
  checkProperty,
  decodeProperty,
  loadProperty,
  replayProperty,
  traceProperty,
  Violation,
  type ViolationKind,
} from './properties.ts';

export interface Phase<T> {
  readonly name: string;
  /** The entry point and the input, for the summary. */
  readonly what: string;
  readonly arb: fc.Arbitrary<T>;
  /** Checks one input; returns a label for the summary's counts ("refused", "loaded", a verdict). */
  readonly run: (x: T) => string;
}

export interface AsyncPhase<T> extends Omit<Phase<T>, 'run'> {
  readonly run: (x: T, n: number) => Promise<string>;
}

export const PHASES = {
  'scenario-yaml': {
    name: 'scenario-yaml',
    what: 'loadScenario: mutated, generated, garbled, deep, aliased scenario YAML',
    arb: scenarioTextArb,
    run: (t: string) => (loadProperty(t) ? 'loaded' : 'refused'),
  } satisfies Phase<string>,
  'scenario-huge': {
    name: 'scenario-huge',
    what: 'loadScenario: enormous files (0.9–5 MiB)',
    arb: enormousArb,
    run: (t: string) => (loadProperty(t) ? 'loaded' : 'refused'),
  } satisfies Phase<string>,
  check: {
    name: 'check',
    what: 'compile + checkScenario / explore (small limits) on scenarios that load',
    arb: fc.tuple(loadableScenarioArb, checkInputArb),
    run: ([t, o]: [string, CheckInput]) => {
      const spec = loadProperty(t);
      return spec ? checkProperty(spec, o).verdict : 'refused';
    },
  } satisfies Phase<[string, CheckInput]>,
  token: {
    name: 'token',
    what: 'decodeToken: random, token-shaped and edited replay tokens',
    arb: tokenTextArb,
    run: (t: string) => decodeProperty(t),
  } satisfies Phase<string>,
  replay: {
    name: 'replay',
    what: "replayToken: tokens on catalogue scenarios (own, edited, other scenarios')",
    arb: tokenInputArb,
    run: (x: TokenInput) => replayProperty(corpus().programs[x.scenario] as never, x.token, x.before),
  } satisfies Phase<TokenInput>,
  trace: {
    name: 'trace',
    what: 'loadTrace: edited, other-version, garbled trace files',
    arb: traceTextArb,
    run: (t: string) => traceProperty(t),
  } satisfies Phase<string>,
} as const;

export type LibraryPhaseName = keyof typeof PHASES;

/** The command line, a process per input; `root` is a scratch directory set up by `setupCliDir`. */
export function cliPhase(root: string): AsyncPhase<CliInput> {
  return {
    name: 'cli',
    what: 'dmabuf-check processes: generated argument vectors and scenario files',
    arb: cliInputArb,
    run: async (x, n) => `exit ${(await cliProperty(x, root, n)).code}`,
  };
}

export interface Failure {
  readonly kind: ViolationKind | 'harness';
  /** The seed and the run (0-based) that failed first: fast-check's `seed` and `path` replay it. */
  readonly seed: number;
  readonly index: number;
  readonly message: string;
  /** The input, shrunk by fast-check (fc.stringify). */
  readonly input?: string;
}

export interface PhaseResult {
  readonly name: string;
  readonly what: string;
  readonly seed: number;
  inputs: number;
  crashes: number;
  hangs: number;
  badErrors: number;
  readonly labels: Record<string, number>;
  ms: number;
  readonly failures: Failure[];
}

function newResult(p: { name: string; what: string }, seed: number): PhaseResult {
  return {
    name: p.name,
    what: p.what,
    seed,
    inputs: 0,
    crashes: 0,
    hangs: 0,
    badErrors: 0,
    labels: {},
    ms: 0,
    failures: [],
  };
}

function record(r: PhaseResult, e: unknown, index: number): void {
  const v = e instanceof Violation ? e : null;
  const kind: ViolationKind | 'harness' = v ? v.kind : 'harness';
  if (kind === 'crash' || kind === 'harness') r.crashes++;
  else if (kind === 'hang') r.hangs++;
  else r.badErrors++;
  if (!r.failures.some((f) => f.kind === kind)) {
    r.failures.push({
      kind,
      seed: r.seed,
      index,
      message: v ? v.message : `the fuzz harness itself threw: ${String(e)}`,
    });
  }
}

/** Shrinking one failure is given this long; the input found so far is kept. */
const SHRINK_MS = 60_000;

/**
 * The replay of a failing run: fast-check's `path` makes the run's input the
 * first one the property sees; when it fails again, the later calls are
 * fast-check shrinking it; when it passes (a timing that does not recur),
 * the later calls are other runs, skipped, and the input is kept as it was.
 */
class Replayed {
  private seen = false;
  private input: unknown;
  failed = false;

  /** Whether to run this call: the first, or a shrink step after it failed. */
  first(x: unknown): boolean {
    if (!this.seen) {
      this.seen = true;
      this.input = x;
      return true;
    }
    return this.failed;
  }

  check(f: () => unknown): boolean {
    try {
      f();
    } catch (e) {
      this.failed = true;
      throw e;
    }
    return true;
  }

  failure(out: fc.RunDetails<[unknown]>, f: Failure): Failure {
    if (out.failed && out.counterexample) {
      const err = out.errorInstance;
      return {
        ...f,
        message: err instanceof Error ? err.message : String(err),
        input: fc.stringify(out.counterexample[0]),
      };
    }
    return {
      ...f,
      message: `${f.message} (it did not fail again when replayed alone)`,
      ...(this.seen ? { input: fc.stringify(this.input) } : {}),
    };
  }
}

/** Runs a library phase for `numRuns` inputs; `beat(i)` is called before each (the watchdog's heartbeat). */
export function runPhase<T>(p: Phase<T>, numRuns: number, seed: number, beat?: (i: number) => void): PhaseResult {
  const r = newResult(p, seed);
  const t0 = performance.now();
  let i = 0;
  try {
    fc.check(
      fc.property(p.arb, (x) => {
        const index = i++;
        beat?.(index);
        r.inputs++;
        try {
          const label = p.run(x);
          r.labels[label] = (r.labels[label] ?? 0) + 1;
        } catch (e) {
          record(r, e, index);
        }
        return true;
      }),
      { numRuns, seed },
    );
  } catch (e) {
    record(r, e, i);
  }
  r.ms = performance.now() - t0;
  for (let k = 0; k < r.failures.length; k++) {
    const f = r.failures[k] as Failure;
    if (f.kind === 'harness') continue;
    // Replays the failing run (its first call) and, when it fails again, lets fast-check shrink it.
    const replay = new Replayed();
    const out = fc.check(
      fc.property(p.arb, (x) => {
        if (!replay.first(x)) return true;
        return replay.check(() => p.run(x));
      }),
      { numRuns, seed, path: String(f.index), interruptAfterTimeLimit: SHRINK_MS },
    );
    r.failures[k] = replay.failure(out as fc.RunDetails<[unknown]>, f);
  }
  return r;
}

/** The same for an async phase (the command line), one input at a time. */
export async function runAsyncPhase<T>(p: AsyncPhase<T>, numRuns: number, seed: number): Promise<PhaseResult> {
  const r = newResult(p, seed);
  const t0 = performance.now();
  let i = 0;
  try {
    await fc.check(
      fc.asyncProperty(p.arb, async (x) => {
        const index = i++;
        r.inputs++;
        try {
          const label = await p.run(x, index);
          r.labels[label] = (r.labels[label] ?? 0) + 1;
        } catch (e) {
          record(r, e, index);
        }
        return true;
      }),
      { numRuns, seed },
    );
  } catch (e) {
    record(r, e, i);
  }
  r.ms = performance.now() - t0;
  for (let k = 0; k < r.failures.length; k++) {
    const f = r.failures[k] as Failure;
    if (f.kind === 'harness') continue;
    const replay = new Replayed();
    let n = 1_000_000;
    const out = await fc.check(
      fc.asyncProperty(p.arb, async (x) => {
        if (!replay.first(x)) return true;
        try {
          await p.run(x, n++);
        } catch (e) {
          replay.failed = true;
          throw e;
        }
        return true;
      }),
      { numRuns, seed, path: String(f.index), interruptAfterTimeLimit: SHRINK_MS * 3 },
    );
    r.failures[k] = replay.failure(out as fc.RunDetails<[unknown]>, f);
  }
  return r;
}

/** One line per failure, for a test's assertion message or the fuzz summary. */
export function describeFailures(r: PhaseResult): string[] {
  return r.failures.map(
    (f) =>
      `${r.name} ${f.kind} (run ${f.index}, seed ${f.seed}): ${f.message}${f.input ? `\n  input: ${f.input.length > 2000 ? `${f.input.slice(0, 2000)}… (${f.input.length} characters)` : f.input}` : ''}`,
  );
}
