/**
 * Direct reclaim (page-alloc.ts `fs_reclaim`, [L8] c, d): a GFP_KERNEL
 * allocation runs the registered shrinkers in the allocating thread under the
 * fs_reclaim map; GFP_NOWAIT does not, nor does an allocation inside reclaim;
 * a lock held across the allocation that a shrinker also takes is a
 * `lock-order` (another thread) or `deadlock` (the same thread) finding; a
 * trylock adds no dependency (so a shrinker may trylock resv).
 */
import { describe, expect, it } from 'vitest';
import { Kernel } from '../../src/kernel/kernel.ts';
import { EXCLUSIVE, Lock, lock_try, mutex_lock, mutex_unlock } from '../../src/kernel/locking.ts';
import { alloc_pages, register_shrinker, unregister_shrinker } from '../../src/kernel/page-alloc.ts';
import type { KGen, Task } from '../../src/kernel/sched.ts';
import { runUntilBlocked, solo } from './harness.ts';

const system = (k: Kernel) => k.physmem.pools.get('system') as NonNullable<ReturnType<typeof k.physmem.pools.get>>;

describe('direct reclaim', () => {
  it('GFP_KERNEL runs every shrinker in the allocating thread, under fs_reclaim; GFP_NOWAIT and nested allocations do not', () => {
    const k = new Kernel();
    const seen: string[] = [];
    register_shrinker(k, {
      name: 's',
      *scan(t: Task): KGen {
        seen.push(`${t.name}:${t.held.map((h) => h.lock.name).join(',')}`);
        // An allocation inside reclaim does not reclaim again (PF_MEMALLOC).
        yield* alloc_pages(t, system(k), 1, () => 'nested');
      },
    });
    solo(function* (t) {
      yield* alloc_pages(t, system(k), 1, () => 'a', 'GFP_NOWAIT');
      yield* alloc_pages(t, system(k), 1, () => 'b');
    }, k);
    expect(seen).toEqual(['t0:fs_reclaim']);
  });

  it('a lock held across GFP_KERNEL that a shrinker takes: the same thread deadlocks', () => {
    const k = new Kernel();
    const m = new Lock(k, 'drv->lock', 'drv->lock', 'mutex');
    register_shrinker(k, {
      name: 's',
      *scan(t: Task): KGen {
        yield* mutex_lock(t, m);
        yield* mutex_unlock(t, m);
      },
    });
    const t = k.newTask('t0');
    const done = runUntilBlocked(
      t,
      (function* () {
        yield* mutex_lock(t, m);
        yield* alloc_pages(t, system(k), 1, () => 'p');
      })(),
    );
    expect(done).toBe(false);
    expect(k.findings.map((f) => f.code)).toContain('deadlock');
  });

  it('... and from another thread, lockdep links the halves: lock → fs_reclaim → lock', () => {
    const k = new Kernel();
    const m = new Lock(k, 'drv->lock', 'drv->lock', 'mutex');
    const shrinker = {
      name: 's',
      *scan(t: Task): KGen {
        yield* mutex_lock(t, m);
        yield* mutex_unlock(t, m);
      },
    };
    register_shrinker(k, shrinker);
    // Thread a reclaims with nothing held: fs_reclaim → drv->lock.
    solo(function* (t) {
      yield* alloc_pages(t, system(k), 1, () => 'a');
    }, k);
    unregister_shrinker(k, shrinker);
    // Thread b allocates while holding drv->lock: drv->lock → fs_reclaim closes the cycle.
    solo(function* (t) {
      yield* mutex_lock(t, m);
      yield* alloc_pages(t, system(k), 1, () => 'b');
      yield* mutex_unlock(t, m);
    }, k);
    const f = k.findings.find((x) => x.code === 'lock-order');
    expect(f?.message).toMatch(/circular locking dependency detected: fs_reclaim taken while holding drv->lock/);
  });

  it('a trylock adds no dependency; what is taken under it still does', () => {
    const k = new Kernel();
    const a = new Lock(k, 'a', 'A', 'mutex');
    const b = new Lock(k, 'b', 'B', 'mutex');
    solo(function* (t) {
      yield* mutex_lock(t, a);
      expect(yield* lock_try(t, b, EXCLUSIVE, 'mutex_trylock')).toBe(true);
      yield* mutex_unlock(t, b);
      yield* mutex_unlock(t, a);
    }, k);
    expect(k.lockGraph.has('A', 'B')).toBe(false);
    // The reverse order, blocking, is then no inversion.
    solo(function* (t) {
      yield* mutex_lock(t, b);
      yield* mutex_lock(t, a);
      yield* mutex_unlock(t, a);
      yield* mutex_unlock(t, b);
    }, k);
    expect(k.findings).toEqual([]);
    expect(k.lockGraph.has('B', 'A')).toBe(true);
  });
});
