/** The drm-exec importer: ww_mutex acquire contexts and -EDEADLK back-off ([L6], [L7], [I16]). */
import { describe, expect, it } from 'vitest';
import { ScenarioError } from '../../src/scenario/errors.ts';
import { check, codes, expectBug, expectSafe, fromYaml } from '../helpers.ts';

const scenario = (opts1: string, opts2 = opts1) => `
name: ww
buffers: { a: { exporter: ttm }, b: { exporter: ttm } }
importers:
  job1: { driver: drm-exec, buffer: a, options: { with: b${opts1} } }
  job2: { driver: drm-exec, buffer: b, options: { with: a${opts2} } }
threads:
  s1: [job1.submit]
  s2: [job2.submit]
`;

describe('drm-exec', () => {
  it('with acquire contexts and the correct back-off, opposite lock orders are safe ([L7])', () => {
    expectSafe(check(fromYaml(scenario(''))));
  });

  it('ww_ctx: false — two resv locks without a context: nesting, and an ABBA deadlock ([L6])', () => {
    const r = check(fromYaml(`${scenario(', ww_ctx: false')}expect: { verdict: bug, finding: deadlock }\n`));
    expect(codes(r)).toContain('lock-order');
    expect(codes(r)).toContain('deadlock');
  });

  it('ww_ctx: false with a single buffer: nothing to nest, safe', () => {
    const r = check(
      fromYaml(
        'name: one\nbuffers: { a: { exporter: ttm } }\nimporters: { job: { driver: drm-exec, buffer: a, options: { ww_ctx: false } } }\nthreads: { s: [job.submit, job.submit] }\n',
      ),
    );
    expectSafe(r);
  });

  it('backoff: keep-locks — lock_slow with locks of the context still held ([L7] 3)', () => {
    const r = check(fromYaml(scenario(', backoff: keep-locks')));
    expectBug(r, 'api-misuse');
    expect(r.findings.map((f) => f.message).join('\n')).toMatch(/dma_resv_lock_slow.*still held/);
  });

  it('backoff: wrong-lock — lock_slow on an object that is not the contended one ([L7] 3)', () => {
    const r = check(fromYaml(scenario(', backoff: wrong-lock')));
    expectBug(r, 'api-misuse');
    expect(r.findings.map((f) => f.message).join('\n')).toMatch(/contended lock is/);
  });

  it('a broken back-off on one side only still shows when that side dies', () => {
    const r = check(fromYaml(scenario(', backoff: keep-locks', '')));
    expectBug(r, 'api-misuse');
  });

  it('with: names a buffer of the scenario (bad input otherwise, with a suggestion)', () => {
    expect(() => fromYaml(scenario('').replace('with: b', 'with: c'))).toThrow(ScenarioError);
    try {
      fromYaml(scenario('').replace('with: b', 'with: bb'));
    } catch (e) {
      expect((e as ScenarioError).message).toMatch(/importers\.job1\.options\.with.*did you mean "b"/);
    }
  });
});
