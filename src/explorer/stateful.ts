/**
 * State-caching depth-first search with sleep sets (Godefroid, 1996, ch. 6),
 * and symmetry reduction (explorer/symmetry.ts): strategy `state`.
 *
 * Still stateless in the way it runs — every execution re-runs the program
 * from the start, replaying a prefix of choices — but each node's state is
 * named by a 64-bit fingerprint of the prefix's Mazurkiewicz trace (renamed
 * canonically when threads are interchangeable), and a table of visited
 * fingerprints stops an execution that reaches a state already explored. The
 * table keeps, for each state, the sleep set it was explored with; a state
 * reached again with a smaller one is explored again, but only along the
 * threads that slept there before and do not now, and the stored set becomes
 * the intersection (Godefroid's rule for combining state caching with sleep
 * sets: sleep sets alone do not say a state is covered). Sleep sets are kept
 * in canonical thread indices, so a symmetric state's sleep set is compared
 * after renaming.
 *
 * What it buys: interchangeable threads (N vCPUs) reach N! renamings of one
 * state, explored once; and prefixes that reach one state in different orders
 * of dependent steps that commute in effect merge. What it costs: a table
 * entry per state, and executions stopped at a visited state (counted as
 * executions: each ran from the start).
 */
import type { Step } from '../kernel/sched.ts';
import { HappensBefore } from './clocks.ts';
import { NondeterminismError, preferred, stillAsleep } from './dfs.ts';
import type { ChoiceSource, ExecState } from './execution.ts';
import { Canonicaliser, PrefixEvents } from './symmetry.ts';

interface SNode {
  enabled: number;
  /** Threads asleep here (actual indices), explored branches included. */
  sleep: number;
  /** Branches still to explore here (actual indices). */
  todo: number;
  chosen: number;
}

/**
 * Open-addressing table of 64-bit fingerprints (two unsigned 32-bit lanes,
 * never both zero) with a 32-bit value each: here, the state's sleep set in canonical
 * thread indices.
 */
export class FingerprintTable {
  private lo: Uint32Array;
  private hi: Uint32Array;
  private val: Int32Array;
  private mask: number;
  size = 0;

  constructor(capacityLog2 = 12) {
    const cap = 1 << capacityLog2;
    this.lo = new Uint32Array(cap);
    this.hi = new Uint32Array(cap);
    this.val = new Int32Array(cap);
    this.mask = cap - 1;
  }

  /** The slot of (a, b): where it is, or the empty slot where it would go. */
  private slot(a: number, b: number): number {
    let i = (a ^ Math.imul(b, 0x9e3779b1)) & this.mask;
    for (;;) {
      const x = this.lo[i] as number;
      const y = this.hi[i] as number;
      if ((x === a && y === b) || (x === 0 && y === 0)) return i;
      i = (i + 1) & this.mask;
    }
  }

  /** The value stored for (a, b), or undefined. */
  get(a: number, b: number): number | undefined {
    const i = this.slot(a, b);
    return this.lo[i] === 0 && this.hi[i] === 0 ? undefined : (this.val[i] as number);
  }

  set(a: number, b: number, v: number): void {
    let i = this.slot(a, b);
    if (this.lo[i] === 0 && this.hi[i] === 0) {
      if ((this.size + 1) * 2 > this.mask + 1) {
        this.grow();
        i = this.slot(a, b);
      }
      this.lo[i] = a;
      this.hi[i] = b;
      this.size++;
    }
    this.val[i] = v;
  }

  private grow(): void {
    const { lo, hi, val } = this;
    const cap = (this.mask + 1) * 2;
    this.lo = new Uint32Array(cap);
    this.hi = new Uint32Array(cap);
    this.val = new Int32Array(cap);
    this.mask = cap - 1;
    for (let i = 0; i < lo.length; i++) {
      const a = lo[i] as number;
      const b = hi[i] as number;
      if (a === 0 && b === 0) continue;
      const j = this.slot(a, b);
      this.lo[j] = a;
      this.hi[j] = b;
      this.val[j] = val[i] as number;
    }
  }
}

export interface StateCachingOptions {
  /** Interchangeable threads (explorer/symmetry.ts); none: no symmetry reduction. */
  readonly groups?: readonly (readonly number[])[];
}

