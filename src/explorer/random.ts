/**
 * Seeded random walk: each execution picks uniformly among the runnable
 * threads, from a PRNG seeded by (seed, execution number), so every execution
 * is reproducible on its own. It never proves a scenario safe.
 */
import type { ChoiceSource, ExecState } from './execution.ts';

/** mulberry32: small, fast, good enough for scheduling. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class RandomWalk implements ChoiceSource {
  private next: () => number;

  constructor(seed: number, execution: number) {
    this.next = prng((seed ^ Math.imul(execution + 1, 0x9e3779b1)) >>> 0);
  }

  choose(_x: ExecState, enabled: number): number {
    let n = 0;
    for (let m = enabled; m; m &= m - 1) n++;
    let k = Math.floor(this.next() * n);
    for (let m = enabled; m; m &= m - 1) {
      if (k-- === 0) return 31 - Math.clz32(m & -m);
    }
    return -1;
  }
}
