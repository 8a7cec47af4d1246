/**
 * Probabilistic concurrency testing (Burckhardt, Kothari, Musuvathi,
 * Nagarakatte, ASPLOS 2010): each execution gives the threads random
 * distinct priorities d, d+1, …, d+n-1 and picks d-1 change points among the
 * first k steps; the runnable thread with the highest priority always runs,
 * and at the i-th change point the running thread drops to priority i.
 *
 * Guarantee: a bug of depth d (d ordering constraints between steps) is hit
 * by one execution with probability at least 1 / (n · k^(d-1)).
 */
import type { ChoiceSource, ExecState } from './execution.ts';
import { prng } from './random.ts';

export class Pct implements ChoiceSource {
  private readonly priority: number[];
  /** Step numbers (0-based) where the running thread's priority drops. */
  private readonly changes: number[];

  constructor(
    seed: number,
    execution: number,
    threads: number,
    /** Steps an execution may take (the change points are drawn below it). */
    readonly k: number,
    /** Bug depth the execution targets. */
    readonly d: number,
  ) {
    const next = prng((seed ^ Math.imul(execution + 1, 0x85ebca6b)) >>> 0);
    // A random permutation of d .. d+n-1.
    const prios = Array.from({ length: threads }, (_, i) => d + i);
    for (let i = prios.length - 1; i > 0; i--) {
      const j = Math.floor(next() * (i + 1));
      [prios[i], prios[j]] = [prios[j] as number, prios[i] as number];
    }
    this.priority = prios;
    this.changes = Array.from({ length: Math.max(0, d - 1) }, () => Math.floor(next() * Math.max(1, k)));
  }

  private highest(enabled: number): number {
    let best = -1;
    let bestPrio = Number.NEGATIVE_INFINITY;
    for (let m = enabled; m; m &= m - 1) {
      const t = 31 - Math.clz32(m & -m);
      const p = this.priority[t] as number;
      if (p > bestPrio) {
        bestPrio = p;
        best = t;
      }
    }
    return best;
  }

  choose(x: ExecState, enabled: number): number {
    const c = this.highest(enabled);
    for (let i = 0; i < this.changes.length; i++) {
      if (this.changes[i] === x.depth && c >= 0) {
        // The i-th change point (priorities 1 .. d-1, below every initial one).
        this.priority[c] = i + 1;
        return this.highest(enabled);
      }
    }
    return c;
  }
}

/** Probability that one PCT execution of depth `d` hits a given bug of that depth. */
export function pctHitProbability(threads: number, k: number, d: number): number {
  return 1 / (Math.max(1, threads) * Math.max(1, k) ** Math.max(0, d - 1));
}
