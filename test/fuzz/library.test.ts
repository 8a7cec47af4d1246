/**
 * A small share of `npm run fuzz` (scripts/fuzz.ts) in every test run: the
 * library's entry points on generated malformed and adversarial input
 * (test/fuzz/arbitraries.ts), checked by test/fuzz/properties.ts — a typed
 * error with where and what, never another exception, never a hang; a run a
 * limit stopped is never `safe`.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ScenarioError } from '../../src/scenario/errors.ts';
import { describeFailures, type LibraryPhaseName, PHASES, type Phase, runPhase } from './phases.ts';
import { checkScenarioError, loadProperty, Violation } from './properties.ts';

const SEED = 20_261_125;

/** Inputs per phase here; `npm run fuzz` runs about 100,000 in all. */
const SHARE: Record<LibraryPhaseName, number> = {
  'scenario-yaml': 1500,
  'scenario-huge': 2,
  check: 150,
  token: 500,
  replay: 200,
  trace: 200,
};

describe('fuzzing the library (a small share of npm run fuzz)', () => {
  for (const [name, runs] of Object.entries(SHARE) as [LibraryPhaseName, number][]) {
    const p = PHASES[name] as Phase<unknown>;
    it(`${name}: ${p.what}`, () => {
      const r = runPhase(p, runs, SEED);
      expect(describeFailures(r)).toEqual([]);
      expect(r.inputs).toBe(runs);
    });
  }

  it('the generated scenarios are not all refused: some load, and the explorer gets to run on them', () => {
    const r = runPhase(PHASES.check as Phase<unknown>, 100, SEED);
    expect(r.labels.refused ?? 0).toBeLessThan(60);
    expect((r.labels.safe ?? 0) + (r.labels.bug ?? 0) + (r.labels.unknown ?? 0)).toBeGreaterThan(40);
  });
});

describe('the properties can fail', () => {
  it('an error without a position, or with a stack trace or an unset value, is a bad error', () => {
    const bad = (issues: { line: number; col: number; message: string }[]) =>
      new ScenarioError(issues.map((i) => ({ file: 'f.yaml', ...i })));
    const text = 'name: x\n';
    expect(() => checkScenarioError(bad([{ line: 0, col: 1, message: 'm' }]), text, 'f.yaml')).toThrow(Violation);
    expect(() => checkScenarioError(bad([{ line: 9, col: 1, message: 'm' }]), text, 'f.yaml')).toThrow(/outside/);
    expect(() =>
      checkScenarioError(bad([{ line: 1, col: 1, message: 'x\n    at f (/src/a.ts:1:2)' }]), text, 'f.yaml'),
    ).toThrow(/several lines/);
    expect(() => checkScenarioError(bad([{ line: 1, col: 1, message: 'found undefined' }]), text, 'f.yaml')).toThrow(
      /undefined/,
    );
    expect(() => checkScenarioError(bad([{ line: 1, col: 1, message: 'fine' }]), text, 'g.yaml')).toThrow(/names file/);
  });

  it('an exception other than the typed one is a crash, counted and shrunk', () => {
    const p: Phase<number> = {
      name: 'demo',
      what: 'a phase whose entry point throws a TypeError above 50',
      arb: fc.nat({ max: 1000 }),
      run: (n) => {
        if (n > 50) throw new Violation('crash', `TypeError for ${n}`);
        return 'ok';
      },
    };
    const r = runPhase(p, 300, SEED);
    expect(r.crashes).toBeGreaterThan(0);
    expect(r.failures[0]?.input).toBe('51');
  });

  it('a loaded scenario is returned, a refused one is null', () => {
    expect(loadProperty('name: x\nbuffers: { bo: { exporter: ttm } }\nthreads: { t: [bo.put] }\n')?.name).toBe('x');
    expect(loadProperty('name: [')).toBeNull();
  });
});
