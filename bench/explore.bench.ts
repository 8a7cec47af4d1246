/**
 * `npm run bench`: the project's benchmark (docs/benchmark.md).
 *
 * 1. the catalogue table: every bundled scenario checked as `npm start` does;
 * 2. the parametric families (bench/families.ts), each size in a process of
 *    its own (bench/measure.ts): verdict, executions, Mazurkiewicz traces,
 *    redundant executions, throughput, peak RSS, time, and the default
 *    search against the other strategies (bench/variants.ts);
 * 3. the first counterexample of kvm-noretry×ttm, in-process and from the
 *    command line as a user runs it;
 * 4. SPIN on the same KVM × TTM protocol (bench/spin/), as a user runs it;
 * 5. bench/out/scaling.svg: time against size, dmabuf-check and SPIN;
 * 6. the issue's targets against what was measured.
 *
 * Environment knobs (defaults: full run / BENCH_QUICK=1):
 *   BENCH_QUICK=1             ~30 s: fewer sizes, smaller caps, no catalogue naive runs
 *   BENCH_CAP_MS              per size and strategy exploration cap (3000 / 800)
 *   BENCH_CAP_EXECUTIONS      per size and strategy execution cap (1,000,000)
 *   BENCH_MIN_MS              repeat shorter runs until this long, for warm figures (300 / 100)
 *   BENCH_TRACE_CAP           interleavings the brute-force trace count may run (3000 / 500)
 *   BENCH_FAMILIES            comma-separated family ids (all)
 *   BENCH_NO_SKIP=1           run every size even when a smaller one hit the cap
 *   BENCH_CATALOGUE=0         skip the catalogue table
 *   BENCH_NAIVE_CAP           catalogue: cap of the sleep-set and naive runs (10,000; quick: not run)
 *   BENCH_CLI=0               skip the command-line timings
 *   BENCH_SPIN=0              skip SPIN; BENCH_NO_INSTALL=1: do not apt-get install it
 *   BENCH_SPIN_CAP_MS         pan's wall-clock cap (40000 / 5000)
 *   BENCH_SPIN_NOREDUCE_CAP_MS  the same for the no-POR runs (10000 / 5000)
 *   BENCH_SPIN_MEMLIM_MIB     pan's -DMEMLIM (2048)
 *   BENCH_SPIN_NOREDUCE       also run SPIN without partial-order reduction (1 / 0)
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CatalogueRow, catalogue, catalogueRows } from './catalogue.ts';
import { FAMILIES, type Family, kvmNoRetryTtm, kvmRetryTtm, type Size, scenarioName } from './families.ts';
import type { Job, Run, SizeResult } from './measure.ts';
import { kvmTtmPromela } from './spin/kvm-ttm-pml.ts';
import { ensureSpin, runSpin, type SpinRun } from './spin/spin.ts';
import { type Series, scalingSvg } from './svg.ts';
import { measureSymmetry, SYMMETRY_FAMILIES, type SymmetryCell } from './symmetry.ts';
import { int, ms, type Row, rate, ratio, table } from './table.ts';
import { acceptedVariants, type Variant } from './variants.ts';
import { measureWorkers, type WorkersRun } from './workers.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const OUT = path.join(ROOT, 'bench', 'out');
const env = process.env;
const QUICK = env.BENCH_QUICK === '1';
const knob = (name: string, full: number, quick: number) => Number(env[name] ?? (QUICK ? quick : full));
const CAP_MS = knob('BENCH_CAP_MS', 3000, 800);
const CAP_EXECUTIONS = knob('BENCH_CAP_EXECUTIONS', 1_000_000, 1_000_000);
const MIN_MS = knob('BENCH_MIN_MS', 300, 100);
const TRACE_CAP = knob('BENCH_TRACE_CAP', 3000, 500);
const NAIVE_CAP = knob('BENCH_NAIVE_CAP', 10_000, 0);
const SPIN_CAP_MS = knob('BENCH_SPIN_CAP_MS', 40_000, 5000);
const SPIN_NOREDUCE_CAP_MS = knob('BENCH_SPIN_NOREDUCE_CAP_MS', 10_000, 5000);
const SPIN_MEMLIM = knob('BENCH_SPIN_MEMLIM_MIB', 2048, 2048);
const SPIN_NOREDUCE = knob('BENCH_SPIN_NOREDUCE', 1, 0) === 1;
const NO_SKIP = env.BENCH_NO_SKIP === '1';
const CATALOGUE = env.BENCH_CATALOGUE !== '0';
const CLI = env.BENCH_CLI !== '0';
const SPIN = env.BENCH_SPIN !== '0';
const ONLY = env.BENCH_FAMILIES?.split(',').filter(Boolean) ?? null;

const say = (s = '') => process.stdout.write(`${s}\n`);
const note = (s: string) => process.stderr.write(s);
const heading = (s: string) => say(`\n== ${s} ${'='.repeat(Math.max(3, 96 - s.length))}\n`);
const started = performance.now();

mkdirSync(path.join(OUT, 'scenarios'), { recursive: true });

// ---------------------------------------------------------------- header

const cpu = os.cpus()[0]?.model.trim() ?? 'unknown CPU';
say(`dmabuf-check benchmark, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`);
say(
  `${os.cpus().length} × ${cpu}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, node ${process.version}, load average ${os
    .loadavg()
    .map((x) => x.toFixed(1))
    .join(' ')}`,
);
say(
  `${QUICK ? 'BENCH_QUICK=1' : 'full run'}: cap ${int(CAP_MS)} ms / ${int(CAP_EXECUTIONS)} executions per size and strategy, ` +
    `warm repeats to ${MIN_MS} ms, brute-force traces up to ${int(TRACE_CAP)} interleavings, SPIN cap ${int(SPIN_CAP_MS)} ms`,
);

// ---------------------------------------------------------------- 1. catalogue

let catalogueResult: CatalogueRow[] = [];
if (CATALOGUE) {
  heading('1. The catalogue (scenarios/)');
  catalogueResult = catalogue(path.join(ROOT, 'scenarios'), QUICK ? 0 : NAIVE_CAP, QUICK ? 20 : 200, note);
  say(table(catalogueRows(catalogueResult)));
  say(
    'executions/steps: what the check runs (first counterexample + minimisation for bugs; everything for safe); exec/s and steps/s per CPU second, warm;\n' +
      (QUICK
        ? 'all (…): not run with BENCH_QUICK=1.'
        : `all (…): executions covering every interleaving with the default search / sleep sets only / no reduction (capped at ${int(NAIVE_CAP)}); reduction = naive / default.`),
  );
}

// ---------------------------------------------------------------- 2. families

heading('2. Parametric families');
const accepted = acceptedVariants();
const variants: readonly Variant[] = accepted.variants;
say(
  `compared with the default search: ${variants.map((v) => `${v.id} (${v.label})`).join(', ') || 'nothing'}` +
    (accepted.dropped.length ? `; left out: ${accepted.dropped.map((d) => `${d.id} (${d.why})`).join(', ')}` : ''),
);

const families = FAMILIES.filter((f) => !ONLY || ONLY.includes(f.id));
const sizesOf = (f: Family): readonly Size[] => (QUICK ? f.quickSizes : f.sizes);
const leq = (a: readonly number[], b: readonly number[]) => a.every((x, i) => x <= (b[i] ?? 0));

const results = new Map<string, SizeResult[]>();
const cliMs = new Map<string, { ms: number; status: number | null; capped: boolean }>();

function measure(f: Family, s: Size, skip: string[]): SizeResult | null {
  const job: Job = {
    family: f.id,
    params: s.params,
    variants: variants.map((v) => v.id),
    skip,
    capMs: CAP_MS,
    capExecutions: CAP_EXECUTIONS,
    minMs: MIN_MS,
    traceCap: TRACE_CAP,
    countTraces: true,
    firstCex: f.expect === 'bug',
  };
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', path.join(ROOT, 'bench', 'measure.ts'), JSON.stringify(job)],
    {
      cwd: ROOT,
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
      timeout: CAP_MS * (variants.length + 4) + 120_000,
    },
  );
  const line = r.stdout?.split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) {
    say(
      `  ${f.name} ${s.label}: the measuring process failed (${r.signal ?? r.status}): ${(r.stderr ?? '').trim().slice(-400)}`,
    );
    return null;
  }
  return JSON.parse(line.slice('RESULT '.length)) as SizeResult;
}

/** `node bin/dmabuf-check.js FILE` as a user runs it: wall clock, start-up included. */
function cli(file: string, capMs: number): { ms: number; status: number | null; capped: boolean } {
  const t0 = performance.now();
  const r = spawnSync(
    process.execPath,
    [
      path.join(ROOT, 'bin', 'dmabuf-check.js'),
      file,
      '--no-color',
      '--timeout',
      String(Math.max(1, Math.ceil(capMs / 1000))),
    ],
    { cwd: ROOT, encoding: 'utf8', timeout: capMs + 60_000 },
  );
  const t = performance.now() - t0;
  // --timeout also stops the minimisation of a counterexample (the verdict stays bug): count that as capped too.
  return { ms: t, status: r.status, capped: /unknown/.test(r.stdout ?? '') || t >= capMs };
}

