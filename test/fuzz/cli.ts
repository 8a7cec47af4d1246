/**
 * Fuzzing the command line: generated argument vectors and scenario files,
 * run as a user runs them (`node bin/dmabuf-check.js …`, a process each).
 *
 * Every vector holds parts (a path, an option, a token) each known to be
 * good, bad, or of unknown effect (`--help`). Then: exit 2 when a part is
 * bad, 0 or 1 when all are good, never 3 or a signal; stderr without a stack
 * trace; a refused scenario file named with `file:line:col`; with `--json`,
 * stdout empty or one JSON document; the process done within a bound.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { ReplayMismatchError } from '../../src/explorer/replay.ts';
import { TokenError } from '../../src/explorer/token.ts';
import { compile } from '../../src/scenario/compile.ts';
import { ScenarioError } from '../../src/scenario/errors.ts';
import { loadScenario } from '../../src/scenario/load-yaml.ts';
import { replayToken } from '../../src/trace/replay.ts';
import { garbageArb, mutatedScenarioArb, tokenTextArb } from './arbitraries.ts';
import { corpus, ROOT } from './corpus.ts';
import { STACK_RE, Violation } from './properties.ts';

const BIN = path.join(ROOT, 'bin', 'dmabuf-check.js');

/** A part's effect: `true` bad input (exit 2), `false` fine, `null` unknown (`--help` ends the run with 0). */
type Bad = boolean | null;

interface FilePart {
  readonly kind: 'file';
  /** Path relative to the run's directory. */
  readonly name: string;
  readonly bytes: Uint8Array;
}

export interface CliInput {
  readonly command: 'check' | 'replay' | 'playground' | 'default';
  /** Files to write in the run's directory before running. */
  readonly files: readonly FilePart[];
  readonly argv: readonly string[];
  /** Whether some part is bad (exit 2), none is (0 or 1), or the outcome is open (null). */
  readonly bad: Bad;
  /** Scenario files the command line must refuse with `file:line:col` (when it gets to reading them). */
  readonly refusedFiles: readonly string[];
  /** Whether an option is bad (the command line stops before reading any file). */
  readonly badOption: boolean;
  readonly json: boolean;
}

const enc = new TextEncoder();

/** How Node reads a file as UTF-8 (invalid sequences become U+FFFD). */
function asRead(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('utf8');
}

/** The scenario's name when `bytes` load as a scenario (library, no modules), null when refused. */
function loads(bytes: Uint8Array, name: string): string | null {
  try {
    return loadScenario(asRead(bytes), name).name;
  } catch (e) {
    if (e instanceof ScenarioError) return null;
    throw e;
  }
}

/** Scenario file contents: mutated catalogue text, garbage, or bytes that are not UTF-8. */
const fileBytesArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 5, arbitrary: mutatedScenarioArb.map((t) => enc.encode(t)) },
  { weight: 2, arbitrary: garbageArb.map((t) => enc.encode(t)) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 400 }) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.nat(), fc.nat(), fc.constantFrom([0xc3, 0x28], [0xff], [0xe2, 0x82], [0xed, 0xa0, 0x80]))
      .map(([i, at, bad]) => {
        const cat = corpus().catalogue;
        const b = enc.encode((cat[i % cat.length] as { text: string }).text);
        const p = at % (b.length + 1);
        return new Uint8Array([...b.slice(0, p), ...bad, ...b.slice(p)]);
      }),
  },
  {
    weight: 1,
    arbitrary: fc.nat().map((i) => {
      // UTF-16 with a byte-order mark, as some editors save.
      const cat = corpus().catalogue;
      return new Uint8Array(Buffer.from(`\uFEFF${(cat[i % cat.length] as { text: string }).text}`, 'utf16le'));
    }),
  },
);

interface Part {
  readonly args: readonly string[];
  /** The scenario's name, for a file that loads (two with one name: the second is refused). */
  readonly scenario?: string;
  readonly bad: Bad;
  readonly files?: readonly FilePart[];
  readonly refused?: readonly string[];
  readonly option?: boolean;
  /** Must come last (an option missing its value). */
  readonly last?: boolean;
}

