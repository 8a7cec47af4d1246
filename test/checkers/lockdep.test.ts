/**
 * Lockdep across executions ([I16], [L8]): the graph accumulates over every
 * execution of a scenario, like the kernel's over a whole run, so an
 * inversion whose two halves never meet in one execution is still reported —
 * and replays by running the other execution first. Pseudo-locks: the
 * primed chain reaches dma_fence_map and fs_reclaim.
 */
import { describe, expect, it } from 'vitest';
import {
  defineImporter,
  type ImporterEnv,
  type ImporterInstance,
  type KGen,
  Lock,
  mutex_lock,
  mutex_unlock,
  SharedObject,
  type Task,
} from '../../src/index.ts';
import { compile } from '../../src/scenario/compile.ts';
import { replayToken } from '../../src/trace/replay.ts';
import { check, codes, first, fromYaml } from '../helpers.ts';

/** `racy` takes A then B if `set` already ran, else B then A. */
class Racy implements ImporterInstance {
  readonly attachCall = 'none';
  readonly a: Lock;
  readonly b: Lock;
  readonly flag: SharedObject;
  set = false;
  constructor(readonly env: ImporterEnv) {
    this.a = new Lock(env.k, 'lock_a', 'class_a', 'mutex');
    this.b = new Lock(env.k, 'lock_b', 'class_b', 'mutex');
    this.flag = new SharedObject(env.k, 'flag', 'flag');
  }
  *attach(): KGen<number> {
    return 0;
  }
  *detach(): KGen {}
  *teardown(): KGen {}
  readonly ops = {
    set: (t: Task) => this.doSet(t),
    racy: (t: Task) => this.doRacy(t),
  };
  private *doSet(t: Task): KGen {
    yield t.at('set_flag', 'write', this.flag);
    this.set = true;
  }
  private *doRacy(t: Task): KGen {
    yield t.at('read_flag', 'read', this.flag);
    const [x, y] = this.set ? [this.a, this.b] : [this.b, this.a];
    yield* mutex_lock(t, x);
    yield* mutex_lock(t, y);
    yield* mutex_unlock(t, y);
    yield* mutex_unlock(t, x);
  }
}

const racy = defineImporter({
  name: 'racy',
  summary: 'lock order depends on a race',
  options: {},
  ops: { set: { doc: 'set the flag' }, racy: { doc: 'take the two locks in the order the flag says' } },
  create: (env) => new Racy(env),
});

describe('lockdep across executions', () => {
  const spec = fromYaml(
    `name: racy
buffers: { bo: { exporter: system-heap } }
importers: { r: { driver: ./racy.ts, buffer: bo } }
threads:
  t0: [r.racy]
  t1: [r.set]
`,
    new Map([['./racy.ts', racy]]),
  );

  it('reports an inversion whose halves are in different executions, with both chains', () => {
    const r = check(spec);
    expect(codes(r)).toEqual(['lock-order']);
    const f = first(r, 'lock-order');
    if (f.code !== 'lock-order') throw new Error('unreachable');
    expect(f.kind).toBe('circular');
    expect(f.requires.length).toBe(1);
    expect(f.chain.map((d) => `${d.from}->${d.to}`)).toEqual(['class_b->class_a', 'class_a->class_b']);
  });

  it('replays from its token only after the execution it depends on', () => {
    const r = check(spec);
    const f = first(r, 'lock-order');
    if (f.code !== 'lock-order') throw new Error('unreachable');
    const alone = replayToken(compile(spec), f.token, 'racy.yaml');
    expect(alone.result.findings.map((g) => g.code)).toEqual([]);
    const withDeps = replayToken(compile(spec), f.token, 'racy.yaml', f.requires);
    expect(withDeps.result.findings.map((g) => g.message)).toContain(f.message);
    expect(withDeps.trace.after).toEqual(f.requires);
  });

  it('one order only, in every execution: no finding', () => {
    const one = fromYaml(
      'name: one\nbuffers: { bo: { exporter: system-heap } }\nimporters: { r: { driver: ./racy.ts, buffer: bo } }\nthreads:\n  t0: [r.set, r.racy]\n',
      new Map([['./racy.ts', racy]]),
    );
    expect(check(one).verdict).toBe('safe');
  });
});