/** executions / traces: "1.00" only when exactly 1. */
const perTrace = (q: number) => (q === 1 ? '1.00' : q.toFixed(Math.abs(q - 1) < 0.01 ? 4 : 2));
const isRun = (x: Run | 'skipped' | undefined): x is Run => x !== undefined && x !== 'skipped';
const capOr = (r: Run | 'skipped' | undefined, f: (r: Run) => string) =>
  !isRun(r) ? (r === 'skipped' ? '> cap*' : '–') : r.capped ? `> ${f(r)}` : f(r);

function familyRows(f: Family, rs: readonly SizeResult[]): Row[] {
  return rs.map((r) => {
    const d = r.runs.default as Run;
    const t = r.traces;
    const traces = t.traces === null ? '–' : `${int(t.traces)}${t.source === 'counted' ? '°' : ''}`;
    const row: Record<string, string> = {
      size: r.params.join('×'),
      verdict: d.capped ? 'unknown' : d.verdict,
      executions: `${d.capped ? '> ' : ''}${int(d.executions)}`,
      traces,
      'exec/traces': t.traces && !d.capped ? perTrace(d.executions / t.traces) : '–',
      redundant: int(d.redundant),
      'steps/s': rate(d.stepsPerCpuS),
      'exec/s': rate(d.execsPerCpuS),
      'RSS MiB': r.rssMiB.toFixed(0),
      ms: `${d.capped ? '> ' : ''}${ms(d.ms)}`,
      'cpu ms': `${d.capped ? '> ' : ''}${ms(d.cpuMs)}`,
    };
    for (const v of variants) {
      const x = r.runs[v.id];
      row[`${v.id} exec`] = capOr(x, (y) => int(y.executions));
      row[`${v.id} ms`] = capOr(x, (y) => ms(y.ms));
      row[`vs ${v.id}`] =
        isRun(x) && !d.capped
          ? `${x.capped ? '> ' : ''}${ratio(x.cpuMs / d.cpuMs)}`
          : x === 'skipped' && !d.capped
            ? '> cap*'
            : '–';
    }
    if (f.expect === 'bug' && r.cex) {
      row['1st cex exec'] = r.cex.found ? int(r.cex.executions) : '–';
      row['1st cex ms'] = r.cex.found ? ms(r.cex.ms) : `> ${ms(CAP_MS)}`;
      row['check ms'] = `${r.cex.checkMs >= CAP_MS ? '> ' : ''}${ms(r.cex.checkMs)}`;
      const c = cliMs.get(`${f.id}:${r.params.join('x')}`);
      row['CLI ms'] = c ? `${c.capped ? '> ' : ''}${ms(c.ms)}` : '–';
    }
    return row;
  });
}