export class StateCachingDfs implements ChoiceSource {
  private readonly nodes: SNode[] = [];
  private branch = 0;
  private resuming = false;
  private finished = false;
  private nextSleep = 0;
  private readonly hb = new HappensBefore();
  private readonly events = new PrefixEvents();
  private readonly clocks: Int32Array[] = [];
  private canon: Canonicaliser | null = null;
  private readonly fp = new Uint32Array(2);
  readonly visited = new FingerprintTable();
  /** Executions stopped at a state already explored (with a sleep set that covers this one). */
  revisits = 0;

  constructor(private readonly opts: StateCachingOptions = {}) {}

  get done(): boolean {
    return this.finished;
  }

  /** States stored. */
  get states(): number {
    return this.visited.size;
  }

  choose(x: ExecState, enabled: number): number {
    const d = x.depth;
    if (d === 0) {
      this.hb.reset(x.threads.length);
      this.canon ??= new Canonicaliser(x.threads.length, this.opts.groups ?? []);
    }
    let c: number;
    if (d < this.branch) {
      const node = this.nodes[d] as SNode;
      if (node.enabled !== enabled) throw new NondeterminismError(d);
      c = node.chosen;
    } else if (this.resuming && d === this.branch) {
      this.resuming = false;
      const node = this.nodes[d] as SNode;
      if (node.enabled !== enabled) throw new NondeterminismError(d);
      c = preferred(node.todo, x.last);
      this.take(x, node, c);
    } else {
      const node = this.enter(x, d, enabled);
      if (node === null) return -1;
      c = preferred(node.todo, x.last);
      this.take(x, node, c);
    }
    this.record(x, d, c);
    return c;
  }

  /**
   * A node reached for the first time on this path: look its state up. Null
   * when nothing is left to explore from it (the execution stops).
   */
  private enter(x: ExecState, d: number, enabled: number): SNode | null {
    const canon = this.canon as Canonicaliser;
    const kernel = (x.threads[0] as ExecState['threads'][number]).k;
    canon.fingerprint(this.events, d, kernel.jiffies, this.fp);
    const a = this.fp[0] as number;
    const b = this.fp[1] as number;
    let sleep = this.nextSleep;
    // The whole sleep set: a sleeping thread stays runnable while it sleeps
    // (what could block it would be dependent), but nothing here relies on it.
    const now = canon.toCanonical(sleep);
    const stored = this.visited.get(a, b);
    let todo: number;
    if (stored === undefined) {
      this.visited.set(a, b, now);
      todo = enabled & ~sleep;
    } else {
      // Explored before with sleep set `stored`: only what slept then and not now is new.
      const fresh = stored & ~now;
      if (fresh === 0) {
        this.revisits++;
        this.nodes.length = d;
        return null;
      }
      this.visited.set(a, b, stored & now);
      const again = canon.fromCanonical(fresh);
      if ((again & ~enabled) !== 0) {
        // Not expected (see above); explore everything not asleep rather than guess.
        todo = enabled & ~sleep;
      } else {
        todo = again;
        // The rest was explored from this state before: it sleeps for the children too.
        sleep |= enabled & ~todo;
      }
    }
    if (todo === 0) {
      this.nodes.length = d;
      return null;
    }
    const node: SNode = { enabled, sleep, todo, chosen: -1 };
    this.nodes[d] = node;
    this.nodes.length = d + 1;
    return node;
  }

  private take(x: ExecState, node: SNode, c: number): void {
    node.chosen = c;
    this.nextSleep = stillAsleep(x.threads, node.sleep, c);
    node.sleep |= 1 << c;
    node.todo &= ~(1 << c);
  }

  /** Records the step about to run as event d of the prefix (its vector clock). */
  private record(x: ExecState, d: number, c: number): void {
    const s: Step = (x.threads[c] as ExecState['threads'][number]).pending;
    if (s.refresh !== null) s.refresh(s);
    let vc = this.clocks[d];
    if (!vc || vc.length !== this.hb.threads) {
      vc = new Int32Array(this.hb.threads);
      this.clocks[d] = vc;
    }
    // The live declaration: step() reads it and keeps nothing of it.
    const seq = this.hb.step(c, s.acc, s.nacc, s.global, vc);
    this.events.set(d, c, seq, vc);
  }

  /** Prepares the next execution; false when every node has been explored. */
  advance(): boolean {
    for (let d = this.nodes.length - 1; d >= 0; d--) {
      const node = this.nodes[d] as SNode;
      if (node.todo !== 0) {
        this.nodes.length = d + 1;
        this.branch = d;
        this.resuming = true;
        return true;
      }
    }
    this.nodes.length = 0;
    this.finished = true;
    return false;
  }
}
