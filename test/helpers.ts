/** Shared test helpers: load scenarios, run the CLI. */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { type CheckOptions, type CheckResult, checkScenario, type ReportedFinding } from '../src/check.ts';
import type { DriverDef } from '../src/drivers/driver.ts';
import { loadScenario } from '../src/scenario/load-yaml.ts';
import type { ScenarioSpec } from '../src/scenario/spec.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const CATALOGUE = path.join(ROOT, 'scenarios');
const BIN = path.join(ROOT, 'bin', 'dmabuf-check.js');

export function catalogueFiles(): string[] {
  return readdirSync(CATALOGUE)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => path.join(CATALOGUE, f));
}

export function loadFile(file: string): ScenarioSpec {
  return loadScenario(readFileSync(file, 'utf8'), path.relative(ROOT, file));
}

export function fromYaml(text: string, modules?: ReadonlyMap<string, DriverDef>): ScenarioSpec {
  return loadScenario(text, 'test.yaml', modules ? { modules } : {});
}

export function check(spec: ScenarioSpec, opts: CheckOptions = {}): CheckResult {
  return checkScenario(spec, 'test.yaml', opts);
}

/** The first finding with `code` (fails the test when there is none). */
export function first(r: CheckResult, code: string): ReportedFinding {
  const f = r.findings.find((x) => x.code === code);
  if (!f) throw new Error(`no ${code} finding; found: ${codes(r).join(', ') || 'none'}`);
  return f;
}

/** Safe, with every interleaving covered and nothing found. */
export function expectSafe(r: CheckResult): void {
  expect(codes(r)).toEqual([]);
  expect(r.verdict).toBe('safe');
  expect(r.stats.complete).toBe(true);
}

export function expectBug(r: CheckResult, code: string): void {
  expect(r.verdict).toBe('bug');
  expect(codes(r)).toContain(code);
}

export function codes(r: CheckResult): string[] {
  return r.findings.map((f) => f.code);
}

export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export function runCli(args: readonly string[], cwd = ROOT, env: Readonly<Record<string, string>> = {}): CliRun {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1', ...env },
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