for (const f of families) {
  heading(`${f.name}: ${f.title} (${f.params.join(' × ')})`);
  const cappedAt = new Map<string, (readonly number[])[]>();
  const rs: SizeResult[] = [];
  for (const s of sizesOf(f)) {
    const skip = NO_SKIP
      ? []
      : [...variants.map((v) => v.id), 'traces'].filter((id) => (cappedAt.get(id) ?? []).some((p) => leq(p, s.params)));
    note(`  ${f.name} ${s.label} …`);
    const yamlFile = path.join(OUT, 'scenarios', `${scenarioName(f, s.params)}.yaml`);
    writeFileSync(yamlFile, f.yaml(s.params));
    const r = measure(f, s, skip);
    if (!r) continue;
    // The command line as a user runs it (--timeout twice the cap: it also starts cold and minimises):
    // the bug family always, the safe one while the default search finishes within the cap.
    if (CLI && (f === kvmNoRetryTtm || (f === kvmRetryTtm && !(r.runs.default as Run).capped)))
      cliMs.set(`${f.id}:${s.params.join('x')}`, cli(path.relative(ROOT, yamlFile), 2 * CAP_MS));
    note(` ${Math.round((performance.now() - started) / 1000)} s\n`);
    for (const v of variants) {
      const x = r.runs[v.id];
      if (isRun(x) && x.capped) cappedAt.set(v.id, [...(cappedAt.get(v.id) ?? []), s.params]);
    }
    if (r.traces.source !== 'brute') cappedAt.set('traces', [...(cappedAt.get('traces') ?? []), s.params]);
    rs.push(r);
  }
  results.set(f.id, rs);
  say(table(familyRows(f, rs)));
}
say(
  [
    'size: the family parameters; verdict, executions, redundant (abandoned, every runnable thread asleep), steps/s and exec/s (per CPU second),',
    'RSS MiB (peak, measuring process) and ms (wall, one exploration; median of warm repeats when short) are the default search covering every',
    'interleaving (no stop at a finding). traces: Mazurkiewicz traces, by brute force over every interleaving, or ° = distinct traces among the',
    "default search's executions (the trace count if the search is sound). <id> exec / <id> ms: the same for each compared strategy; vs <id> =",
    'its time / the default\'s time (the default\'s speed-up). "> x": stopped by the cap; "> cap*": not run, a smaller size already hit the cap.',
    'kvm-noretry: 1st cex = explore() to the first finding (cold process, no minimisation); check ms = checkScenario (minimisation included);',
    'CLI ms = `node bin/dmabuf-check.js FILE` wall clock, start-up included.',
  ].join('\n'),
);

