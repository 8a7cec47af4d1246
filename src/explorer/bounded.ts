/**
 * Preemption-bounded depth-first search (iterative context bounding, as in
 * CHESS): explores every execution with at most `bound` preemptions. A
 * switch forced because the running thread finished or blocked is free.
 * Used to find the counterexample with the fewest context switches.
 */
import { deepestPending, preferred } from './dfs.ts';
import type { ChoiceSource, ExecState } from './execution.ts';

interface BNode {
  enabled: number;
  /** Candidates within the bound. */
  allowed: number;
  done: number;
  chosen: number;
  /** Thread that ran the previous step. */
  last: number;
  /** Preemptions used before this node's choice. */
  used: number;
}

function usedAfter(n: BNode): number {
  const preempts = n.last >= 0 && n.chosen !== n.last && (n.enabled & (1 << n.last)) !== 0;
  return n.used + (preempts ? 1 : 0);
}

export class PreemptionBoundedDfs implements ChoiceSource {
  private readonly nodes: BNode[] = [];
  private branch = 0;
  private resuming = false;

  constructor(private readonly bound: number) {}

  choose(x: ExecState, enabled: number): number {
    const d = x.depth;
    if (d < this.branch) return (this.nodes[d] as BNode).chosen;
    if (this.resuming) {
      this.resuming = false;
      const n = this.nodes[d] as BNode;
      return this.take(n, preferred(n.allowed & ~n.done, x.last));
    }
    const used = d === 0 ? 0 : usedAfter(this.nodes[d - 1] as BNode);
    const lastRunnable = x.last >= 0 && (enabled & (1 << x.last)) !== 0;
    const allowed = lastRunnable && used >= this.bound ? 1 << x.last : enabled;
    const n: BNode = { enabled, allowed, done: 0, chosen: -1, last: x.last, used };
    this.nodes[d] = n;
    this.nodes.length = d + 1;
    return this.take(n, preferred(allowed, x.last));
  }

  private take(n: BNode, c: number): number {
    n.chosen = c;
    n.done |= 1 << c;
    return c;
  }

  /** Prepares the next execution; false when every execution within the bound was run. */
  advance(): boolean {
    const d = deepestPending(this.nodes, (n) => n.allowed & ~n.done);
    if (d < 0) return false;
    this.branch = d;
    this.resuming = true;
    return true;
  }
}
