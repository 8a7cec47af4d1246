/**
 * The `check` and `replay` commands. The command line (main.ts) loads this
 * module only when one of them runs: `--help`, `--version` and `playground`
 * never load the model, the explorer or the YAML parser.
 */
import { writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pc from 'picocolors';
import { type CheckOptions, type CheckResult, checkScenario } from '../check.ts';
import { checkScenarioAsync } from '../check-async.ts';
import { NondeterminismError } from '../explorer/dfs.ts';
import type { Strategy } from '../explorer/explore.ts';
import { colors } from '../report/colors.ts';
import { documentJson, type InputErrorJson } from '../report/json.ts';
import { renderFinding, renderResult } from '../report/kernel-text.ts';
import { traceMermaid } from '../report/mermaid.ts';
import { compile } from '../scenario/compile.ts';
import { ScenarioError } from '../scenario/errors.ts';
import { driverModuleRefsAt, loadScenario } from '../scenario/load-yaml.ts';
import { replayToken } from '../trace/replay.ts';
import { EXIT_BAD_INPUT, EXIT_NOT_MET, EXIT_OK } from './exit.ts';
import { loadDriverModules, readScenarioText, scenarioFiles, UsageError } from './files.ts';
import { formatReplay } from './format-replay.ts';
import { handleSignals, interrupted } from './interrupt.ts';
import type { OutputFlags } from './output-options.ts';
import { CheckOutputs, replayHtml } from './outputs.ts';
import { progressLine } from './progress.ts';
import { STALL_MS, superviseCheck } from './supervise.ts';

const CATALOGUE = fileURLToPath(new URL('../../scenarios', import.meta.url));

/**
 * Runs the whole command again from the TypeScript sources and returns its
 * exit status: what the built command line (dist/cli, see bin/dmabuf-check.js)
 * does, before anything is printed, when a scenario names a driver module —
 * the module imports the model from the sources, and the command line must
 * share that one copy of it.
 */
export type Handover = () => Promise<number>;

/** Whether a scenario under `paths` names a driver module. Unreadable paths are left to the command to report. */
function namesDriverModule(paths: readonly string[]): boolean {
  for (const p of paths) {
    let files: string[];
    try {
      files = scenarioFiles([p]);
    } catch {
      continue;
    }
    for (const f of files) {
      let text: string;
      try {
        text = readScenarioText(f);
      } catch {
        continue;
      }
      if (driverModuleRefsAt(text).length > 0) return true;
    }
  }
  return false;
}

/** The path as shown in reports: relative to the working directory when inside it. */
function shown(file: string): string {
  const rel = path.relative(process.cwd(), path.resolve(file));
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : file;
}

export interface CheckCliOptions extends OutputFlags {
  json?: boolean;
  maxExecutions?: number;
  timeout?: number;
  /** Seconds without a step before a driver module's op counts as stalled (supervised checks). */
  stallTimeout?: number;
  seed?: number;
  strategy?: Strategy;
  color?: boolean;
  count?: boolean;
  workers?: number;
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

/** The strategies `--workers` splits. */
const SPLIT_STRATEGIES: ReadonlySet<Strategy> = new Set(['dfs', 'random', 'pct', 'portfolio']);

/** `DMABUF_CHECK_SMALL_FIRST=N`: the small-first cap (executions) for tests that need a split on a small scenario. */
function smallFirstFromEnv(): { smallFirst?: number } {
  const v = process.env.DMABUF_CHECK_SMALL_FIRST;
  return v && /^\d+$/.test(v) && Number(v) >= 1 ? { smallFirst: Number(v) } : {};
}

export async function runCheck(paths: string[], o: CheckCliOptions, handover?: Handover): Promise<number> {
  if (handover && namesDriverModule(paths.length ? paths : [CATALOGUE])) return handover();
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
  const unhandle = handleSignals();
  let skipped = 0;
  for (const file of files) {
    // Interrupted (Ctrl-C, SIGTERM): the scenarios after the current one are not checked.
    if (interrupted()) {
      skipped++;
      continue;
    }
    const name = shown(file);
    let text: string;
    try {
      text = readScenarioText(file, name);
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
      const checkOpts: CheckOptions = {
        ...(o.maxExecutions !== undefined ? { maxExecutions: o.maxExecutions } : {}),
        ...(o.timeout !== undefined ? { timeoutMs: o.timeout * 1000 } : {}),
        ...(o.seed !== undefined ? { seed: o.seed } : {}),
        ...(o.strategy ? { strategy: o.strategy } : {}),
        ...(o.count ? { count: true } : {}),
        onProgress: (p) => progress.update(spec.name, p),
      };
      // --workers (default: the cores) splits the default search (dfs) and the randomised ones when
      // they do not finish within the small-first cap; --count and sleep/naive run here.
      const workers = o.workers ?? availableParallelism();
      const strategy = o.strategy ?? spec.explore.strategy ?? 'dfs';
      const r =
        modules.size > 0
          ? // A driver module may loop without yielding: the check runs in a watched worker thread.
            await superviseCheck(
              spec,
              file,
              name,
              text,
              {
                ...(o.maxExecutions !== undefined ? { maxExecutions: o.maxExecutions } : {}),
                ...(o.timeout !== undefined ? { deadlineEpoch: Date.now() + o.timeout * 1000 } : {}),
                ...(o.seed !== undefined ? { seed: o.seed } : {}),
                ...(o.strategy ? { strategy: o.strategy } : {}),
                ...(o.count ? { count: true } : {}),
              },
              (o.stallTimeout ?? STALL_MS / 1000) * 1000,
            )
          : !o.count && SPLIT_STRATEGIES.has(strategy)
            ? await checkScenarioAsync(spec, name, {
                ...checkOpts,
                explore: async (program, eo) =>
                  (await import('./workers.ts')).exploreSplit(file, text, eo, workers, {
                    name,
                    program,
                    ...smallFirstFromEnv(),
                  }),
              })
            : checkScenario(spec, name, checkOpts);
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
  unhandle();
  const failed = results.filter((r) => !r.met).length;
  if (o.json) {
    process.stdout.write(`${JSON.stringify(documentJson(results, errors), null, 2)}\n`);
  } else {
    const parts = [`${results.length - failed} passed`, `${failed} failed`];
    if (errors.length) parts.push(`${errors.length} not checked (bad input)`);
    if (skipped) parts.push(`${skipped} not checked (${interrupted()})`);
    out.write(
      `\n${results.length + errors.length + skipped} scenario${results.length + errors.length + skipped === 1 ? '' : 's'}: ${parts.join(', ')}\n`,
    );
  }
  if (errors.length) return EXIT_BAD_INPUT;
  return failed || skipped ? EXIT_NOT_MET : EXIT_OK;
}

export interface ReplayCliOptions extends OutputFlags {
  token: string[];
  json?: boolean;
  trace?: string;
  color?: boolean;
}

export async function runReplay(file: string, o: ReplayCliOptions, handover?: Handover): Promise<number> {
  if (handover && namesDriverModule([file])) return handover();
  const name = shown(file);
  const text = readScenarioText(file, name);
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