// ---------------------------------------------------------------- 3. start-up

let startupMs: number | null = null;
if (CLI) {
  heading('3. Command-line start-up');
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    spawnSync(process.execPath, [path.join(ROOT, 'bin', 'dmabuf-check.js'), '--help'], { cwd: ROOT, encoding: 'utf8' });
    times.push(performance.now() - t0);
  }
  const tn = performance.now();
  spawnSync(process.execPath, ['-e', '0'], { encoding: 'utf8' });
  const bare = performance.now() - tn;
  startupMs = [...times].sort((a, b) => a - b)[1] as number;
  say(
    `node bin/dmabuf-check.js --help: ${ms(startupMs)} ms (median of 3; node alone: ${ms(bare)} ms). ` +
      'The rest is loading the command line (its dist/cli bundle when up to date, else the sources through tsx).',
  );
}

// ---------------------------------------------------------------- 4. SPIN

interface SpinRow {
  readonly family: Family;
  readonly size: Size;
  readonly por: SpinRun;
  readonly nored: SpinRun | null;
}
const spinRows: SpinRow[] = [];
if (SPIN && families.some((f) => f === kvmRetryTtm || f === kvmNoRetryTtm)) {
  heading('4. SPIN on the same protocol (bench/spin/kvm-ttm-pml.ts)');
  const tools = ensureSpin((s) => say(s), env.BENCH_NO_INSTALL !== '1');
  say(`${tools.message}${tools.version ? `: ${tools.version}` : ''}`);
  if (tools.ok) {
    for (const f of [kvmRetryTtm, kvmNoRetryTtm].filter((x) => families.includes(x))) {
      const retry = f === kvmRetryTtm;
      let porCapped: (readonly number[])[] = [];
      let noredCapped: (readonly number[])[] = [];
      for (const s of sizesOf(f)) {
        const [n = 1, k = 1, m = 1] = s.params;
        const pml = kvmTtmPromela({ vcpus: n, accesses: k, moves: m, retry });
        const dir = path.join(OUT, 'spin', `${f.id}-${s.params.join('x')}`);
        note(`  SPIN ${f.name} ${s.label} …`);
        const o = { capMs: SPIN_CAP_MS, memlimMiB: SPIN_MEMLIM, depth: 1_000_000 };
        const skipPor = !NO_SKIP && porCapped.some((p) => leq(p, s.params));
        const por = skipPor ? null : runSpin(pml, dir, { ...o, noReduce: false });
        if (!por) {
          note(' skipped\n');
          continue;
        }
        if (por.capped) porCapped = [...porCapped, s.params];
        let nored: SpinRun | null = null;
        if (SPIN_NOREDUCE && retry && !noredCapped.some((p) => leq(p, s.params))) {
          nored = runSpin(pml, `${dir}-noreduce`, { ...o, capMs: SPIN_NOREDUCE_CAP_MS, noReduce: true });
          if (nored.capped) noredCapped = [...noredCapped, s.params];
        }
        note(` ${Math.round((performance.now() - started) / 1000)} s\n`);
        spinRows.push({ family: f, size: s, por, nored });
      }
    }
    const byKey = (f: Family, s: Size) => results.get(f.id)?.find((r) => r.params.join('x') === s.params.join('x'));
    const rows: Row[] = spinRows.map(({ family: f, size: s, por, nored }) => {
      const r = byKey(f, s);
      const d = r?.runs.default as Run | undefined;
      const bug = f.expect === 'bug';
      // dmabuf-check's time for the same question: every interleaving (safe), or the first counterexample (bug).
      const dcMs = bug ? (r?.cex?.found ? r.cex.ms : null) : d && !d.capped ? d.ms : null;
      const dcCapped = bug ? !r?.cex?.found : (d?.capped ?? true);
      const dcCpu = bug ? (r?.cex?.found ? r.cex.cpuMs : null) : d?.cpuMs;
      const panCpu = por.panCpuMs ?? por.panMs;
      const all = por.spinMs + por.gccMs + por.panMs;
      const c = cliMs.get(`${f.id}:${s.params.join('x')}`);
      const pre = (capped: boolean) => (capped ? '> ' : '');
      const dcShown = dcMs ?? (bug ? CAP_MS : (d?.ms ?? CAP_MS));
      return {
        family: f.name,
        size: s.label,
        'SPIN errors': por.errors === null ? '–' : String(por.errors),
        states: por.states === null ? '–' : `${pre(por.capped)}${int(por.states)}`,
        transitions: por.transitions === null ? '–' : int(por.transitions),
        'spin -a ms': ms(por.spinMs),
        'gcc ms': ms(por.gccMs),
        'pan ms': `${pre(por.capped)}${ms(por.panMs)}`,
        'pan MiB': por.panRssMiB === null ? '–' : por.panRssMiB.toFixed(0),
        'no-POR states': nored ? `${pre(nored.capped)}${nored.states === null ? '?' : int(nored.states)}` : '–',
        'no-POR pan ms': nored ? `${pre(nored.capped)}${ms(nored.panMs)}` : '–',
        'dmabuf-check ms': `${pre(dcCapped)}${ms(dcShown)}`,
        'dc/pan': por.capped ? '–' : `${pre(dcCapped)}${ratio((dcCpu ?? dcShown) / Math.max(panCpu, 0.01))}`,
        'dc/(spin+gcc+pan)': por.capped ? '–' : `${pre(dcCapped)}${ratio(dcShown / all)}`,
        'CLI ms': c ? `${pre(c.capped)}${ms(c.ms)}` : '–',
        'CLI/(spin+gcc+pan)': c && !por.capped ? `${pre(c.capped)}${ratio(c.ms / all)}` : '–',
      };
    });
    say(table(rows));
    say(
      [
        "SPIN: spin -a model.pml; gcc -O2 -DSAFETY -DMEMLIM=… -o pan pan.c; ./pan -m1000000 (partial-order reduction on: SPIN's default);",
        'no-POR: the same compiled with -DNOREDUCE. states = states stored; pan ms = wall clock of ./pan; pan MiB = its peak RSS.',
        'dmabuf-check ms: the default search over every interleaving (retry: safe), or explore() to the first finding (no-retry), in-process.',
        "dc/pan = dmabuf-check CPU time / pan CPU time; dc/(spin+gcc+pan) = dmabuf-check wall / the three commands' wall;",
        'CLI = `node bin/dmabuf-check.js FILE` (start-up and, for bugs, minimisation included) against the three SPIN commands.',
      ].join('\n'),
    );
    // Sanity check of the encoding: SPIN must find the bug without the retry and nothing with it.
    say('\nsanity check of the Promela encoding:');
    for (const f of [kvmRetryTtm, kvmNoRetryTtm]) {
      const rows = spinRows.filter((r) => r.family === f && !r.por.capped);
      if (!rows.length) continue;
      const want = f === kvmRetryTtm ? 0 : 1;
      const ok = rows.every((r) => (want === 0 ? r.por.errors === 0 : (r.por.errors ?? 0) > 0));
      const asserts = [...new Set(rows.map((r) => r.por.assertion).filter((a): a is string => a !== null))];
      say(
        `  ${f.name}: ${ok ? 'as expected' : 'NOT as expected'}: ${want === 0 ? 'no error' : 'an assertion violated'} at ${rows
          .map((r) => `${r.size.label} (${r.por.errors ?? '?'})`)
          .join(', ')}${asserts.length ? `; SPIN: ${asserts.join('; ')}` : ''}`,
      );
    }
  }
}

