/**
 * Golden files pin the report formats: one kernel-style report per finding
 * code (KASAN for memory, lockdep for locks, WARN for the rest), each ending
 * with its replay token and command. Update with `npx vitest run -u` when a
 * format change is intended, and read the diff.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { FindingCode } from '../../src/checkers/finding.ts';
import {
  defineImporter,
  dma_resv_lock,
  dma_resv_unlock,
  type ImporterEnv,
  type KGen,
  Lock,
  mutex_lock,
  mutex_unlock,
  type Task,
} from '../../src/index.ts';
import { renderFinding, renderResult } from '../../src/report/kernel-text.ts';
import type { ScenarioSpec } from '../../src/scenario/spec.ts';
import { CATALOGUE, check, fromYaml, loadFile } from '../helpers.ts';

/** An importer whose two ops take its own mutex and resv in opposite orders. */
const inverter = defineImporter({
  name: 'inverter',
  summary: 'takes resv and its mutex in either order',
  options: {},
  ops: { resv_then_mutex: { doc: '' }, mutex_then_resv: { doc: '' } },
  create: (env: ImporterEnv) => {
    const m = new Lock(env.k, `${env.name}->lock`, 'inverter->lock', 'mutex');
    const resv = env.buffer.resv;
    return {
      attachCall: 'none',
      *attach(): KGen<number> {
        return 0;
      },
      *detach(): KGen {},
      *teardown(): KGen {},
      ops: {
        resv_then_mutex: function* (t: Task): KGen {
          yield* dma_resv_lock(t, resv, null);
          yield* mutex_lock(t, m);
          yield* mutex_unlock(t, m);
          yield* dma_resv_unlock(t, resv);
        },
        mutex_then_resv: function* (t: Task): KGen {
          yield* mutex_lock(t, m);
          yield* dma_resv_lock(t, resv, null);
          yield* dma_resv_unlock(t, resv);
          yield* mutex_unlock(t, m);
        },
      },
    };
  },
});

const catalogue = (name: string): ScenarioSpec => loadFile(path.join(CATALOGUE, `${name}.yaml`));

const CASES: readonly { code: FindingCode; name: string; spec: () => ScenarioSpec; file: string }[] = [
  {
    code: 'use-after-free',
    name: 'use-after-free',
    spec: () => catalogue('kvm-unlocked-no-retry-vs-ttm-move'),
    file: 'scenarios/kvm-unlocked-no-retry-vs-ttm-move.yaml',
  },
  {
    code: 'stale-mapping',
    name: 'stale-mapping',
    spec: () => catalogue('rogue-mmap-vs-ttm-move'),
    file: 'scenarios/rogue-mmap-vs-ttm-move.yaml',
  },
  {
    code: 'access-after-revoke',
    name: 'access-after-revoke',
    spec: () => catalogue('vfio-revoke-kvm-no-zap'),
    file: 'scenarios/vfio-revoke-kvm-no-zap.yaml',
  },
  {
    code: 'lock-not-held',
    name: 'lock-not-held',
    spec: () => catalogue('cpu-access-vmap-without-resv'),
    file: 'scenarios/cpu-access-vmap-without-resv.yaml',
  },
  {
    code: 'lock-held',
    name: 'lock-held',
    spec: () => catalogue('cpu-access-begin-with-resv-held'),
    file: 'scenarios/cpu-access-begin-with-resv-held.yaml',
  },
  {
    code: 'lock-held-on-return',
    name: 'lock-held-on-return',
    spec: () => catalogue('rogue-mmap-hold-resv'),
    file: 'scenarios/rogue-mmap-hold-resv.yaml',
  },
  {
    code: 'deadlock',
    name: 'deadlock-recursive',
    spec: () => catalogue('kvm-invalidate-takes-resv'),
    file: 'scenarios/kvm-invalidate-takes-resv.yaml',
  },
  {
    code: 'lock-order',
    name: 'lock-order-nesting',
    spec: () => catalogue('ww-abba-without-context'),
    file: 'scenarios/ww-abba-without-context.yaml',
  },
  {
    code: 'lock-order',
    name: 'lock-order-circular',
    spec: () =>
      fromYaml(
        'name: inversion\nbuffers: { bo: { exporter: system-heap } }\nimporters: { inv: { driver: ./inverter.ts, buffer: bo } }\nthreads:\n  a: [inv.resv_then_mutex]\n  b: [inv.mutex_then_resv]\n',
        new Map([['./inverter.ts', inverter]]),
      ),
    file: 'inversion.yaml',
  },
  {
    code: 'wait-in-signalling',
    name: 'wait-in-signalling',
    spec: () => catalogue('gpu-job-waits-in-signalling'),
    file: 'scenarios/gpu-job-waits-in-signalling.yaml',
  },
  { code: 'leak', name: 'leak', spec: () => catalogue('udmabuf-vmap-leak'), file: 'scenarios/udmabuf-vmap-leak.yaml' },
  {
    code: 'refcount',
    name: 'refcount',
    spec: () =>
      fromYaml('name: double-put\nbuffers: { bo: { exporter: system-heap } }\nthreads: { t: [bo.put, bo.put] }\n'),
    file: 'double-put.yaml',
  },
  {
    code: 'api-misuse',
    name: 'api-misuse',
    spec: () => catalogue('vfio-revoke-non-revocable-importer'),
    file: 'scenarios/vfio-revoke-non-revocable-importer.yaml',
  },
];

describe('kernel-style report formats', () => {
  for (const c of CASES) {
    it(`${c.name}: ${c.code}`, async () => {
      const r = check(c.spec());
      const f = r.findings.find((x) => x.code === c.code);
      expect(f, `no ${c.code} finding`).toBeDefined();
      if (!f) return;
      const text = renderFinding(f, { file: c.file });
      expect(text.split('\n').at(-2)).toMatch(/^ {2}dmabuf-check replay \S+ --token dc1\.[0-9a-f]{8}\.\S*$/);
      await expect(`${text}\n`).toMatchFileSnapshot(`./__snapshots__/${c.name}.txt`);
    });
  }

  it('the result line says how many context switches the counterexample has', async () => {
    const r = check(catalogue('kvm-unlocked-no-retry-vs-ttm-move'));
    const text = renderResult(r, { file: 'scenarios/kvm-unlocked-no-retry-vs-ttm-move.yaml' });
    expect(text).toMatch(/counterexample: \d+ scheduled steps, 2 context switches \(1 preemption\)/);
    await expect(text.split('\n').slice(1, 2).join('\n')).toMatchFileSnapshot('./__snapshots__/result-line.txt');
  });
});
