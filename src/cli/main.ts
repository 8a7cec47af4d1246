/**
 * The command line: `dmabuf-check [PATH…]` checks scenarios,
 * `dmabuf-check replay FILE --token T` re-runs one interleaving.
 *
 * Exit status: 0 every scenario met its expectation; 1 some did not; 2 bad
 * input (scenario, token, argument); 3 internal error.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import pc from 'picocolors';
import { type CheckResult, checkScenario } from '../check.ts';
import { NondeterminismError } from '../explorer/dfs.ts';
import type { Strategy } from '../explorer/explore.ts';
import { ReplayMismatchError } from '../explorer/replay.ts';
import { TokenError } from '../explorer/token.ts';
import { colors } from '../report/colors.ts';
import { documentJson, type InputErrorJson } from '../report/json.ts';
import { renderFinding, renderResult } from '../report/kernel-text.ts';
import { traceMermaid } from '../report/mermaid.ts';
import { compile } from '../scenario/compile.ts';
import { ScenarioError } from '../scenario/errors.ts';
import { loadScenario } from '../scenario/load-yaml.ts';
import { replayToken } from '../trace/replay.ts';
import { loadDriverModules, readScenarioText, scenarioFiles, UsageError } from './files.ts';
import { formatReplay } from './format-replay.ts';
import {
  addCheckOutputOptions,
  addReplayOutputOptions,
  CheckOutputs,
  type OutputFlags,
  replayHtml,
} from './outputs.ts';
import { registerPlayground } from './playground.ts';
import { progressLine } from './progress.ts';

const EXIT_OK = 0;
const EXIT_NOT_MET = 1;
const EXIT_BAD_INPUT = 2;
const EXIT_INTERNAL = 3;

const CATALOGUE = fileURLToPath(new URL('../../scenarios', import.meta.url));

function positiveInt(what: string) {
  return (v: string): number => {
    if (!/^\d+$/.test(v) || Number(v) < 1 || !Number.isSafeInteger(Number(v))) {
      throw new InvalidArgumentError(`${what} must be a positive integer, got "${v}"`);
    }
    return Number(v);
  };
}

function nonNegInt(what: string) {
  return (v: string): number => {
    if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v)) || Number(v) > 2 ** 32 - 1) {
      throw new InvalidArgumentError(`${what} must be an integer from 0 to 4294967295, got "${v}"`);
    }
    return Number(v);
  };
}

function seconds(v: string): number {
  const n = Number(v);
  if (!/^\d+(\.\d+)?$/.test(v) || !(n > 0))
    throw new InvalidArgumentError(`--timeout takes seconds (a positive number), got "${v}"`);
  return n;
}

/** The path as shown in reports: relative to the working directory when inside it. */
function shown(file: string): string {
  const rel = path.relative(process.cwd(), path.resolve(file));
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : file;
}

interface CheckCliOptions extends OutputFlags {
  json?: boolean;
  maxExecutions?: number;
  timeout?: number;
  seed?: number;
  strategy?: Strategy;
  color?: boolean;
  count?: boolean;
}

/** The `--count` line: executions, Mazurkiewicz traces, redundant ones and why; whether every interleaving was covered. */
function countLine(r: CheckResult): string {
  const n = r.count;
  if (!n) return '';
  const end = r.stats.complete
    ? 'complete'
    : `incomplete${r.stopped ? ` (stopped: ${r.stopped})` : ''}: not every interleaving was explored, the counts are lower bounds`;
  return `count ${r.name}: ${n.executions} executions explored, ${n.traces} Mazurkiewicz traces, ${n.redundant} redundant (sleep-set blocked ${n.sleepBlocked}, equivalent to an earlier one ${n.equivalent}); ${end}\n`;
}

