/**
 * File-system access for the command line: expanding paths to scenario
 * files, reading them, and loading driver modules named by a scenario.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { DriverDef } from '../drivers/driver.ts';
import { ScenarioError, type ScenarioIssue } from '../scenario/errors.ts';
import { driverModuleRefs } from '../scenario/load-yaml.ts';

export class UsageError extends Error {
  readonly code = 'DMABUF_USAGE';
}

/** Every `*.yaml` / `*.yml` under the paths (directories recursively), sorted, deduplicated. */
export function scenarioFiles(paths: readonly string[]): string[] {
  const out: string[] = [];
  for (const p of paths) {
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(p);
    } catch {
      throw new UsageError(`${p}: no such file or directory`);
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

export function readScenarioText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`${file}: cannot read: ${(e as Error).message}`);
  }
}

function locOf(text: string, needle: string): { line: number; col: number } {
  const i = text.indexOf(needle);
  if (i < 0) return { line: 1, col: 1 };
  const before = text.slice(0, i).split('\n');
  return { line: before.length, col: (before[before.length - 1]?.length ?? 0) + 1 };
}

function isDriverDef(x: unknown): x is DriverDef {
  if (!x || typeof x !== 'object') return false;
  const d = x as Record<string, unknown>;
  if (typeof d.name !== 'string' || typeof d.ops !== 'object' || typeof d.options !== 'object') return false;
  if (d.kind === 'exporter') return typeof d.export === 'function';
  if (d.kind === 'importer') return typeof d.create === 'function';
  return false;
}

/**
 * Loads the driver modules a scenario names. A module path is relative to
 * the scenario file and must stay inside the scenario's directory tree.
 */
export async function loadDriverModules(file: string, text: string): Promise<Map<string, DriverDef>> {
  const modules = new Map<string, DriverDef>();
  const issues: ScenarioIssue[] = [];
  const dir = path.dirname(path.resolve(file));
  for (const ref of driverModuleRefs(text)) {
    const { line, col } = locOf(text, ref);
    const issue = (message: string) => issues.push({ file, line, col, message });
    if (path.isAbsolute(ref)) {
      issue(`driver module "${ref}": give a path relative to the scenario file ("./${path.basename(ref)}")`);
      continue;
    }
    const abs = path.resolve(dir, ref);
    const rel = path.relative(dir, abs);
    if (rel.startsWith('..') || path.isAbsolute(rel)) {
      issue(
        `driver module "${ref}" is outside the scenario's directory; a scenario may only run modules from its own directory tree`,
      );
      continue;
    }
    let mod: Record<string, unknown>;
    try {
      statSync(abs);
    } catch {
      issue(`driver module "${ref}" not found (looked for ${rel})`);
      continue;
    }
    try {
      mod = (await import(pathToFileURL(abs).href)) as Record<string, unknown>;
    } catch (e) {
      issue(`driver module "${ref}" failed to load: ${(e as Error).message.split('\n')[0]}`);
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
