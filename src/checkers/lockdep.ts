/**
 * Lockdep: lock classes, the dependency graph between them and the locks each
 * thread holds.
 *
 * Like the kernel's lockdep, the graph is primed with the canonical order
 * that `dma_resv_lockdep()` and the vfio/KVM code establish ([L8], [L9],
 * [I16]), so a scenario that exercises only one half of an inversion is still
 * reported; and, like the kernel's, it accumulates across everything that ran:
 * the explorer shares one graph between all the executions of a scenario. An
 * edge remembers the execution that added it (its replay token), so a cycle
 * closed with an edge from another execution replays by running that
 * execution first (`replay --token <theirs> --token <this>`).
 *
 * Annotations are pseudo-locks, as in the kernel: `dma_fence_map` (taken for
 * read by `dma_fence_begin_signalling()`, and for a moment by every fence wait,
 * [L11]), `fs_reclaim` (every allocation that may block, [L8] c) and
 * `mmu_notifier_invalidate_range_start`.
 */
import type { Lock } from '../kernel/locking.ts';
import { EXCLUSIVE, SHARED } from '../kernel/locking.ts';
import type { Task } from '../kernel/sched.ts';
import type { WwAcquireCtx, WwMutex } from '../kernel/ww-mutex.ts';
import type { HeldLockInfo, LockDependency, Origin } from './finding.ts';

/** Lock classes the built-in model uses (kernel spelling). */
export const LOCK_CLASS = {
  mmap_lock: 'mmap_lock',
  memory_lock: 'vdev->memory_lock',
  resv: 'reservation_ww_class_mutex',
  i_mmap: 'mapping->i_mmap_rwsem',
  mmu_lock: 'kvm->mmu_lock',
  fs_reclaim: 'fs_reclaim',
  mmu_notifier: 'mmu_notifier_invalidate_range_start',
  fence_map: 'dma_fence_map',
} as const;

/**
 * The order primed at boot ([L8], [L9]): `dma_resv_lockdep()`'s chain
 * mmap_lock → dma_resv → fs_reclaim → i_mmap_rwsem → mmu_notifier → dma_fence
 * wait, plus vfio's memory_lock between mmap_lock and resv, and resv → the
 * importers' locks (KVM's mmu_lock).
 */
export const PRIMED_ORDER: readonly (readonly [string, string])[] = [
  [LOCK_CLASS.mmap_lock, LOCK_CLASS.resv],
  [LOCK_CLASS.resv, LOCK_CLASS.fs_reclaim],
  [LOCK_CLASS.fs_reclaim, LOCK_CLASS.i_mmap],
  [LOCK_CLASS.i_mmap, LOCK_CLASS.mmu_notifier],
  [LOCK_CLASS.mmu_notifier, LOCK_CLASS.fence_map],
  [LOCK_CLASS.mmap_lock, LOCK_CLASS.memory_lock],
  [LOCK_CLASS.memory_lock, LOCK_CLASS.resv],
  [LOCK_CLASS.resv, LOCK_CLASS.mmu_lock],
];

/** The class-level dependency graph of one execution. */
export class LockGraph {
  private readonly deps = new Map<string, Map<string, LockDependency>>();
  /** Every dependency, in the order it was first recorded. */
  readonly list: LockDependency[] = [];

  constructor(primed: readonly (readonly [string, string])[] = PRIMED_ORDER) {
    for (const [a, b] of primed) this.add({ from: a, to: b, seen: null, execution: -1, token: null });
  }

  add(dep: LockDependency): void {
    let m = this.deps.get(dep.from);
    if (!m) {
      m = new Map();
      this.deps.set(dep.from, m);
    }
    if (!m.has(dep.to)) {
      m.set(dep.to, dep);
      this.list.push(dep);
    }
  }

  has(from: string, to: string): boolean {
    return this.deps.get(from)?.has(to) ?? false;
  }

  /** A chain of dependencies from `from` to `to`, shortest first, or null. */
  path(from: string, to: string): LockDependency[] | null {
    const prev = new Map<string, LockDependency>();
    const queue = [from];
    const seen = new Set([from]);
    while (queue.length) {
      const c = queue.shift() as string;
      if (c === to) {
        const chain: LockDependency[] = [];
        let x = to;
        while (x !== from) {
          const d = prev.get(x) as LockDependency;
          chain.unshift(d);
          x = d.from;
        }
        return chain;
      }
      for (const [n, d] of this.deps.get(c) ?? []) {
        if (seen.has(n)) continue;
        seen.add(n);
        prev.set(n, d);
        queue.push(n);
      }
    }
    return null;
  }
}

/** The call stack of `t` now, with the running step's function innermost while still in its frame. */
export function callStack(t: Task): string[] {
  const stack = t.stack.slice();
  const s = t.pending;
  if (s.fn && s.depth === stack.length && stack[stack.length - 1] !== s.fn) stack.push(s.fn);
  return stack;
}

/** Where `t` is now: its step and call stack. */
export function origin(t: Task): Origin {
  return { thread: t.name, step: t.k.step, stack: callStack(t) };
}

export function heldInfo(t: Task): HeldLockInfo[] {
  return t.held.map((h) => ({
    name: h.lock.name,
    class: h.lock.cls,
    mode: h.mode === SHARED ? 'read' : 'write',
    acquired: { thread: t.name, step: h.step, stack: h.stack },
  }));
}

