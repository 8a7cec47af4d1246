/**
 * File-system access for the command line: expanding paths to scenario
 * files, reading them, and loading driver modules named by a scenario.
 */
import { closeSync, openSync, readdirSync, readSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { DriverDef } from '../drivers/driver.ts';
import { nearest, ScenarioError, type ScenarioIssue } from '../scenario/errors.ts';
import { driverModuleRefsAt, MAX_SCENARIO_BYTES } from '../scenario/load-yaml.ts';
import { UsageError } from './usage-error.ts';

export { UsageError };

/** Every `*.yaml` / `*.yml` under the paths (directories recursively), sorted, deduplicated. */
export function scenarioFiles(paths: readonly string[]): string[] {
  const out: string[] = [];
  for (const p of paths) {
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(p);
    } catch {
      const cmd = nearest(p, ['replay', 'check', 'show']);
      throw new UsageError(
        `${p}: no such file or directory${cmd ? ` (a scenario file or directory is expected here; did you mean the command "${cmd}"?)` : ''}`,
      );
    }
    if (st.isDirectory()) {
      const found = walk(p);
      if (found.length === 0) throw new UsageError(`${p}: no *.yaml scenario files in this directory`);
      out.push(...found);
    } else {
      out.push(p);
    }
  }
  return [...new Set(out)];
}

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
  )) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else if (/\.ya?ml$/.test(e.name)) out.push(p);
  }
  return out;
}

/** Reading stops past this many bytes: a scenario is at most MAX_SCENARIO_BYTES characters, each at most 4 bytes of UTF-8. */
export const MAX_READ_BYTES = 4 * MAX_SCENARIO_BYTES;

/**
 * The file's text (UTF-8). At most {@link MAX_READ_BYTES} are read: a
 * gigabyte file or /dev/zero is refused (a ScenarioError at 1:1, `shown` as
 * its name) without being read to the end.
 */
export function readScenarioText(file: string, shown = file): string {
  const problem = (e: unknown): UsageError => {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return new UsageError(`${file}: no such file`);
    if (code === 'EISDIR') return new UsageError(`${file} is a directory; a scenario file (*.yaml) is expected here`);
    return new UsageError(`${file}: cannot read: ${(e as Error).message}`);
  };
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    throw problem(e);
  }
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(1 << 16);
      let n: number;
      try {
        n = readSync(fd, chunk, 0, chunk.length, null);
      } catch (e) {
        throw problem(e);
      }
      if (n === 0) break;
      total += n;
      if (total > MAX_READ_BYTES) {
        throw new ScenarioError([
          {
            file: shown,
            line: 1,
            col: 1,
            message: `file is over ${MAX_READ_BYTES} bytes; a scenario may be at most ${MAX_SCENARIO_BYTES}`,
          },
        ]);
      }
      chunks.push(chunk.subarray(0, n));
    }
    return Buffer.concat(chunks).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/**
 * Imports a driver module. Node refuses a `.ts` ES module outside a package
 * with `"type": "module"` (ERR_REQUIRE_CYCLE_MODULE, a confusing message);
 * tsx's own loader imports it then.
 */
async function importModule(abs: string): Promise<Record<string, unknown>> {
  try {
    return (await import(pathToFileURL(abs).href)) as Record<string, unknown>;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ERR_REQUIRE_CYCLE_MODULE' && code !== 'ERR_REQUIRE_ESM') throw e;
    const { tsImport } = await import('tsx/esm/api');
    const ns = (await tsImport(pathToFileURL(abs).href, import.meta.url)) as Record<string, unknown>;
    // Loaded as CommonJS: the module's exports are the namespace's default.
    const cjs = ns.default;
    return cjs && typeof cjs === 'object' && 'default' in cjs ? (cjs as Record<string, unknown>) : ns;
  }
}

/** A module's load error in one or two lines: esbuild puts the position on the second. */
function loadErrorText(e: unknown): string {
  const lines = (e instanceof Error ? e.message : String(e)).split('\n').filter((l) => l.trim());
  const first = lines[0] ?? 'unknown error';
  return /^Transform failed/.test(first) && lines[1] ? `${first} ${lines[1].trim()}` : first;
}

function isDriverDef(x: unknown): x is DriverDef {
  if (!x || typeof x !== 'object') return false;
  const d = x as Record<string, unknown>;
  if (typeof d.name !== 'string' || typeof d.ops !== 'object' || typeof d.options !== 'object') return false;
  if (d.kind === 'exporter') return typeof d.export === 'function';
  if (d.kind === 'importer') return typeof d.create === 'function';
  return false;
}

/** `file:`, `data:`, `http:`, `node:`, a drive letter: not a path relative to the scenario. */
const URL_LIKE = /^[A-Za-z][A-Za-z0-9+.-]*:/;

/** Whether `p` is `dir` or inside it. */
function inside(dir: string, p: string): boolean {
  const rel = path.relative(dir, p);
  return rel === '' || !(rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel));
}

/**
 * Loads the driver modules a scenario names. A module path is relative to
 * the scenario file and must stay inside the scenario's directory tree, also
 * once symbolic links are resolved; a URL, an absolute path or a package name
 * is never imported. (What a module allowed here imports itself is its own
 * business: the check is on the file the scenario names.)
 */
export async function loadDriverModules(file: string, text: string): Promise<Map<string, DriverDef>> {
  const modules = new Map<string, DriverDef>();
  const issues: ScenarioIssue[] = [];
  const dir = path.dirname(path.resolve(file));
  for (const { ref, line, col } of driverModuleRefsAt(text)) {
    const issue = (message: string) => issues.push({ file, line, col, message });
    if (URL_LIKE.test(ref)) {
      issue(
        `driver module "${ref}": a URL is not loaded; give a path relative to the scenario file, inside its directory ("./my-driver.ts")`,
      );
      continue;
    }
    if (path.isAbsolute(ref)) {
      issue(`driver module "${ref}": give a path relative to the scenario file ("./${path.basename(ref)}")`);
      continue;
    }
    const abs = path.resolve(dir, ref);
    const rel = path.relative(dir, abs);
    const outside = `driver module "${ref}" is outside the scenario's directory; a scenario may only run modules from its own directory tree`;
    if (!inside(dir, abs)) {
      issue(outside);
      continue;
    }
    let real: string;
    try {
      if (!statSync(abs).isFile()) throw new Error('not a file');
      real = realpathSync(abs);
    } catch {
      issue(`driver module "${ref}" not found (looked for ${rel})`);
      continue;
    }
    // A symbolic link (the file or a directory on the way) may lead out of the tree.
    let realDir: string;
    try {
      realDir = realpathSync(dir);
    } catch {
      realDir = dir;
    }
    if (!inside(realDir, real)) {
      issue(`${outside} (through a symbolic link, ${rel} is ${real})`);
      continue;
    }
    let mod: Record<string, unknown>;
    try {
      mod = await importModule(real);
    } catch (e) {
      issue(`driver module "${ref}" failed to load: ${loadErrorText(e)}`);
      continue;
    }
    const def = mod.default;
    if (!isDriverDef(def)) {
      issue(
        `driver module "${ref}" must default-export defineExporter({...}) or defineImporter({...}) (see examples/)`,
      );
      continue;
    }
    modules.set(ref, def);
  }
  if (issues.length) throw new ScenarioError(issues);
  return modules;
}
