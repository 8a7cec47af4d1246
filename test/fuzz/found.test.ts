/**
 * What the fuzzer found (docs/robustness.md), each kept as a plain test: the
 * shrunk input, and what the entry point does with it now.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { type ExploreResult, explore } from '../../src/explorer/explore.ts';
import { ReplayMismatchError } from '../../src/explorer/replay.ts';
import { decodeToken, TokenError } from '../../src/explorer/token.ts';
import { compile } from '../../src/scenario/compile.ts';
import { nearest, ScenarioError, type ScenarioIssue } from '../../src/scenario/errors.ts';
import { loadScenario, MAX_ISSUES, MAX_NESTING } from '../../src/scenario/load-yaml.ts';
import { replayToken } from '../../src/trace/replay.ts';
import { CATALOGUE, runCli } from '../helpers.ts';

function issuesOf(text: string): readonly ScenarioIssue[] {
  try {
    loadScenario(text, 'f.yaml');
  } catch (e) {
    if (e instanceof ScenarioError) return e.issues;
    throw e;
  }
  throw new Error('it loaded');
}

function timed<T>(f: () => T): { value: T; ms: number } {
  const t0 = performance.now();
  const value = f();
  return { value, ms: performance.now() - t0 };
}

const MMAP = path.join(CATALOGUE, 'cpu-mmap-vs-ttm-move.yaml');
const mmap = () => compile(loadScenario(readFileSync(MMAP, 'utf8'), 'scenarios/cpu-mmap-vs-ttm-move.yaml'));

describe('replay tokens', () => {
  it('a thread letter past the 32nd ("G" on a 2-thread scenario) is a ReplayMismatchError, not a TypeError', () => {
    // `1 << 32` is `1 << 0`: thread #33 passed the runnable check as thread #1, then was run.
    const p = mmap();
    for (const runs of ['G', 'aG', 'H', 'Z']) {
      expect(() => replayToken(p, `dc1.${p.hash}.${runs}`, 'f.yaml')).toThrow(ReplayMismatchError);
    }
    expect(() => replayToken(p, `dc1.${p.hash}.G`, 'f.yaml')).toThrow(
      /at step 1 the token runs thread #33, but the scenario has 2 threads/,
    );
  });

  it('a token with a line break or a control character is echoed on one line', () => {
    let err: unknown;
    try {
      decodeToken('\u0000\ndc1.7a6874cd.a8');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TokenError);
    expect((err as Error).message).toContain('got "\\u0000\\ndc1.7a6874cd.a8"');
    expect((err as Error).message).not.toMatch(/\n/);
  });
});

describe('scenario YAML', () => {
  it('a file of many keys reads in linear time (the YAML parser compared every pair: 20,000 keys took seconds)', () => {
    const n = 40_000;
    const text = `name: x\n${Array.from({ length: n }, (_, i) => `k${i}: 1\n`).join('')}k7: 2\n`;
    const { value: issues, ms } = timed(() => issuesOf(text));
    // Quadratic, this took about a minute; linear, about a second.
    expect(ms).toBeLessThan(15_000);
    expect(issues.map((i) => [i.line, i.col, i.message])).toEqual([
      [n + 2, 1, 'duplicate key "k7": a key may appear only once in a mapping'],
    ]);
  });

  it('duplicate keys are still each reported at their second occurrence, in file order', () => {
    expect(issuesOf('name: a\nname: b\nbuffers: {x: 1, x: 2}\n').map((i) => [i.line, i.col, i.message])).toEqual([
      [2, 1, 'duplicate key "name": a key may appear only once in a mapping'],
      [3, 17, 'duplicate key "x": a key may appear only once in a mapping'],
    ]);
  });

  it('mappings nested 5,000 deep: one message saying so, or a plain refusal, in well under a second per 20 KB', () => {
    for (const d of [3000, 5000, 20_000]) {
      const text = `name: deep\nbuffers:\n  bo: ${'{a: '.repeat(d)}1${'}'.repeat(d)}\n`;
      const { value: issues, ms } = timed(() => issuesOf(text));
      expect(ms).toBeLessThan(10_000);
      expect(issues.length).toBeGreaterThan(0);
      for (const i of issues) expect(i.message).not.toMatch(/call stack/i);
    }
    const deep = issuesOf(`name: ${'['.repeat(100_000)}`);
    expect(deep.some((i) => /nested too deeply/.test(i.message))).toBe(true);
    expect(deep.filter((i) => /nested too deeply/.test(i.message)).length).toBe(1);
  });

  it('nesting past 32 levels is refused at the first node past it, wherever the parser runs (main thread, worker, CLI)', () => {
    // The parser's own limit is the stack it runs on: 1,000 levels overflowed on one stack and
    // loaded on another, so the same file was refused by the library and accepted by the command line.
    const nest = (d: number) =>
      `name: x\nbuffers:\n  bo: { exporter: ttm, options: ${'['.repeat(d)}1${']'.repeat(d)} }\n`;
    const deep = issuesOf(nest(40));
    expect(deep.map((i) => [i.line, i.col, i.message])).toEqual([
      // The list at col 33 is level 4 (the file, buffers, bo, options): level 33 is 29 columns on.
      [
        3,
        33 + MAX_NESTING + 1 - 4,
        `mappings and lists are nested more than ${MAX_NESTING} levels deep here; a scenario needs only a few levels`,
      ],
    ]);
    expect(issuesOf(nest(20)).some((i) => /nested/.test(i.message))).toBe(false);
  });

  it('a megabyte-long word costs no megabyte-sized table per candidate when looking for "did you mean"', () => {
    const { value, ms } = timed(() => nearest('t'.repeat(500_000), ['ttm', 'vfio-pci', 'udmabuf']));
    expect(value).toBeNull();
    expect(ms).toBeLessThan(1000);
    expect(nearest('kmv', ['kvm', 'dma-static'])).toBe('kvm');
  });

  it('a long name is cut in the message, the message stays one line', () => {
    const [i] = issuesOf(`name: x\nbuffers:\n  bo: { exporter: ${'t'.repeat(100_000)} }\nthreads: {t: [bo.put]}\n`);
    expect(i?.message.length).toBeLessThan(400);
    expect(i?.message).toMatch(/^unknown exporter "t{60}…"; expected one of/);
    const [j] = issuesOf('name: "a\\nb\\tc\\u0007"\nbuffers: {bo: {exporter: ttm}}\nthreads: {t: [bo.put]}\n');
    expect(j?.message).toBe('name: "a\\nb\\tc\\u0007" must use only a-z, 0-9 and "-"');
  });

  it('a garbled file lists its first 100 problems and counts the rest, at the position they start', () => {
    const text = `name: x\n${Array.from({ length: 250 }, (_, i) => `bad${i}: 1\n`).join('')}`;
    const issues = issuesOf(text);
    expect(issues.length).toBe(MAX_ISSUES + 1);
    const last = issues[MAX_ISSUES] as ScenarioIssue;
    expect(last.message).toBe(
      `${250 + 2 - MAX_ISSUES} more problems from here on, not listed; fix the ones above first`,
    );
    expect(last.line).toBeGreaterThan(1);
  });
});

describe('the explorer', () => {
  it('setup cut by the step limit is a stopped search (unknown), not a deadlock in setup (bug)', () => {
    const p = mmap();
    for (const maxSteps of [1, 3]) {
      const r: ExploreResult = explore(p, { maxSteps, maxExecutions: 100 });
      expect(r.counterexample).toBeNull();
      expect(r.verdict).toBe('unknown');
      expect(r.stopped).toBe('step-limit');
    }
    expect(explore(p, { maxExecutions: 100 }).verdict).toBe('safe');
  });
});

describe('the command line', () => {
  it('/dev/zero as a scenario: refused after reading 4 MiB (it was read into memory until the machine gave out)', () => {
    const r = runCli(['/dev/zero', '/dev/null']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('/dev/zero:1:1: file is over 4194304 bytes; a scenario may be at most 1048576');
    expect(r.stderr).toContain('/dev/null:1:1: the file is empty');
  });

  it('a token naming thread #33: exit 2 with the reason, not an internal error', () => {
    const p = mmap();
    const r = runCli(['replay', MMAP, '--token', `dc1.${p.hash}.aG`]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^dmabuf-check: at step 2 the token runs thread #33, but the scenario has 2 threads/);
  });
});