/**
 * Before blocking on `lock`: taking a lock this thread already holds
 * exclusively can never succeed (AA deadlock, lockdep's "possible recursive
 * locking detected").
 */
export function checkRecursion(t: Task, lock: Lock, fn: string, mode: number = EXCLUSIVE): void {
  // Held exclusively, or held shared and now wanted exclusively (a writer
  // waiting for its own read side never gets it).
  if (lock.owner !== t && !(mode === EXCLUSIVE && lock.readers.includes(t))) return;
  t.k.report(t, {
    code: 'deadlock',
    kind: 'recursive',
    waiters: [
      {
        thread: t.name,
        fn,
        stack: t.stack.slice(),
        waitsFor: lock.name,
        holder: t.name,
        held: heldInfo(t),
      },
    ],
    rules: lock.kind === 'ww_mutex' ? ['L6', 'L10', 'I15'] : ['I16'],
    message: `possible recursive locking detected: ${t.name} takes ${lock.name} again in ${fn}`,
  });
}

/** After `t` took `lock`: order and nesting checks, then record it as held. */
export function lockAcquired(
  t: Task,
  lock: Lock,
  mode: number,
  ctx: WwAcquireCtx | null = null,
  fn: string = t.pending.fn,
  trylock = false,
): void {
  const k = t.k;
  // As lockdep: a trylock joins the held locks but adds no dependency (it
  // cannot wait, so it can be taken in any order), which is why shrinkers and
  // mmu notifiers may trylock resv ([L8] d).
  if (trylock) {
    t.held.push({ lock, mode, step: k.step, stack: callStack(t) });
    return;
  }
  if (t.signalling > 0 && lock.kind === 'ww_mutex') {
    k.report(t, {
      code: 'wait-in-signalling',
      what: `${lock.name} taken`,
      rules: ['L11', 'I22'],
      message: `${lock.name} taken inside a dma_fence signalling critical section`,
    });
  }
  for (const h of t.held) {
    const other = h.lock;
    if (other === lock) continue;
    if (other.cls === lock.cls) {
      const sameCtx = ctx !== null && lock.kind === 'ww_mutex' && (other as WwMutex).ctx === ctx;
      if (!sameCtx) {
        k.report(
          t,
          {
            code: 'lock-order',
            kind: 'nesting',
            lock: { name: lock.name, class: lock.cls },
            chain: [],
            requires: [],
            held: heldInfo(t),
            rules: lock.kind === 'ww_mutex' ? ['L6', 'I16'] : ['I16'],
            message: `possible recursive locking detected: ${lock.name} taken while holding ${other.name} of the same class${lock.kind === 'ww_mutex' ? ' without a shared ww_acquire_ctx' : ''}`,
          },
          fn,
        );
      }
      continue;
    }
    if (k.lockGraph.has(other.cls, lock.cls)) continue;
    const back = k.lockGraph.path(lock.cls, other.cls);
    const dep: LockDependency = { from: other.cls, to: lock.cls, seen: origin(t), execution: k.execution, token: null };
    if (back) {
      const requires = new Set<string>();
      for (const d of back) if (d.seen && d.execution !== k.execution && d.token) requires.add(d.token);
      k.report(
        t,
        {
          code: 'lock-order',
          kind: 'circular',
          lock: { name: lock.name, class: lock.cls },
          chain: [...back, dep],
          requires: [...requires],
          held: heldInfo(t),
          rules: ['I16', 'L8'],
          message: `possible circular locking dependency detected: ${lock.cls} taken while holding ${other.cls}`,
        },
        fn,
      );
    }
    k.lockGraph.add(dep);
    k.newEdges.push(dep);
  }
  t.held.push({ lock, mode, step: k.step, stack: callStack(t) });
}

/** After `t` released `lock`; `wasHeld` false means lockdep's "bad unlock balance". */
export function lockReleased(t: Task, lock: Lock, wasHeld: boolean, fn: string): void {
  const i = t.held.findIndex((h) => h.lock === lock);
  if (i >= 0) t.held.splice(i, 1);
  if (!wasHeld) {
    t.k.report(t, {
      code: 'lock-not-held',
      lock: { name: lock.name, class: lock.cls },
      held: heldInfo(t),
      rules: ['I14'],
      message: `bad unlock balance detected: ${fn} of ${lock.name}, which ${t.name} does not hold`,
    });
  }
}

/**
 * `lock_map_acquire()` + `lock_map_release()` on a pseudo-lock: records the
 * dependencies from every held lock to it (the `might_*` annotations).
 */
export function lockMapTouch(t: Task, map: Lock, fn: string): void {
  lockAcquired(t, map, EXCLUSIVE, null, fn);
  lockReleased(t, map, true, 'lock_map_release');
}

/** `lock_map_acquire()` on a pseudo-lock held across a section (fs_reclaim in direct reclaim). */
export function lockMapAcquireWrite(t: Task, map: Lock): void {
  lockAcquired(t, map, EXCLUSIVE, null, 'lock_map_acquire');
}

/** `lock_map_acquire_read()` on a pseudo-lock (a signalling section). */
export function lockMapAcquireRead(t: Task, map: Lock): void {
  lockAcquired(t, map, SHARED);
}

export function lockMapRelease(t: Task, map: Lock): void {
  lockReleased(t, map, true, 'lock_map_release');
}