/** A scenario path for `check`: a generated file, a catalogue copy, or a path that is not a scenario. */
function pathPart(n: number): fc.Arbitrary<Part> {
  return fc.oneof(
    {
      weight: 6,
      arbitrary: fc.tuple(fileBytesArb, fc.constantFrom('.yaml', '.yml', '.YAML', '')).map(([bytes, ext]): Part => {
        const name = `in${n}${ext}`;
        const scenario = loads(bytes, name);
        const bad = scenario === null;
        return {
          args: [name],
          bad,
          files: [{ kind: 'file', name, bytes }],
          refused: bad ? [name] : [],
          ...(scenario !== null ? { scenario } : {}),
        };
      }),
    },
    {
      weight: 2,
      arbitrary: fc.nat().map((i): Part => {
        const cat = corpus().catalogue;
        const c = cat[i % cat.length] as { file: string; text: string };
        const name = `good ${n}/${path.basename(c.file)}`;
        const scenario = path.basename(c.file, '.yaml');
        return { args: [name], bad: false, scenario, files: [{ kind: 'file', name, bytes: enc.encode(c.text) }] };
      }),
    },
    {
      weight: 3,
      arbitrary: fc
        .constantFrom(
          'missing.yaml',
          'no/such/dir/',
          '',
          ' ',
          '-',
          'chekc',
          'replya',
          '../empty-dir',
          '../huge.yaml',
          '/dev/null',
          // Endless: read up to a bound, then refused.
          '/dev/zero',
          '/dev/urandom',
        )
        .map((p): Part => ({ args: [p], bad: true })),
    },
  );
}

const BAD_INTS = [
  '-1',
  '0',
  '1e309',
  '1.5',
  'abc',
  '',
  '0x10',
  ' 5',
  '99999999999999999999',
  'NaN',
  'Infinity',
  '-0',
  '1e3',
];

/** Options of `check`, good and bad. */
const checkOptionArb: fc.Arbitrary<Part> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom<Part>(
      { args: ['--json'], bad: false },
      { args: ['--no-color'], bad: false },
      { args: ['--seed', '5'], bad: false },
      { args: ['--seed', '4294967295'], bad: false },
      { args: ['--strategy', 'random'], bad: false },
      { args: ['--strategy', 'sleep'], bad: false },
      { args: ['--strategy', 'state'], bad: false },
      { args: ['--strategy', 'pct'], bad: false },
      { args: ['--workers', '1'], bad: false },
      { args: ['--workers', '2'], bad: false },
      { args: ['--max-executions', '20'], bad: false },
      { args: ['--timeout', '1.5'], bad: false },
      { args: ['--count'], bad: false },
      { args: ['--trace', 'out.json'], bad: false },
      { args: ['--mermaid'], bad: false },
    ),
  },
  {
    weight: 4,
    arbitrary: fc
      .tuple(fc.constantFrom('--max-executions', '--workers', '--seed', '--timeout'), fc.constantFrom(...BAD_INTS))
      // 0 is a seed.
      .map(([o, v]): Part => ({ args: [o, v], bad: !(o === '--seed' && v === '0'), option: true })),
  },
  {
    weight: 2,
    arbitrary: fc
      .constantFrom<readonly string[]>(
        ['--frobnicate'],
        ['--jsno'],
        ['-x'],
        ['--strategy', 'bogus'],
        ['--seed', '4294967296'],
        ['--timeout', '-1'],
        ['--token', 'dc1.00000000.a'],
        ['--port', '80'],
        ['--json', '--mermaid'],
        ['--max-executions=0'],
        ['--workers='],
      )
      .map((args): Part => ({ args, bad: true, option: true })),
  },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom('--max-executions', '--workers', '--seed', '--timeout', '--strategy')
      .map((o): Part => ({ args: [o], bad: true, option: true, last: true })),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom<Part>(
      { args: ['--help'], bad: null },
      { args: ['-h'], bad: null },
      { args: ['--version'], bad: null },
      { args: ['--trace', '.'], bad: null },
      { args: ['--html', 'out.html'], bad: null },
    ),
  },
);

