/**
 * The built command line (`npm run build:cli`: dist/cli, which the bin runs
 * while src/ matches it) prints exactly what the sources print, exit status
 * included; a scenario naming a driver module runs from the sources (one copy
 * of the model, shared with the module). The rest of the suite runs the
 * sources (DMABUF_CHECK_SOURCES, vitest.config.ts).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadDriverModules } from '../../src/cli/files.ts';
import { explore } from '../../src/explorer/explore.ts';
import { encodeToken } from '../../src/explorer/token.ts';
import { compile } from '../../src/scenario/compile.ts';
import { loadScenario } from '../../src/scenario/load-yaml.ts';
import { type CliRun, ROOT } from '../helpers.ts';

const BIN = path.join(ROOT, 'bin', 'dmabuf-check.js');
const BUG = 'scenarios/kvm-unlocked-no-retry-vs-ttm-move.yaml';
const MODULE = 'examples/iommufd-vs-vfio-revoke.yaml';

function cli(args: readonly string[], fromSources: boolean): CliRun {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
  if (fromSources) env.DMABUF_CHECK_SOURCES = '1';
  else delete env.DMABUF_CHECK_SOURCES;
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, encoding: 'utf8', env });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** `--json`'s wall-clock field is the one thing that may differ between two runs. */
function sameRun(args: readonly string[]): void {
  const clean = (s: string) => s.replace(/"ms": [\d.]+/g, '"ms": 0');
  const built = cli(args, false);
  const sources = cli(args, true);
  expect(clean(built.stdout)).toBe(clean(sources.stdout));
  expect(built.stderr).toBe(sources.stderr);
  expect(built.code).toBe(sources.code);
}

beforeAll(() => {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'build-cli.mjs')], { cwd: ROOT, encoding: 'utf8' });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
});

describe('the built command line', () => {
  it('records the sources it was built from', () => {
    const built = JSON.parse(readFileSync(path.join(ROOT, 'dist', 'cli', 'sources.json'), 'utf8')) as {
      files: Record<string, [number, number, string]>;
    };
    expect(Object.keys(built.files)).toContain('src/cli/main.ts');
    expect(Object.keys(built.files)).toContain('src/kernel/sched.ts');
  });

  it('--version, --help and a misspelled command', () => {
    sameRun(['--version']);
    sameRun(['--help']);
    sameRun(['check', '--help']);
    sameRun(['replya']);
  });

  it('a counterexample, in text and JSON, and its replay', () => {
    sameRun([BUG]);
    sameRun([BUG, '--json']);
    const token = (JSON.parse(cli([BUG, '--json'], false).stdout) as { results: { findings: { token: string }[] }[] })
      .results[0]?.findings[0]?.token;
    expect(token).toMatch(/^dc1\./);
    sameRun(['replay', BUG, '--token', token as string]);
    sameRun(['replay', BUG, '--token', token as string, '--json']);
  });

  it('--workers 2: the worker threads run the bundled worker.js, with the same output as from the sources', () => {
    sameRun([BUG, 'scenarios/ww-abba-without-context.yaml', '--workers', '2']);
    sameRun([BUG, '--workers', '2', '--json']);
    sameRun([MODULE, '--workers', '2']);
    sameRun([BUG, '--workers', '0']);
  });

  it('a scenario naming a driver module: the same as from the sources, trace included', async () => {
    sameRun([MODULE]);
    const text = readFileSync(path.join(ROOT, MODULE), 'utf8');
    const spec = loadScenario(text, MODULE, { modules: await loadDriverModules(path.join(ROOT, MODULE), text) });
    const program = compile(spec);
    let longest: readonly number[] = [];
    explore(program, {
      stopOnFinding: false,
      minimise: false,
      onExecution: (r) => {
        if (r.status === 'complete' && r.schedule.length > longest.length) longest = r.schedule;
      },
    });
    // The trace shows the module's objects (its locks, its mappings) as the sources' model knows them.
    sameRun(['replay', MODULE, '--token', encodeToken(program.hash, longest), '--json']);
  });
});
