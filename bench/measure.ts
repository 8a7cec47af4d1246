/**
 * One family size, measured in a process of its own so that its peak RSS is
 * its own: `node --import tsx bench/measure.ts '<Job as JSON>'` prints one
 * line `RESULT <SizeResult as JSON>`. bench/explore.bench.ts spawns it.
 */
import { checkScenario } from '../src/check.ts';
import { type ExploreOptions, type ExploreResult, explore } from '../src/explorer/explore.ts';
import type { Program } from '../src/explorer/program.ts';
import { compile } from '../src/scenario/compile.ts';
import { familyById, familySpec } from './families.ts';
import { CANDIDATES, DEFAULT_VARIANT, exploreOptions, type Variant } from './variants.ts';

export interface Job {
  readonly family: string;
  readonly params: readonly number[];
  /** Ids of the compared variants (bench/variants.ts; the default runs first, always). */
  readonly variants: readonly string[];
  /** Variant ids (and `traces`) not to run: a smaller size already hit the cap. */
  readonly skip: readonly string[];
  readonly capMs: number;
  readonly capExecutions: number;
  /** Runs shorter than this are repeated until this much time has passed (warm figures). */
  readonly minMs: number;
  /** Executions the brute-force trace count may run. */
  readonly traceCap: number;
  /** Also count the distinct traces among the default search's executions. */
  readonly countTraces: boolean;
  /** Measure the first counterexample (bug families). */
  readonly firstCex: boolean;
}

export interface Run {
  readonly verdict: string;
  readonly executions: number;
  readonly redundant: number;
  readonly steps: number;
  /** Wall and CPU milliseconds of one exploration (the median of the repeats after the first, when repeated). */
  readonly ms: number;
  readonly cpuMs: number;
  /** Wall time of the first run (after the warm-up). */
  readonly coldMs: number;
  readonly runs: number;
  /** Throughput over every repeat, per CPU second (single-threaded: per core). */
  readonly stepsPerCpuS: number;
  readonly execsPerCpuS: number;
  readonly complete: boolean;
  /** The cap (time or executions) stopped it. */
  readonly capped: boolean;
  readonly stopped: string | null;
  readonly fallbacks?: number;
}

export interface TraceFigures {
  /** Distinct Mazurkiewicz traces, or null when not countable within the caps. */
  readonly traces: number | null;
  /** `brute`: every interleaving enumerated; `counted`: among a complete default search's executions. */
  readonly source: 'brute' | 'counted' | null;
  readonly note: string;
  /** Executions of the default search equivalent to an earlier one (counted only). */
  readonly equivalent: number | null;
}

export interface CexFigures {
  /** explore() found a finding within the caps. */
  readonly found: boolean;
  /** explore() until the first finding, no minimisation, as the first thing in a fresh process. */
  readonly executions: number;
  readonly ms: number;
  readonly cpuMs: number;
  readonly steps: number;
  /** checkScenario(): first finding + minimisation + targeted search, as the command line does. */
  readonly checkMs: number;
  readonly checkVerdict: string;
  readonly met: boolean;
}

export interface SizeResult {
  readonly family: string;
  readonly params: readonly number[];
  readonly threads: number;
  readonly runs: Readonly<Record<string, Run | 'skipped'>>;
  /** Peak RSS (MiB) after the default search: the process's high-water mark. */
  readonly rssMiB: number;
  readonly traces: TraceFigures;
  readonly cex: CexFigures | null;
}

const now = () => performance.now();
const cpuNow = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

function timed(program: Program, v: Variant, job: Job): Run {
  const base: ExploreOptions = { stopOnFinding: false, minimise: false, maxExecutions: job.capExecutions };
  let runs = 0;
  let wall = 0;
  let cpu = 0;
  let steps = 0;
  let execs = 0;
  let coldMs = 0;
  const repeatWall: number[] = [];
  const repeatCpu: number[] = [];
  let last: ExploreResult | null = null;
  do {
    const t0 = now();
    const c0 = cpuNow();
    const r = explore(program, exploreOptions(v, { ...base, deadline: t0 + job.capMs }));
    const dt = now() - t0;
    const dc = cpuNow() - c0;
    if (runs === 0) coldMs = dt;
    else {
      repeatWall.push(dt);
      repeatCpu.push(dc);
    }
    runs++;
    wall += dt;
    cpu += dc;
    steps += r.stats.steps;
    execs += r.stats.executions;
    last = r;
    if (!r.stats.complete) break;
  } while (wall < job.minMs);
  const r = last as ExploreResult;
  const capped = !r.stats.complete;
  const fallbacks = (r.stats as { fallbacks?: number }).fallbacks;
  return {
    verdict: capped ? 'unknown' : r.verdict,
    executions: r.stats.executions,
    redundant: r.stats.redundant,
    steps: r.stats.steps,
    ms: runs > 1 ? median(repeatWall) : wall,
    cpuMs: runs > 1 ? median(repeatCpu) : cpu,
    coldMs,
    runs,
    stepsPerCpuS: cpu > 0 ? (steps / cpu) * 1000 : 0,
    execsPerCpuS: cpu > 0 ? (execs / cpu) * 1000 : 0,
    complete: r.stats.complete,
    capped,
    stopped: r.stopped ?? (capped ? 'cap' : null),
    ...(fallbacks !== undefined ? { fallbacks } : {}),
  };
}