/** `replay FILE --token …`: a catalogue scenario and its own, edited or foreign tokens, or a bad file. */
const replayArb: fc.Arbitrary<Part[]> = fc
  .record({
    scenario: fc.nat(),
    fileKind: fc.constantFrom('catalogue', 'catalogue', 'catalogue', 'generated', 'missing', 'dir', '/dev/zero'),
    bytes: fileBytesArb,
    tokens: fc.array(fc.oneof(tokenTextArb, fc.constant('own')), { maxLength: 3 }),
    options: fc.array(
      fc.constantFrom<Part>(
        { args: ['--json'], bad: false },
        { args: ['--mermaid'], bad: false },
        { args: ['--trace', 'trace.json'], bad: false },
        { args: ['--no-color'], bad: false },
        { args: ['--trace', '.'], bad: null },
        { args: ['--max-executions', '5'], bad: true, option: true },
        { args: ['--json', '--mermaid'], bad: true, option: true },
        { args: ['--frobnicate'], bad: true, option: true },
        { args: ['--help'], bad: null },
      ),
      { maxLength: 2 },
    ),
  })
  .map((x): Part[] => {
    const c = corpus();
    const i = x.scenario % c.catalogue.length;
    const own = c.tokens.filter((t) => t.scenario === i).map((t) => t.token);
    // A process argument cannot hold a NUL byte.
    const tokens = x.tokens.map((t, j) => (t === 'own' ? (own[j % own.length] as string) : t.replaceAll('\u0000', '')));
    const parts: Part[] = [];
    let program = null;
    if (x.fileKind === 'catalogue') {
      const cat = c.catalogue[i] as { file: string; text: string };
      const name = `replay/${path.basename(cat.file)}`;
      parts.push({ args: [name], bad: false, files: [{ kind: 'file', name, bytes: enc.encode(cat.text) }] });
      program = c.programs[i] ?? null;
    } else if (x.fileKind === 'generated') {
      const name = 'replay.yaml';
      const text = asRead(x.bytes);
      let bad = true;
      try {
        program = compile(loadScenario(text, name));
        bad = false;
      } catch (e) {
        if (!(e instanceof ScenarioError)) throw e;
      }
      parts.push({ args: [name], bad, files: [{ kind: 'file', name, bytes: x.bytes }], refused: bad ? [name] : [] });
    } else {
      const p = x.fileKind === 'missing' ? 'missing.yaml' : x.fileKind === 'dir' ? '../empty-dir' : x.fileKind;
      parts.push({ args: [p], bad: true });
    }
    // The tokens replay (in-process) or not: the last is traced, the others run first.
    let tokenBad = tokens.length === 0;
    if (program && tokens.length) {
      try {
        replayToken(program, tokens[tokens.length - 1] as string, 'x', tokens.slice(0, -1));
      } catch (e) {
        if (!(e instanceof TokenError || e instanceof ReplayMismatchError)) throw e;
        tokenBad = true;
      }
    }
    parts.push({ args: tokens.flatMap((t) => ['--token', t]), bad: tokenBad });
    parts.push(...x.options);
    return parts;
  });

/** A command line: a command, its parts (at least one bad in most vectors), shuffled. */
export const cliInputArb: fc.Arbitrary<CliInput> = fc
  .record({
    command: fc.oneof(
      { weight: 3, arbitrary: fc.constantFrom('check' as const, 'default' as const) },
      { weight: 2, arbitrary: fc.constant('replay' as const) },
      { weight: 1, arbitrary: fc.constant('playground' as const) },
    ),
    paths: fc.array(fc.nat({ max: 3 }), { minLength: 1, maxLength: 3 }),
    options: fc.array(checkOptionArb, { maxLength: 3 }),
    order: fc.nat(),
  })
  .chain((x) => {
    if (x.command === 'replay') return replayArb.map((parts) => ({ command: x.command, parts }));
    if (x.command === 'playground')
      return fc
        .constantFrom<Part>(
          { args: ['--port', '-1'], bad: true, option: true },
          { args: ['--port', '65536'], bad: true, option: true },
          { args: ['--port', 'http'], bad: true, option: true },
          { args: ['--json'], bad: true, option: true },
          { args: ['extra-argument'], bad: true, option: true },
          { args: ['--port'], bad: true, option: true, last: true },
        )
        .map((p) => ({ command: x.command, parts: [p] }));
    return fc
      .tuple(...x.paths.map((_, i) => pathPart(i)))
      .map((ps) => ({ command: x.command, parts: [...ps, ...x.options] }));
  })
  .chain(({ command, parts }) =>
    fc.nat().map((seed): CliInput => {
      // A deterministic shuffle; parts that must come last stay last.
      const order = [...parts].sort((a, b) => Number(!!a.last) - Number(!!b.last));
      const movable = order.filter((p) => !p.last);
      for (let i = movable.length - 1; i > 0; i--) {
        const j = (seed + i * 7919) % (i + 1);
        [movable[i], movable[j]] = [movable[j] as Part, movable[i] as Part];
      }
      const lastParts = order.filter((p) => p.last).slice(0, 1);
      const all = [...movable, ...lastParts];
      // The replay file comes first (it is the command's argument; commander would take an option's value otherwise).
      if (command === 'replay') all.sort((a, b) => Number(!!b.files && !a.files) - Number(!!a.files && !b.files));
      const head = command === 'default' ? [] : [command];
      // Limits first, so that a generated option later on the line overrides them.
      const limits = command === 'check' || command === 'default' ? ['--max-executions', '300', '--timeout', '5'] : [];
      const bads = all.map((p) => p.bad);
      const args = all.flatMap((p) => p.args);
      // Good parts that are bad together: --json with --mermaid, two scenarios of one name.
      if (args.includes('--json') && args.includes('--mermaid')) bads.push(true);
      const names = all.flatMap((p) => (p.scenario !== undefined && p.bad === false ? [p.scenario] : []));
      if (new Set(names).size < names.length) bads.push(true);
      return {
        command,
        files: all.flatMap((p) => p.files ?? []),
        argv: [...head, ...limits, ...args],
        bad: bads.includes(null) ? null : bads.includes(true),
        refusedFiles: all.flatMap((p) => p.refused ?? []),
        badOption: all.some((p) => p.option && p.bad === true),
        json: all.some((p) => p.args.includes('--json')),
      };
    }),
  );