// ---------------------------------------------------------------- 5. plot

const retryRs = results.get(kvmRetryTtm.id) ?? [];
if (retryRs.length) {
  const sizes = sizesOf(kvmRetryTtm).filter((s) => retryRs.some((r) => r.params.join('x') === s.params.join('x')));
  const at = (s: Size) => retryRs.find((r) => r.params.join('x') === s.params.join('x'));
  const spinAt = (s: Size) => spinRows.find((r) => r.family === kvmRetryTtm && r.size.label === s.label);
  const series: Series[] = [
    {
      name: 'dmabuf-check (default)',
      color: '#1f77b4',
      points: sizes.map((s) => {
        const d = at(s)?.runs.default as Run | undefined;
        return { ms: d ? d.ms : null, capped: d?.capped ?? false };
      }),
    },
  ];
  for (const v of variants.filter((x) => x.id === 'dpor' || x.id === 'sleep')) {
    series.push({
      name: `dmabuf-check (${v.id})`,
      color: v.id === 'dpor' ? '#17becf' : '#9467bd',
      dash: '4 3',
      points: sizes.map((s) => {
        const x = at(s)?.runs[v.id];
        return isRun(x) ? { ms: x.ms, capped: x.capped } : { ms: null };
      }),
    });
  }
  if (CLI)
    series.push({
      name: 'dmabuf-check CLI',
      color: '#aec7e8',
      dash: '2 2',
      points: sizes.map((s) => {
        const c = cliMs.get(`${kvmRetryTtm.id}:${s.params.join('x')}`);
        return c ? { ms: c.ms, capped: c.capped } : { ms: null };
      }),
    });
  if (spinRows.length) {
    series.push(
      {
        name: 'SPIN pan',
        color: '#d62728',
        points: sizes.map((s) => {
          const r = spinAt(s);
          return r ? { ms: r.por.panMs, capped: r.por.capped } : { ms: null };
        }),
      },
      {
        name: 'SPIN spin+gcc+pan',
        color: '#ff9896',
        dash: '2 2',
        points: sizes.map((s) => {
          const r = spinAt(s);
          return r ? { ms: r.por.spinMs + r.por.gccMs + r.por.panMs, capped: r.por.capped } : { ms: null };
        }),
      },
    );
  }
  const svg = scalingSvg(
    'kvm-retry×ttm: time to cover every interleaving',
    sizes.map((s) => s.label),
    series,
    `${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} × ${cpu}; caps: dmabuf-check ${CAP_MS} ms, SPIN ${SPIN_CAP_MS} ms`,
  );
  const file = path.join(OUT, 'scaling.svg');
  writeFileSync(file, svg);
  heading('5. Scaling plot');
  say(`wrote ${path.relative(process.cwd(), file)}`);
}

