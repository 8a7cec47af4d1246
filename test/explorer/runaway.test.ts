/**
 * Runaway scenarios (issue 7 item 2): a driver whose op throws, or never
 * returns, stops the search with verdict `unknown` and a record of which
 * thread and op ran away — never a finding about the modelled kernel, never
 * `safe`, never an internal error — in the library, the split and randomised
 * searches, and the command line, whose watchdog also stops an op that loops
 * without yielding (a scenario naming a driver module runs in a watched
 * worker thread).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { explore } from '../../src/explorer/explore.ts';
import { compile } from '../../src/scenario/compile.ts';
import { loadScenario } from '../../src/scenario/load-yaml.ts';
import { check, ROOT, runCli } from '../helpers.ts';
import runaway from './fixtures/runaway-driver.ts';

const DIR = path.join(ROOT, 'test', 'explorer', 'fixtures');
const YAML = readFileSync(path.join(DIR, 'runaway-throw.yaml'), 'utf8');
const spec = (mode: string) =>
  loadScenario(YAML.replace('buffer: bo }', `buffer: bo, options: { mode: ${mode} } }`), 'runaway.yaml', {
    modules: new Map([['./runaway-driver.ts', runaway]]),
  });

describe('a driver op that throws', () => {
  it('stops the search: unknown, driver-error, the thread, its op and the driver’s own stack', () => {
    const r = check(spec('throw'));
    expect(r.verdict).toBe('unknown');
    expect(r.met).toBe(false);
    expect(r.findings).toEqual([]);
    expect(r.stopped).toBe('driver-error');
    expect(r.stats.complete).toBe(false);
    expect(r.runaway).toMatchObject({ kind: 'driver-error', thread: 'a', op: 'x.go' });
    expect(r.runaway?.message).toBe('TypeError: runaway-driver: broken op');
    expect(r.runaway?.stack).toContain('misbehave');
    expect(r.runaway?.stack).toContain('runaway-driver.ts');
  });

  it('a finding the execution made before it threw stands: bug', () => {
    const r = check(spec('report'));
    expect(r.verdict).toBe('bug');
    expect(r.findings.map((f) => f.message)).toContain('runaway-driver: reported before running away');
  });

  it('the randomised search stops the same way', () => {
    const r = explore(compile(spec('throw')), { strategy: 'random', maxExecutions: 1000 });
    expect(r.verdict).toBe('unknown');
    expect(r.stopped).toBe('driver-error');
    expect(r.stats.executions).toBe(1);
  });
});

describe('an op that never returns', () => {
  it('runs into the step bound: unknown, step-limit, the thread that was still running', () => {
    const r = explore(compile(spec('forever')), { maxSteps: 300 });
    expect(r.verdict).toBe('unknown');
    expect(r.stopped).toBe('step-limit');
    expect(r.runaway).toMatchObject({ kind: 'step-limit', thread: 'a', op: 'x.go' });
    // The search stopped at the first runaway execution.
    expect(r.stats.executions).toBe(1);
  });
});

describe('on the command line', () => {
  it('a throwing driver is reported as a driver error (exit 1), not an internal error, with no stack on stderr', () => {
    const run = runCli([path.join(DIR, 'runaway-throw.yaml'), '--workers', '1']);
    expect(run.code).toBe(1);
    expect(run.stdout).toContain('unknown, expected safe');
    expect(run.stdout).toContain('driver error: thread a (x.go) threw TypeError: runaway-driver: broken op');
    expect(run.stdout).toMatch(/at misbehave .*runaway-driver\.ts/);
    expect(run.stdout).not.toContain('internal error');
    expect(run.stderr).toBe('');
  });

  it('an op that loops without yielding: the watchdog stops it (stall), naming the thread and op', () => {
    const run = runCli([path.join(DIR, 'runaway-spin.yaml'), '--stall-timeout', '2', '--json']);
    expect(run.code).toBe(1);
    const r = JSON.parse(run.stdout).results[0];
    expect(r.verdict).toBe('unknown');
    expect(r.stats.stopped).toBe('stall');
    expect(r.runaway).toMatchObject({ kind: 'stall', thread: 'a', op: 'x.go' });
    expect(run.stderr).toBe('');
  });

  it('--json carries the runaway record', () => {
    const run = runCli([path.join(DIR, 'runaway-throw.yaml'), '--json', '--workers', '1']);
    const j = JSON.parse(run.stdout);
    expect(j.results[0].verdict).toBe('unknown');
    expect(j.results[0].stats.stopped).toBe('driver-error');
    expect(j.results[0].runaway).toMatchObject({ kind: 'driver-error', thread: 'a', op: 'x.go' });
  });
});
