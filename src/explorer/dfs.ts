/**
 * Exhaustive depth-first exploration with sleep sets (Godefroid, 1996),
 * stateless: every execution re-runs the program from the start, replaying a
 * prefix of choices and then branching.
 *
 * At each node the source remembers which threads it already explored
 * (`done`) and which it need not explore (`sleep`). A thread explored from a
 * node, or asleep there, stays asleep in the child reached by running thread
 * `c` if its pending step is independent of `c`'s (they touch no common
 * object, or both only read it): running it after `c` reaches a state already
 * covered. An execution whose runnable threads are all asleep is redundant
 * and abandoned.
 *
 * The pending step of a thread does not change while other threads run, so
 * the dependence test reads the live pending steps: nothing is copied.
 *
 * Preference: the thread that ran last goes on when it can, so executions with
 * few preemptions come first.
 */
import { dependent } from '../kernel/sched.ts';
import type { ChoiceSource, ExecState } from './execution.ts';

interface Node {
  enabled: number;
  done: number;
  sleep: number;
  chosen: number;
}

/**
 * The deepest node that still has a thread to explore (`pending(node)` is a
 * non-zero mask), with the nodes below it dropped; -1 when none is left.
 */
export function deepestPending<N>(nodes: N[], pending: (n: N) => number): number {
  for (let d = nodes.length - 1; d >= 0; d--) {
    if (pending(nodes[d] as N)) {
      nodes.length = d + 1;
      return d;
    }
  }
  return -1;
}

/**
 * The threads of `sleepers` that stay asleep after thread `c` runs its
 * pending step: those whose pending step is independent of it (live
 * declarations, refreshed: the state is the one they are about to run in).
 */
export function stillAsleep(threads: ExecState['threads'], sleepers: number, c: number): number {
  const sc = (threads[c] as ExecState['threads'][number]).pending;
  let carry = sleepers & ~(1 << c);
  let next = 0;
  while (carry) {
    const u = 31 - Math.clz32(carry & -carry);
    carry &= carry - 1;
    if (!dependent((threads[u] as ExecState['threads'][number]).pending, sc)) next |= 1 << u;
  }
  return next;
}

/** Picks from `cands`: `last` if it is a candidate, else the lowest index. */
export function preferred(cands: number, last: number): number {
  if (last >= 0 && cands & (1 << last)) return last;
  return 31 - Math.clz32(cands & -cands);
}

export class SleepSetDfs implements ChoiceSource {
  private readonly nodes: Node[] = [];
  /** Depth at which the current execution leaves the previous one's path. */
  private branch = 0;
  /** True until the execution that resumes at `branch` has picked there. */
  private resuming = false;
  /** Sleep set for the node about to be created. */
  private nextSleep = 0;
  private finished = false;

  /** A work unit's root (explorer/units.ts): its prefix is replayed, nothing above it is explored. */
  private readonly prefix: readonly number[];

  /** With `useSleepSets` false: plain DFS over every interleaving (for comparison and counting). */
  constructor(
    private readonly useSleepSets = true,
    unit?: { readonly prefix: readonly number[]; readonly sleep: number },
  ) {
    this.prefix = unit?.prefix ?? [];
    this.nextSleep = unit?.sleep ?? 0;
  }

  get done(): boolean {
    return this.finished;
  }

  choose(x: ExecState, enabled: number): number {
    const d = x.depth;
    if (d < this.prefix.length) {
      const c = this.prefix[d] as number;
      if (!(enabled & (1 << c))) throw new NondeterminismError(d);
      return c;
    }
    if (d < this.branch) {
      const n = this.nodes[d] as Node;
      if (n.enabled !== enabled) throw new NondeterminismError(d);
      return n.chosen;
    }
    if (this.resuming) {
      this.resuming = false;
      const n = this.nodes[d] as Node;
      if (n.enabled !== enabled) throw new NondeterminismError(d);
      return this.take(x, n, preferred(n.enabled & ~n.done & ~n.sleep, x.last));
    }
    const n: Node = { enabled, done: 0, sleep: this.nextSleep, chosen: -1 };
    this.nodes[d] = n;
    this.nodes.length = d + 1;
    const cands = enabled & ~n.sleep;
    if (cands === 0) return -1;
    return this.take(x, n, preferred(cands, x.last));
  }

  private take(x: ExecState, node: Node, c: number): number {
    node.chosen = c;
    let next = 0;
    if (this.useSleepSets) {
      let carry = (node.sleep | node.done) & ~(1 << c);
      const sc = (x.threads[c] as ExecState['threads'][number]).pending;
      while (carry) {
        const u = 31 - Math.clz32(carry & -carry);
        carry &= carry - 1;
        const su = (x.threads[u] as ExecState['threads'][number]).pending;
        if (!dependent(su, sc)) next |= 1 << u;
      }
    }
    this.nextSleep = next;
    node.done |= 1 << c;
    return c;
  }

  /** Prepares the next execution; false when the whole tree has been explored. */
  advance(): boolean {
    const d = deepestPending(this.nodes, (n) => (n ? n.enabled & ~n.done & ~n.sleep : 0));
    if (d < this.prefix.length) {
      this.finished = true;
      return false;
    }
    this.branch = d;
    this.resuming = true;
    return true;
  }
}

/** A replayed prefix did not reproduce the same runnable threads: the program is not deterministic. */
export class NondeterminismError extends Error {
  readonly code = 'DMABUF_NONDETERMINISTIC';
  constructor(readonly depth: number) {
    super(
      `the scenario is not deterministic: replaying the same choices gave different runnable threads at step ${depth + 1} (a driver module using time, randomness or state kept between executions?)`,
    );
  }
}