// ---------------------------------------------------------------- 6. targets

heading('6. Targets (issue 5) against this run');
/** Milliseconds with their unit (`ms` prints seconds itself from 10 s on). */
const msUnit = (n: number) => (n >= 10_000 ? ms(n) : `${ms(n)} ms`);
const verdictOf = (ok: boolean | null) => (ok === null ? 'not measured' : ok ? 'met' : 'NOT met');
{
  say('executions/traces = 1.00 and zero redundant executions, every family (default search):');
  for (const f of families) {
    const rs = (results.get(f.id) ?? []).filter((r) => !(r.runs.default as Run).capped);
    const withTraces = rs.filter((r) => r.traces.traces !== null);
    const ratios = withTraces.map((r) => (r.runs.default as Run).executions / (r.traces.traces as number));
    const redundant = rs.reduce((a, r) => a + (r.runs.default as Run).redundant, 0);
    const equivalent = rs.reduce((a, r) => a + (r.traces.equivalent ?? 0), 0);
    const lo = Math.min(...ratios);
    const hi = Math.max(...ratios);
    const ok = withTraces.length ? hi <= 1.0000001 && redundant === 0 : null;
    say(
      `  ${f.name.padEnd(22)} ${withTraces.length ? `exec/traces ${perTrace(lo)}–${perTrace(hi)} over ${withTraces.length} size(s) (${withTraces.filter((r) => r.traces.source === 'brute').length} by brute force)` : 'no size with a trace count'}; redundant ${redundant}, equivalent ${equivalent} over ${rs.length} complete size(s): ${verdictOf(ok)}`,
    );
  }
  const all = [...results.values()].flat().map((r) => r.runs.default as Run);
  const steps = all.map((d) => d.stepsPerCpuS).sort((a, b) => a - b);
  const maxSteps = steps[steps.length - 1] ?? 0;
  const medSteps = steps[steps.length >> 1] ?? 0;
  say(
    `≥ 1,000,000 model steps/s per core: families' default searches: median ${rate(medSteps)}, best ${rate(maxSteps)} steps per CPU second: ${verdictOf(steps.length ? maxSteps >= 1e6 : null)}`,
  );
  const short = catalogueResult.filter((r) => r.stepsPerExecution >= 10 && r.stepsPerExecution <= 30);
  const ex = short.map((r) => r.execsPerS).sort((a, b) => a - b);
  say(
    `≥ 100,000 executions/s on ~20-step scenarios: catalogue scenarios of 10–30 steps per execution (${short.length}): ` +
      (ex.length
        ? `median ${rate(ex[ex.length >> 1] as number)}, best ${rate(ex[ex.length - 1] as number)} executions per CPU second: ${verdictOf((ex[ex.length - 1] as number) >= 1e5)}`
        : 'not measured (BENCH_CATALOGUE=0)'),
  );
  const upTo = spinRows.filter((r) => r.family === kvmRetryTtm && leq(r.size.params, [3, 3, 3]));
  if (upTo.length) {
    const parts = upTo.map((r) => {
      const d = retryRs.find((x) => x.params.join('x') === r.size.params.join('x'))?.runs.default as Run | undefined;
      if (!d) return { label: r.size.label, text: '–', ok: null as boolean | null };
      if (r.por.capped) return { label: r.size.label, text: 'SPIN capped', ok: null };
      const panCpu = r.por.panCpuMs ?? r.por.panMs;
      const q = d.cpuMs / Math.max(panCpu, 0.01);
      return { label: r.size.label, text: `${d.capped ? '> ' : ''}${ratio(q)}`, ok: !d.capped && q <= 1 };
    });
    say(
      `dmabuf-check / SPIN (pan) time ≤ 1.0 up to 3×3×3 (kvm-retry×ttm, CPU time): ${parts.map((p) => `${p.label} ${p.text}`).join(', ')}: ${verdictOf(parts.every((p) => p.ok === true))}`,
    );
  } else say('dmabuf-check / SPIN time ≤ 1.0 up to 3×3×3: not measured (SPIN skipped)');
  const noretry = results.get(kvmNoRetryTtm.id) ?? [];
  const clis = noretry.map((r) => ({ r, c: cliMs.get(`${kvmNoRetryTtm.id}:${r.params.join('x')}`) }));
  if (clis.some((x) => x.c)) {
    const first = clis[0];
    say(
      `first counterexample of kvm-noretry×ttm < 100 ms including start-up (the command line, wall): ${clis
        .filter((x) => x.c)
        .map((x) => `${x.r.params.join('×')} ${ms((x.c as { ms: number }).ms)} ms`)
        .join(', ')}` +
        `${startupMs !== null ? ` (start-up alone ${ms(startupMs)} ms)` : ''}; in-process: ${noretry
          .map((r) => `${r.params.join('×')} ${r.cex?.found ? `${ms(r.cex.ms)} ms` : '–'}`)
          .join(', ')}: ${verdictOf(first?.c ? first.c.ms < 100 : null)}`,
    );
  } else say('first counterexample < 100 ms including start-up: not measured (BENCH_CLI=0)');
}

