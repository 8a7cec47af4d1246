/**
 * Dynamic partial-order reduction (Flanagan & Godefroid, POPL 2005) with
 * sleep sets: depth-first and stateless, but instead of trying every runnable
 * thread at every state it only backtracks where the execution it just ran
 * shows a race.
 *
 * For every state reached and every thread p with pending step n, find the
 * last executed step S_i that is dependent with n, may be co-enabled with it,
 * and does not happen before p's current state. Then p (or, if p could not
 * run there, every thread that could) is added to the backtrack set of the
 * state before S_i. Happens-before is tracked with vector clocks built from
 * the declared accesses (program order, plus every pair of steps touching one
 * object where one writes; a global step is ordered with everything).
 *
 * The analysis is incremental: a thread whose pending step did not change
 * only needs checking against the step that was just executed.
 *
 * Combined with sleep sets (a thread explored from a state sleeps in the
 * sibling subtrees while its step stays independent of what runs), this
 * explores at least one execution of every Mazurkiewicz trace.
 */
import { accDependent, MAX_ACCESSES, type Step } from '../kernel/sched.ts';
import { HappensBefore } from './clocks.ts';
import { deepestPending, NondeterminismError, preferred, stillAsleep } from './dfs.ts';
import type { ChoiceSource, ExecState } from './execution.ts';

interface Node {
  enabled: number;
  backtrack: number;
  done: number;
  sleep: number;
  chosen: number;
}

/** One executed step, as the race analysis needs it. */
interface Event {
  tid: number;
  /** 1-based index of this event among its thread's events. */
  seq: number;
  readonly acc: Int32Array;
  nacc: number;
  global: boolean;
  /** For the co-enabledness rule: a lock or unlock, its object and mode. */
  lockObj: number;
  unlock: boolean;
  shared: boolean;
  vc: Int32Array;
}

const EMPTY = new Int32Array(0);

export class DporSource implements ChoiceSource {
  private readonly nodes: Node[] = [];
  private readonly events: Event[] = [];
  private branch = 0;
  private resuming = false;
  private nextSleep = 0;
  private finished = false;
  /** Per execution: vector clock of each thread, of each object's last write and reads since. */
  private readonly hb = new HappensBefore();
  /** Pending step signature per thread at the previous state (to spot what changed). */
  private lastAnalysed: number[] = [];

  get done(): boolean {
    return this.finished;
  }

  private resetClocks(n: number): void {
    this.hb.reset(n);
    this.lastAnalysed = new Array<number>(n).fill(-1);
  }

  choose(x: ExecState, enabled: number): number {
    const d = x.depth;
    const n = x.threads.length;
    if (d === 0) this.resetClocks(n);
    let c: number;
    if (d < this.branch) {
      const node = this.nodes[d] as Node;
      if (node.enabled !== enabled) throw new NondeterminismError(d);
      c = node.chosen;
    } else {
      if (d > this.branch || !this.resuming) this.analyse(x, d);
      if (this.resuming && d === this.branch) {
        this.resuming = false;
        const node = this.nodes[d] as Node;
        if (node.enabled !== enabled) throw new NondeterminismError(d);
        c = preferred(node.backtrack & ~node.done & ~node.sleep, x.last);
        this.take(x, node, c);
      } else {
        const node: Node = { enabled, backtrack: 0, done: 0, sleep: this.nextSleep, chosen: -1 };
        this.nodes[d] = node;
        this.nodes.length = d + 1;
        const cands = enabled & ~node.sleep;
        if (cands === 0) return -1;
        c = preferred(cands, x.last);
        node.backtrack |= 1 << c;
        this.take(x, node, c);
      }
    }
    this.record(x, d, c);
    return c;
  }

  /**
   * Race analysis at the state of depth `d`: for each thread, the last step
   * racing with its pending step gets a backtrack point.
   */
  private analyse(x: ExecState, d: number): void {
    const threads = x.threads;
    const last = d > 0 ? (this.events[d - 1] as Event) : null;
    for (let p = 0; p < threads.length; p++) {
      const t = threads[p] as ExecState['threads'][number];
      if (t.done) continue;
      const s = t.pending;
      if (s.refresh !== null) s.refresh(s);
      // A thread that did not run since the last analysis only races with the new step.
      const full = this.lastAnalysed[p] !== this.hb.seqOf[p] || last === null || s.refresh !== null;
      this.lastAnalysed[p] = this.hb.seqOf[p] as number;
      const vcp = this.hb.clockOf(p);
      const from = d - 1;
      const to = full ? 0 : d - 1;
      for (let i = from; i >= to; i--) {
        const e = this.events[i] as Event;
        if (e.tid === p) continue;
        if ((vcp[e.tid] as number) >= e.seq) continue; // e happens before p
        if (!this.conflicts(e, s, p)) continue;
        const node = this.nodes[i] as Node;
        if (node.enabled & (1 << p)) node.backtrack |= 1 << p;
        else node.backtrack |= node.enabled;
        break;
      }
    }
  }

  /** Dependent, and may be co-enabled. */
  private conflicts(e: Event, s: Step, p: number): boolean {
    if (!(e.global || s.global || accDependent(e.acc, e.nacc, s.acc, s.nacc))) return false;
    // An unlock by another thread and a lock of the same lock that needs it
    // free in a mode the unlocker excluded cannot both be enabled.
    // Only for a plain blocking lock (the lock is its own blocker, no ww context,
    // no deadline): a trylock, a ww_mutex_lock with a context or an
    // interruptible lock can run while the lock is held.
    if (
      e.unlock &&
      s.kind === 'lock' &&
      (s.blocker as unknown) === s.obj &&
      s.arg === null &&
      s.deadline === Number.POSITIVE_INFINITY &&
      s.obj !== null &&
      s.obj.id === e.lockObj &&
      e.tid !== p
    ) {
      if (!e.shared || s.mode === 0) return false;
    }
    return true;
  }

  private take(x: ExecState, node: Node, c: number): void {
    node.chosen = c;
    this.nextSleep = stillAsleep(x.threads, node.sleep | node.done, c);
    node.done |= 1 << c;
  }

  /** Records the step about to run as event `d`, with its vector clock. */
  private record(x: ExecState, d: number, c: number): void {
    const s = (x.threads[c] as ExecState['threads'][number]).pending;
    if (s.refresh !== null) s.refresh(s);
    let e = this.events[d];
    if (!e) {
      e = {
        tid: 0,
        seq: 0,
        acc: new Int32Array(MAX_ACCESSES),
        nacc: 0,
        global: false,
        lockObj: -1,
        unlock: false,
        shared: false,
        vc: EMPTY,
      };
      this.events[d] = e;
    }
    e.tid = c;
    e.nacc = s.nacc;
    e.acc.set(s.acc.subarray(0, s.nacc));
    e.global = s.global;
    e.lockObj = (s.kind === 'lock' || s.kind === 'unlock') && s.obj ? s.obj.id : -1;
    e.unlock = s.kind === 'unlock';
    e.shared = s.mode === 1;
    e.vc = new Int32Array(this.hb.threads);
    e.seq = this.hb.step(c, e.acc, e.nacc, e.global, e.vc);
  }

  /** Prepares the next execution; false when every backtrack point has been explored. */
  advance(): boolean {
    const d = deepestPending(this.nodes, (n) => n.backtrack & ~n.done & ~n.sleep);
    if (d < 0) {
      this.finished = true;
      return false;
    }
    this.branch = d;
    this.resuming = true;
    return true;
  }
}