async function runCheck(paths: string[], o: CheckCliOptions): Promise<number> {
  const results: CheckResult[] = [];
  const errors: InputErrorJson[] = [];
  const seen = new Map<string, string>();
  // A path that does not exist is reported like a bad file: the others are still checked.
  const files = new Set<string>();
  for (const p of paths.length ? paths : [CATALOGUE]) {
    try {
      for (const f of scenarioFiles([p])) files.add(f);
    } catch (e) {
      if (!(e instanceof UsageError)) throw e;
      errors.push({ file: p, error: e.code, messages: [e.message] });
      process.stderr.write(`dmabuf-check: ${e.message}\n`);
    }
  }
  const outputs = new CheckOutputs(o, files.size > 1);
  // With --mermaid, stdout carries only the diagrams: the reports go to stderr.
  const out = o.mermaid ? process.stderr : process.stdout;
  const c = colors(o.color !== false && !o.json && out.isTTY === true && pc.isColorSupported);
  const progress = progressLine(process.stderr);
  for (const file of files) {
    const name = shown(file);
    let text: string;
    try {
      text = readScenarioText(file);
      const modules = await loadDriverModules(file, text);
      const spec = loadScenario(text, name, { modules });
      const first = seen.get(spec.name);
      if (first) {
        const m = /^name:/m.exec(text);
        const line = m ? text.slice(0, m.index).split('\n').length : 1;
        throw new ScenarioError([
          {
            file: name,
            line,
            col: 1,
            message: `name "${spec.name}" is already used by ${first}; scenario names are unique in a catalogue`,
          },
        ]);
      }
      seen.set(spec.name, name);
      const r = checkScenario(spec, name, {
        ...(o.maxExecutions !== undefined ? { maxExecutions: o.maxExecutions } : {}),
        ...(o.timeout !== undefined ? { timeoutMs: o.timeout * 1000 } : {}),
        ...(o.seed !== undefined ? { seed: o.seed } : {}),
        ...(o.strategy ? { strategy: o.strategy } : {}),
        ...(o.count ? { count: true } : {}),
        onProgress: (p) => progress.update(spec.name, p),
      });
      progress.clear();
      results.push(r);
      if (!o.json) out.write(`${renderResult(r, { file: name }, c)}\n${countLine(r)}`);
      outputs.add(spec, r, name);
    } catch (e) {
      progress.clear();
      if (e instanceof ScenarioError) {
        errors.push({
          file: name,
          error: e.code,
          messages: e.issues.map((i) => `${i.file}:${i.line}:${i.col}: ${i.message}`),
        });
        process.stderr.write(`${e.message}\n`);
      } else if (e instanceof UsageError || e instanceof NondeterminismError) {
        errors.push({ file: name, error: e.code, messages: [e.message] });
        process.stderr.write(`${name}: ${e.message}\n`);
      } else {
        throw e;
      }
    }
  }
  const failed = results.filter((r) => !r.met).length;
  if (o.json) {
    process.stdout.write(`${JSON.stringify(documentJson(results, errors), null, 2)}\n`);
  } else {
    const parts = [`${results.length - failed} passed`, `${failed} failed`];
    if (errors.length) parts.push(`${errors.length} not checked (bad input)`);
    out.write(
      `\n${results.length + errors.length} scenario${results.length + errors.length === 1 ? '' : 's'}: ${parts.join(', ')}\n`,
    );
  }
  if (errors.length) return EXIT_BAD_INPUT;
  return failed ? EXIT_NOT_MET : EXIT_OK;
}

interface ReplayCliOptions extends OutputFlags {
  token: string[];
  json?: boolean;
  trace?: string;
  color?: boolean;
}

async function runReplay(file: string, o: ReplayCliOptions): Promise<number> {
  const name = shown(file);
  const text = readScenarioText(file);
  const modules = await loadDriverModules(file, text);
  const spec = loadScenario(text, name, { modules });
  const tokens = o.token;
  const html = replayHtml(o);
  const { result, trace } = replayToken(compile(spec), tokens[tokens.length - 1] as string, name, tokens.slice(0, -1));
  if (o.json) {
    process.stdout.write(`${JSON.stringify(trace, null, 2)}\n`);
  } else if (o.mermaid) {
    process.stdout.write(traceMermaid(trace));
  } else {
    const c = colors(o.color !== false && process.stdout.isTTY === true && pc.isColorSupported);
    process.stdout.write(`${formatReplay(trace)}\n`);
    for (const f of result.findings)
      process.stdout.write(`${renderFinding({ ...f, token: trace.token as never }, { file: name }, c)}\n`);
  }
  // Written after the replay is printed, so a bad --trace path loses nothing.
  if (o.trace) {
    try {
      writeFileSync(o.trace, `${JSON.stringify(trace, null, 2)}\n`);
    } catch (e) {
      throw new UsageError(`--trace ${o.trace}: cannot write the trace: ${(e as Error).message}`);
    }
  }
  html(trace);
  return EXIT_OK;
}