// `--workers`: the speed-up from two workers (bench/workers.ts); BENCH_WORKERS=0 skips it.
const workersResult = process.env.BENCH_WORKERS === '0' ? null : await measureWorkers(QUICK);
if (workersResult) {
  const [portfolio, split] = workersResult.runs as [WorkersRun, WorkersRun];
  const fig = (r: WorkersRun) =>
    `${r.label} on ${r.family} ${r.size}: ${msUnit(r.ms1)} with 1, ${msUnit(r.ms2)} with 2 (${r.units} units${r.fallback ? `, sleep sets in the units: ${r.fallback}` : ''}${r.same ? ', identical results' : ', RESULTS DIFFER'}): ${ratio(r.speedup)}`;
  say(
    `≥ 1.7× speed-up from two workers on the random portfolio: ${fig(portfolio)}; machine: ${workersResult.cores} cores, two busy threads run ${ratio(workersResult.capacity)} as fast as one: ${verdictOf(portfolio.speedup >= 1.7 && portfolio.same)}`,
  );
  say(`  speed-up from two workers, ${fig(split)}`);
} else say('≥ 1.7× speed-up from two workers: not measured (BENCH_WORKERS=0)');

// Symmetry (bench/symmetry.ts): the state-caching search with and without it; BENCH_SYMMETRY=0 skips it.
const symmetryRows = process.env.BENCH_SYMMETRY === '0' ? null : measureSymmetry(QUICK ? 3 : 5, QUICK ? 3000 : 15_000);
if (symmetryRows) {
  const ex = (c: SymmetryCell) => `${c.complete ? '' : '> '}${int(c.executions)}`;
  for (const f of SYMMETRY_FAMILIES) {
    const rows = symmetryRows.filter((r) => r.family === f.id);
    say(`\nsymmetry, ${f.title} (executions; states; > = capped at ${msUnit(QUICK ? 3000 : 15_000)}):`);
    say(
      table(
        rows.map((r) => ({
          N: String(r.n),
          'state + symmetry': `${ex(r.sym)} (${msUnit(r.sym.ms)})`,
          state: `${ex(r.state)} (${msUnit(r.state.ms)})`,
          'states (sym / plain)': `${int(r.sym.states ?? 0)} / ${int(r.state.states ?? 0)}`,
          'dfs (optimal DPOR)': `${ex(r.dfs)} (${msUnit(r.dfs.ms)})`,
          'plain / sym': r.sym.complete
            ? `${r.state.complete ? '' : '> '}${ratio(r.state.executions / Math.max(1, r.sym.executions))}`
            : '–',
        })),
      ),
    );
  }
  const five = symmetryRows.filter((r) => r.n === 5 && r.sym.complete);
  const best = symmetryRows
    .filter((r) => r.sym.complete)
    .map((r) => ({ r, q: r.state.executions / Math.max(1, r.sym.executions) }))
    .sort((a, b) => b.q - a.q)[0];
  say(
    `≥ 10× fewer executions with symmetry at 5 identical threads: ${
      five.length
        ? five
            .map((r) => `${r.family} ${r.state.complete ? '' : '> '}${ratio(r.state.executions / r.sym.executions)}`)
            .join(', ')
        : 'no family finished at N = 5 with symmetry'
    }; best measured ${best ? `${best.r.family} N = ${best.r.n}: ${best.r.state.complete ? '' : '> '}${ratio(best.q)}` : '–'}: ${verdictOf(five.length ? five.some((r) => r.state.executions / r.sym.executions >= 10) : false)}`,
  );
} else say('≥ 10× fewer executions with symmetry: not measured (BENCH_SYMMETRY=0)');

writeFileSync(
  path.join(OUT, 'results.json'),
  `${JSON.stringify(
    {
      date: new Date().toISOString(),
      machine: { cpus: os.cpus().length, cpu, node: process.version, loadavg: os.loadavg() },
      quick: QUICK,
      caps: { CAP_MS, CAP_EXECUTIONS, MIN_MS, TRACE_CAP, NAIVE_CAP, SPIN_CAP_MS, SPIN_MEMLIM },
      variants: variants.map((v) => v.id),
      dropped: accepted.dropped,
      catalogue: catalogueResult,
      families: Object.fromEntries(results),
      cli: Object.fromEntries(cliMs),
      startupMs,
      workers: workersResult,
      symmetry: symmetryRows,
      spin: spinRows.map((r) => ({ family: r.family.id, size: r.size.params, por: r.por, noreduce: r.nored })),
    },
    null,
    2,
  )}\n`,
);
say(
  `\nall figures: ${path.relative(process.cwd(), path.join(OUT, 'results.json'))}; total ${Math.round((performance.now() - started) / 1000)} s`,
);
