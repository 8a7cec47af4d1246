/**
 * A small share of `npm run fuzz`'s command-line phase in every test run:
 * generated argument vectors and scenario files, each run as a process
 * (test/fuzz/cli.ts). Bad input exits 2 naming the file and line:col, never
 * with a stack trace, never 3, never hanging. Two streams run at once.
 */
import { rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cliProperty, setupCliDir } from './cli.ts';
import { ROOT } from './corpus.ts';
import { cliPhase, describeFailures, runAsyncPhase } from './phases.ts';

const DIR = path.join(ROOT, 'tmp', `fuzz-cli-test-${process.pid}`);
setupCliDir(DIR);
afterAll(() => rmSync(DIR, { recursive: true, force: true }));

describe('fuzzing the command line (a small share of npm run fuzz)', () => {
  it('generated argument vectors and files: exit 2 for bad input, file:line:col, no stack, no hang', async () => {
    const results = await Promise.all(
      [20_261_125, 20_261_126].map((seed, i) => runAsyncPhase(cliPhase(path.join(DIR, `s${i}`)), 12, seed)),
    );
    expect(results.flatMap(describeFailures)).toEqual([]);
    expect(results.reduce((n, r) => n + r.inputs, 0)).toBe(24);
    // Most vectors hold a bad part on purpose; some are wholly good.
    expect(results.reduce((n, r) => n + (r.labels['exit 2'] ?? 0), 0)).toBeGreaterThan(10);
  });

  it('the property can fail: a good file with a bad option that is not marked bad', async () => {
    await expect(
      cliProperty(
        {
          command: 'check',
          files: [],
          argv: ['--workers', '-1', 'missing.yaml'],
          bad: false,
          refusedFiles: [],
          badOption: false,
          json: false,
        },
        DIR,
        0,
      ),
    ).rejects.toThrow(/good input, but exit 2/);
  });
});