function buildProgram(setExit: (code: number) => void): Command {
  const program = new Command('dmabuf-check')
    .description('Check dma-buf exporter/importer protocols over every interleaving.')
    .version('0.1.0')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s), writeOut: (s) => process.stdout.write(s) });

  const check = program
    .command('check', { isDefault: true })
    .description('check scenario files (a directory means every *.yaml under it); default: the bundled catalogue')
    .argument('[paths...]', 'scenario files or directories')
    .option('--json', 'print one JSON document on stdout')
    .option(
      '--max-executions <n>',
      'stop after this many executions per scenario (verdict unknown)',
      positiveInt('--max-executions'),
    )
    .option('--timeout <seconds>', 'stop exploring a scenario after this many seconds (verdict unknown)', seconds)
    .option('--seed <n>', 'seed of the random strategy', nonNegInt('--seed'))
    .addOption(
      new Option(
        '--strategy <name>',
        'dfs: exhaustive, optimal partial-order reduction (default); sleep: exhaustive, sleep sets only; naive: every interleaving; random, pct, portfolio: seeded random search (never proves safe)',
      ).choices(['dfs', 'sleep', 'naive', 'random', 'pct', 'portfolio']),
    )
    .option(
      '--count',
      'explore every interleaving (no stop at the first finding, no minimisation) and count the Mazurkiewicz traces',
    )
    .option('--no-color', 'no colours even on a terminal');
  addCheckOutputOptions(check).action(async (paths: string[], o: CheckCliOptions) => setExit(await runCheck(paths, o)));

  const replay = program
    .command('replay')
    .description('re-run exactly the interleaving a replay token names and print every step')
    .argument('<file>', 'the scenario file the token was printed for')
    .requiredOption(
      '--token <token>',
      'the replay token (printed after "replay:" in a report); repeat it to run earlier executions first on the same lockdep graph, as a lock-order report asks',
      (v: string, prev: string[] | undefined) => [...(prev ?? []), v],
    )
    .option('--json', 'print the trace as JSON')
    .option('--trace <file>', 'also write the trace as JSON to this file')
    .option('--no-color', 'no colours even on a terminal');
  addReplayOutputOptions(replay).action(async (file: string, o: ReplayCliOptions) => setExit(await runReplay(file, o)));
  registerPlayground(program, setExit);
  return program;
}

export async function main(argv: readonly string[]): Promise<number> {
  let code = EXIT_OK;
  const program = buildProgram((c) => {
    code = c;
  });
  try {
    await program.parseAsync(argv as string[], { from: 'user' });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help')
        return EXIT_OK;
      return EXIT_BAD_INPUT;
    }
    if (e instanceof ScenarioError) {
      process.stderr.write(`${e.message}\n`);
      return EXIT_BAD_INPUT;
    }
    if (
      e instanceof UsageError ||
      e instanceof TokenError ||
      e instanceof ReplayMismatchError ||
      e instanceof NondeterminismError
    ) {
      process.stderr.write(`dmabuf-check: ${e.message}\n`);
      return EXIT_BAD_INPUT;
    }
    const err = e as Error;
    process.stderr.write(
      `dmabuf-check: internal error: ${err?.message ?? String(e)}\nThis is a bug in dmabuf-check; please report it with the scenario.${process.env.DMABUF_DEBUG ? `\n${err?.stack ?? ''}` : ' (DMABUF_DEBUG=1 shows the stack)'}\n`,
    );
    return EXIT_INTERNAL;
  }
}

const isMain = process.argv[1] && /dmabuf-check(\.js)?$|main\.ts$/.test(process.argv[1]);
if (isMain) {
  // A closed pipe (`| head`) ends the output quietly, like any Unix tool.
  for (const s of [process.stdout, process.stderr]) {
    s.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    });
  }
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    () => {
      process.exitCode = EXIT_INTERNAL;
    },
  );
}
