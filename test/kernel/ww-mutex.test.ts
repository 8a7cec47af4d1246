/** ww_mutex wait-die ([L6], [L7]); the full suite is issue 3. */
import { describe, expect, it } from 'vitest';
import { EALREADY, EDEADLK } from '../../src/kernel/errno.ts';
import { Kernel } from '../../src/kernel/kernel.ts';
import {
  type WwAcquireCtx,
  WwMutex,
  ww_acquire_init,
  ww_mutex_lock,
  ww_mutex_lock_slow,
  ww_mutex_unlock,
} from '../../src/kernel/ww-mutex.ts';
import { runUntilBlocked, solo } from './harness.ts';

const CLS = 'reservation_ww_class_mutex';

describe('ww_mutex', () => {
  it('relocking with the same context gives -EALREADY ([L7])', () => {
    const { result } = solo(function* (t, k) {
      const a = new WwMutex(k, 'a', CLS);
      const ctx = yield* ww_acquire_init(t);
      return [yield* ww_mutex_lock(t, a, ctx), yield* ww_mutex_lock(t, a, ctx)];
    });
    expect(result).toEqual([0, -EALREADY]);
  });

  it('a younger context holding a lock dies (-EDEADLK) against an older holder; an older one waits ([L7])', () => {
    const k = new Kernel();
    const a = new WwMutex(k, 'a', CLS);
    const b = new WwMutex(k, 'b', CLS);
    const old = k.newTask('old');
    const young = k.newTask('young');
    let oldCtx = null as unknown as WwAcquireCtx;
    let youngCtx = oldCtx;
    runUntilBlocked(
      old,
      (function* () {
        oldCtx = yield* ww_acquire_init(old);
      })(),
    );
    runUntilBlocked(
      young,
      (function* () {
        youngCtx = yield* ww_acquire_init(young);
      })(),
    );
    expect(runUntilBlocked(old, ww_mutex_lock(old, a, oldCtx))).toBe(true);
    expect(runUntilBlocked(young, ww_mutex_lock(young, b, youngCtx))).toBe(true);
    // The older context waits for b...
    expect(runUntilBlocked(old, ww_mutex_lock(old, b, oldCtx))).toBe(false);
    // ...the younger one, holding b, dies on a.
    let r = 0;
    expect(
      runUntilBlocked(
        young,
        (function* () {
          r = yield* ww_mutex_lock(young, a, youngCtx);
        })(),
      ),
    ).toBe(true);
    expect(r).toBe(-EDEADLK);
    expect(youngCtx.contended).toBe(a);
  });

  it('lock_slow with locks of the context still held is api-misuse ([L7], [I16])', () => {
    const { k } = solo(function* (t, k) {
      const a = new WwMutex(k, 'a', CLS);
      const b = new WwMutex(k, 'b', CLS);
      const ctx = yield* ww_acquire_init(t);
      yield* ww_mutex_lock(t, a, ctx);
      ctx.contended = b;
      yield* ww_mutex_lock_slow(t, b, ctx);
      yield* ww_mutex_unlock(t, b);
      yield* ww_mutex_unlock(t, a);
    });
    expect(k.findings.map((f) => f.code)).toEqual(['api-misuse']);
  });

  it('two resv-class locks without a shared context: lockdep nesting ([L6])', () => {
    const { k } = solo(function* (t, k) {
      const a = new WwMutex(k, 'a', CLS);
      const b = new WwMutex(k, 'b', CLS);
      yield* ww_mutex_lock(t, a, null);
      yield* ww_mutex_lock(t, b, null);
    });
    expect(k.findings.map((f) => f.code)).toEqual(['lock-order']);
  });

  it('the same two locks under one acquire context are fine ([L7])', () => {
    const { k } = solo(function* (t, k) {
      const a = new WwMutex(k, 'a', CLS);
      const b = new WwMutex(k, 'b', CLS);
      const ctx = yield* ww_acquire_init(t);
      yield* ww_mutex_lock(t, a, ctx);
      yield* ww_mutex_lock(t, b, ctx);
    });
    expect(k.findings).toEqual([]);
  });
});