interface MazurkiewiczModule {
  enumerateTraces?: (
    p: Program,
    o: { maxExecutions: number; checkSwaps?: boolean },
  ) => { executions: number; complete: boolean; traces: { size: number } | number };
  countTraces?: (
    p: Program,
    o: ExploreOptions,
  ) => { result: ExploreResult; counter: { count: { traces: number; equivalent: number } } };
}

/** src/explorer/mazurkiewicz.ts, when this checkout has it. */
async function mazurkiewicz(): Promise<MazurkiewiczModule | null> {
  try {
    const url = new URL('../src/explorer/mazurkiewicz.ts', import.meta.url).href;
    return (await import(url)) as MazurkiewiczModule;
  } catch {
    return null;
  }
}

async function traceFigures(program: Program, job: Job, dflt: Run): Promise<TraceFigures> {
  const none = (note: string): TraceFigures => ({ traces: null, source: null, note, equivalent: null });
  const mz = await mazurkiewicz();
  if (!mz?.enumerateTraces) return none('no src/explorer/mazurkiewicz.ts');
  let equivalent: number | null = null;
  let counted: number | null = null;
  // Distinct traces among the default search's executions: the trace count when that search is complete (and sound).
  if (job.countTraces && mz.countTraces && dflt.complete) {
    const { result, counter } = mz.countTraces(program, {
      maxExecutions: job.capExecutions,
      deadline: now() + job.capMs,
    });
    if (result.stats.complete) {
      counted = counter.count.traces;
      equivalent = counter.count.equivalent;
    }
  }
  if (!job.skip.includes('traces')) {
    const e = mz.enumerateTraces(program, { maxExecutions: job.traceCap, checkSwaps: false });
    const n = typeof e.traces === 'number' ? e.traces : e.traces.size;
    if (e.complete) return { traces: n, source: 'brute', note: `every interleaving (${e.executions})`, equivalent };
  }
  if (counted !== null)
    return { traces: counted, source: 'counted', note: 'distinct traces among the default search', equivalent };
  return { ...none(`brute force > ${job.traceCap} interleavings`), equivalent };
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] ?? '{}') as Job;
  const family = familyById(job.family);
  const spec = familySpec(family, job.params);
  const program = compile(spec);
  let cex: CexFigures | null = null;
  if (job.firstCex) {
    // Cold, as the first thing this process does after loading the modules.
    const t0 = now();
    const c0 = cpuNow();
    const r = explore(program, { minimise: false, deadline: t0 + job.capMs, maxExecutions: job.capExecutions });
    const ms = now() - t0;
    const cpuMs = cpuNow() - c0;
    const t1 = now();
    const c = checkScenario(spec, `${spec.name}.yaml`, { timeoutMs: job.capMs });
    cex = {
      found: r.verdict === 'bug',
      executions: r.stats.executions,
      steps: r.stats.steps,
      ms,
      cpuMs,
      checkMs: now() - t1,
      checkVerdict: c.verdict,
      met: c.met,
    };
  }
  // Warm-up: every strategy compared runs the smallest size briefly, so no column pays the JIT's warm-up alone.
  const warm = compile(familySpec(family, family.sizes[0]?.params ?? job.params));
  for (const v of [DEFAULT_VARIANT, ...CANDIDATES.filter((c) => job.variants.includes(c.id))])
    explore(warm, exploreOptions(v, { stopOnFinding: false, minimise: false, deadline: now() + 100 }));
  const runs: Record<string, Run | 'skipped'> = {};
  const dflt = timed(program, DEFAULT_VARIANT, job);
  runs[DEFAULT_VARIANT.id] = dflt;
  const rssMiB = process.resourceUsage().maxRSS / 1024;
  for (const id of job.variants) {
    const v = CANDIDATES.find((c) => c.id === id);
    if (v) runs[id] = job.skip.includes(id) ? 'skipped' : timed(program, v, job);
  }
  const traces = await traceFigures(program, job, dflt);
  const out: SizeResult = {
    family: job.family,
    params: job.params,
    threads: program.threads.length,
    runs,
    rssMiB,
    traces,
    cex,
  };
  process.stdout.write(`RESULT ${JSON.stringify(out)}\n`);
}

await main();
