/**
 * The command line: `dmabuf-check [PATH…]` checks scenarios,
 * `dmabuf-check replay FILE --token T` re-runs one interleaving,
 * `dmabuf-check show TRACE.json` prints a saved trace.
 *
 * Exit status: 0 every scenario met its expectation; 1 some did not; 2 bad
 * input (scenario, token, argument); 3 internal error.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { NondeterminismError } from '../explorer/dfs.ts';
import { ReplayMismatchError } from '../explorer/replay.ts';
import { TokenError } from '../explorer/token.ts';
import { ScenarioError } from '../scenario/errors.ts';
import { TraceFormatError } from '../trace/errors.ts';
import type { CheckCliOptions, Handover, ReplayCliOptions } from './commands.ts';
import { EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_OK } from './exit.ts';
import { addCheckOutputOptions, addReplayOutputOptions } from './output-options.ts';
import { registerPlayground } from './playground-command.ts';
import { UsageError } from './usage-error.ts';

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

function buildProgram(setExit: (code: number) => void, handover: Handover | undefined): Command {
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
    .option(
      '--stall-timeout <seconds>',
      'a scenario naming a driver module: stop it when an op makes no step for this long (default 10; verdict unknown)',
      seconds,
    )
    .option('--seed <n>', 'seed of the random strategy', nonNegInt('--seed'))
    .addOption(
      new Option(
        '--strategy <name>',
        'dfs: exhaustive, optimal partial-order reduction (default); sleep: exhaustive, sleep sets only; state: exhaustive, sleep sets with a table of visited states and symmetry reduction (interchangeable threads); naive: every interleaving; random, pct, portfolio: seeded random search (never proves safe)',
      ).choices(['dfs', 'sleep', 'state', 'naive', 'random', 'pct', 'portfolio']),
    )
    .option(
      '--workers <n>',
      'worker threads for a search that does not finish within 2,000 executions (strategies dfs, random, pct, portfolio): it is split into work units; same result for any number (default: the number of cores)',
      positiveInt('--workers'),
    )
    .option(
      '--count',
      'explore every interleaving (no stop at the first finding, no minimisation) and count the Mazurkiewicz traces',
    )
    .option('--no-color', 'no colours even on a terminal');
  addCheckOutputOptions(check).action(async (paths: string[], o: CheckCliOptions) =>
    setExit(await (await import('./commands.ts')).runCheck(paths, o, handover)),
  );

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
  addReplayOutputOptions(replay).action(async (file: string, o: ReplayCliOptions) =>
    setExit(await (await import('./commands.ts')).runReplay(file, o, handover)),
  );
  program
    .command('show')
    .description('print a saved trace (replay --trace, check --trace, the playground) without the scenario')
    .argument('<trace>', 'the trace file (JSON)')
    .option('--html <file>', 'also write the trace as one self-contained HTML page (the trace viewer)')
    .option('--mermaid', 'print the trace as a Mermaid sequenceDiagram instead of the step list')
    .option('--no-color', 'no colours even on a terminal')
    .action(async (file: string, o: import('./show.ts').ShowCliOptions) =>
      setExit((await import('./show.ts')).runShow(file, o)),
    );
  registerPlayground(program, setExit);
  return program;
}

/**
 * Runs the command line on `argv` and returns the exit status. `handover`:
 * see {@link Handover} (given only by the built command line).
 */
export async function main(argv: readonly string[], handover?: Handover): Promise<number> {
  let code = EXIT_OK;
  const program = buildProgram((c) => {
    code = c;
  }, handover);
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
      e instanceof NondeterminismError ||
      e instanceof TraceFormatError
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

/** What `bin/dmabuf-check.js` runs: {@link main} on `argv`, with the exit status and a quiet end on a closed pipe. */
export function run(argv: readonly string[], handover?: Handover): void {
  // A closed pipe (`| head`) ends the output quietly, like any Unix tool.
  for (const s of [process.stdout, process.stderr]) {
    s.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    });
  }
  main(argv, handover).then(
    (code) => {
      process.exitCode = code;
    },
    () => {
      process.exitCode = EXIT_INTERNAL;
    },
  );
}

// `tsx src/cli/main.ts …` runs it directly.
if (process.argv[1] && /main\.ts$/.test(process.argv[1])) run(process.argv.slice(2));