/** Files every run may name (as `../empty-dir`, `../huge.yaml`): an empty directory, a file over the size limit. */
export function setupCliDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(path.join(dir, 'empty-dir'), { recursive: true });
  writeFileSync(path.join(dir, 'huge.yaml'), `name: huge\n${'# padding\n'.repeat(300_000)}`);
}

export interface CliRunResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
  readonly timedOut: boolean;
}

/** Runs the command line in `cwd` (async: several can run at once). */
export function runCliAsync(argv: readonly string[], cwd: string, timeoutMs: number): Promise<CliRunResult> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [BIN, ...argv], {
      cwd,
      env: { ...process.env, NO_COLOR: '1', DMABUF_CHECK_SMALL_FIRST: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      if (stdout.length < 4_000_000) stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < 4_000_000) stderr += d;
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: performance.now() - t0, timedOut });
    });
  });
}

function reEscape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export const CLI_TIMEOUT_MS = 60_000;

/** Runs one input in a fresh directory under `root` and checks the rules; throws a {@link Violation}. */
export async function cliProperty(x: CliInput, root: string, n: number): Promise<CliRunResult> {
  const dir = path.join(root, `run${n}`);
  mkdirSync(dir, { recursive: true });
  for (const f of x.files) {
    mkdirSync(path.dirname(path.join(dir, f.name)), { recursive: true });
    writeFileSync(path.join(dir, f.name), f.bytes);
  }
  const r = await runCliAsync(x.argv, dir, CLI_TIMEOUT_MS);
  rmSync(dir, { recursive: true, force: true });
  const cmd = `dmabuf-check ${x.argv.map((a) => JSON.stringify(a)).join(' ')}`;
  if (r.timedOut) throw new Violation('hang', `${cmd}: no exit within ${CLI_TIMEOUT_MS} ms`);
  if (r.code === null) throw new Violation('crash', `${cmd}: killed by ${r.signal}`);
  if (r.code === 3 || r.code > 2)
    throw new Violation('crash', `${cmd}: exit ${r.code}: ${r.stderr.split('\n').slice(0, 3).join(' | ')}`);
  if (STACK_RE.test(r.stderr) || STACK_RE.test(r.stdout))
    throw new Violation('bad-error', `${cmd}: a stack trace in the output: ${r.stderr.slice(0, 500)}`);
  if (x.bad === true && r.code !== 2)
    throw new Violation('bad-error', `${cmd}: bad input, but exit ${r.code} (expected 2): ${r.stderr.slice(0, 300)}`);
  if (x.bad === false && r.code === 2)
    throw new Violation('bad-error', `${cmd}: good input, but exit 2: ${r.stderr.slice(0, 300)}`);
  if (x.bad !== null && !x.badOption && x.command !== 'replay') {
    for (const f of x.refusedFiles) {
      if (!new RegExp(`^${reEscape(f)}:\\d+:\\d+: `, 'm').test(r.stderr))
        throw new Violation(
          'bad-error',
          `${cmd}: refused ${f} without "${f}:line:col:" on stderr: ${r.stderr.slice(0, 300)}`,
        );
    }
  }
  if (x.json && x.bad !== null && r.stdout.trim()) {
    try {
      JSON.parse(r.stdout);
    } catch {
      throw new Violation(
        'bad-error',
        `${cmd}: --json, but stdout is not one JSON document: ${r.stdout.slice(0, 200)}`,
      );
    }
  }
  return r;
}
