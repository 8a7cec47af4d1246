/**
 * Optimal dynamic partial-order reduction with wakeup trees (Abdulla, Aronis,
 * Jonsson and Sagonas, POPL 2014; JACM 2017): explores exactly one execution
 * per Mazurkiewicz trace, and never an execution whose runnable threads are
 * all asleep.
 *
 * Stateless and depth-first, like the other sources: each execution re-runs
 * the program from the start, replaying a prefix of choices. Each node of the
 * current path keeps
 * - its sleep set: threads whose continuation from here is already covered
 *   (explored branches, and those inherited from the parent while their pending
 *   step stays independent of what ran);
 * - its wakeup tree: ordered sequences of steps still to explore from here;
 *   the first branch is the one being explored.
 *
 * After each execution E, every race e ⋖ e′ (e and e′ of different threads,
 * dependent, e happens before e′ with nothing in between) that can be
 * reversed gives the sequence v = notdep(e, E)·e′ — the steps after e that do
 * not happen after e, then e′ — to explore from the state before e, unless a
 * thread asleep there is a weak initial of v (v would then be equivalent to an
 * explored continuation); it is inserted into that node's wakeup tree unless
 * an existing branch already starts it up to reordering of independent steps.
 *
 * Blocking steps (a lock, a fence wait) are not always enabled, which the
 * original algorithm assumes. A race is reversed only when e′ is enabled
 * after notdep(e, E): the state of the object e′ blocks on is then the state
 * it had at some node of E, and the explorer saw there whether e′ could run.
 * In particular an unlock and the lock it lets through are not reversible; the
 * lock races with the previous acquisition instead (as in Nidhugg). When that
 * cannot be decided (the pending step of e′'s thread was never observed in
 * that state), the race is reversed; if the branch then turns out to be
 * blocked, it is dropped and every runnable thread not asleep there becomes a
 * branch (classic DPOR's fallback, sound but not optimal), counted in
 * `fallbacks`. Timed waits are decided that way too (time passes only when
 * every thread is blocked, which no single object records).
 *
 * Declarations that depend on state. A step's declared accesses can change
 * with the order of other steps (`Step.refresh`: a fence step is global while
 * it would call a driver op or run queued callbacks). The theory assumes a
 * fixed dependence, so two of its shortcuts are guarded: a sleeping thread's
 * step is taken as declared at the node it sleeps at (not as it ran later),
 * and a thread is not trusted to cover a sequence it merely commutes with (a
 * weak initial outside v) when that step, a step of v or another thread's
 * pending step at the node depends on state. Both only ever explore more;
 * the brute-force comparison (test/explorer/mazurkiewicz.test.ts) shows no
 * trace missed and few redundant executions where such steps occur.
 */
import { DmaFence } from '../kernel/dma-fence.ts';
import { Lock } from '../kernel/locking.ts';
import { accDependent, MAX_ACCESSES, runnable, type Step, type Task } from '../kernel/sched.ts';
import { HappensBefore, join } from './clocks.ts';
import { NondeterminismError, preferred, stillAsleep } from './dfs.ts';
import type { ChoiceSource, ExecState } from './execution.ts';
import type { WorkUnit } from './units.ts';

/** A step as the race analysis and the wakeup trees need it. */
interface Ev {
  tid: number;
  /** 1-based index among the thread's steps in this execution. */
  seq: number;
  readonly acc: Int32Array;
  nacc: number;
  global: boolean;
  /** Object whose state decides whether the step can run (-1: none or unknown). */
  blockObj: number;
  /** The step can block (a blocker) or time out. */
  blocking: boolean;
  /** Its declaration depends on state (`Step.refresh`): it may be global in another order. */
  stateDep: boolean;
  timed: boolean;
  /** A lock operation: the lock's id (else -1), acquire or release, shared or exclusive. */
  lockObj: number;
  acquire: boolean;
  shared: boolean;
  /** A plain blocking acquisition: runnable exactly when the lock is free in its mode. */
  plainLock: boolean;
  /** Signals this fence (else -1). */
  signals: number;
  /** An uninterruptible wait for a fence: runnable exactly once the fence is signalled. */
  fenceWait: boolean;
}

/** An executed step: an Ev with its vector clock and its thread's previous step. */
interface Event extends Ev {
  vc: Int32Array;
  /** Index of the same thread's previous step in the execution, or -1. */
  prev: number;
}

interface WNode {
  readonly tid: number;
  readonly ev: Ev;
  children: WNode[];
}

interface ONode {
  enabled: number;
  /** Threads asleep here: inherited, plus every branch already explored. */
  sleep: number;
  /** Branches left, the first being explored. */
  wut: WNode[];
  chosen: number;
}

const EMPTY = new Int32Array(0);

function newEv(): Ev {
  return {
    tid: 0,
    seq: 0,
    acc: new Int32Array(MAX_ACCESSES),
    nacc: 0,
    global: false,
    blockObj: -1,
    blocking: false,
    stateDep: false,
    timed: false,
    lockObj: -1,
    acquire: false,
    shared: false,
    plainLock: false,
    signals: -1,
    fenceWait: false,
  };
}

function fill(e: Ev, tid: number, s: Step): void {
  if (s.refresh !== null) s.refresh(s);
  e.tid = tid;
  const n = s.nacc;
  e.nacc = n;
  for (let i = 0; i < n; i++) e.acc[i] = s.acc[i] as number;
  e.global = s.global;
  e.stateDep = s.refresh !== null;
  e.timed = s.deadline !== Number.POSITIVE_INFINITY;
  e.blocking = s.blocker !== null || e.timed;
  const b = s.blocker as { id?: unknown } | null;
  e.blockObj = b !== null && typeof b.id === 'number' ? b.id : s.blocker !== null && s.obj ? s.obj.id : -1;
  const isLock = (s.kind === 'lock' || s.kind === 'unlock') && s.obj instanceof Lock;
  e.lockObj = isLock && s.obj ? s.obj.id : -1;
  e.acquire = s.kind === 'lock';
  e.shared = s.mode === 1;
  e.plainLock = isLock && s.kind === 'lock' && (s.blocker as unknown) === s.obj && s.arg === null && !e.timed;
  e.signals = s.kind === 'signal' && s.obj ? s.obj.id : -1;
  e.fenceWait = s.blocker instanceof DmaFence && s.arg === null && !e.timed;
}

function copyEv(e: Ev): Ev {
  const c = newEv();
  c.tid = e.tid;
  c.seq = e.seq;
  c.nacc = e.nacc;
  for (let i = 0; i < e.nacc; i++) c.acc[i] = e.acc[i] as number;
  c.global = e.global;
  c.blockObj = e.blockObj;
  c.blocking = e.blocking;
  c.stateDep = e.stateDep;
  c.timed = e.timed;
  c.lockObj = e.lockObj;
  c.acquire = e.acquire;
  c.shared = e.shared;
  c.plainLock = e.plainLock;
  c.signals = e.signals;
  c.fenceWait = e.fenceWait;
  return c;
}

function dep(a: Ev, b: Ev): boolean {
  return a.global || b.global || accDependent(a.acc, a.nacc, b.acc, b.nacc);
}

function touches(e: Ev, obj: number): boolean {
  if (e.global) return true;
  for (let i = 0; i < e.nacc; i++) if ((e.acc[i] as number) >> 1 === obj) return true;
  return false;
}

/**
 * Whether thread `r`, whose next step is `next`, is a weak initial of `v`:
 * its first step in v has no step of v before it that it depends on, or it
 * has none in v and its next step is independent of every step of v.
 */
function weakInitial(r: number, next: Ev, v: readonly Ev[], others: readonly Ev[] | null): boolean {
  for (let k = 0; k < v.length; k++) {
    const e = v[k] as Ev;
    if (e.tid !== r) continue;
    for (let m = 0; m < k; m++) if (dep(v[m] as Ev, e)) return false;
    return true;
  }
  // r's step commutes with v, so running r first covers v — provided no step
  // involved can change its declaration with the order (a step whose
  // declaration depends on state may be global after r and not before): then
  // r is not taken as a weak initial, and v gets explored in its own right.
  if (next.stateDep) return false;
  for (const e of v) if (e.stateDep || dep(next, e)) return false;
  if (others === null) return false;
  for (const o of others) if (o.tid >= 0 && o.tid !== r && o.stateDep) return false;
  return true;
}

/** Placeholder event of a branch created as the one being explored. */
const NO_EV: Ev = newEv();

function chain(v: readonly Ev[]): WNode {
  let node: WNode | null = null;
  for (let k = v.length - 1; k >= 0; k--) {
    const e = v[k] as Ev;
    node = { tid: e.tid, ev: e, children: node ? [node] : [] };
  }
  return node as WNode;
}

export class OptimalDporSource implements ChoiceSource {
  private readonly nodes: ONode[] = [];
  private readonly events: Event[] = [];
  private enabledAt: number[] = [];
  private branch = 0;
  private resuming = false;
  private finished = false;
  /** For the node about to be created: its inherited sleep set and wakeup tree. */
  private nextSleep = 0;
  private nextWut: WNode[] = [];
  /** Events from this depth on are new in this execution (the race analysis starts there). */
  private analyseFrom = 0;
  private depth = 0;
  /** Per execution: happens-before, and each thread's last event. */
  private readonly hb = new HappensBefore();
  private lastOf: number[] = [];
  /** Each thread's pending step as last seen (for threads that do not run again). */
  private pendingEv: Ev[] = [];
  /**
   * Each thread's pending step as declared at each node of the current path.
   * A step's declaration can depend on state (a fence step is global while it
   * would call a driver op), so a sleeping thread's step is the one of the
   * node it sleeps at, not the one it ran later.
   */
  private pendingAt: Ev[][] = [];
  /** Scratch: every thread's step at the node a race is reversed at. */
  private readonly tops: Ev[] = [];
  /** Wakeup branches found blocked when their turn came (see the module comment). */
  fallbacks = 0;
  /**
   * Some executed step was a timed wait. Its timeout depends on every other
   * thread being blocked, which no race records, so exploring from a work
   * unit's root alone may miss traces the whole search reaches (units.ts).
   */
  sawTimed = false;
  /**
   * Some executed or pending step had a declaration that depends on state
   * (`Step.refresh`). Sleep sets inherited at a work unit's root do not apply
   * the guards this search applies to such steps, and units were measured to
   * miss traces then (units.ts): the split is not trusted.
   */
  sawStateDep = false;

  /** A work unit's root (explorer/units.ts): its prefix is replayed, nothing above it is explored. */
  private readonly rootDepth: number;
  private readonly prefix: readonly number[];

  constructor(unit?: WorkUnit) {
    this.prefix = unit?.prefix ?? [];
    this.rootDepth = this.prefix.length;
    this.nextSleep = unit?.sleep ?? 0;
  }

  get done(): boolean {
    return this.finished;
  }

  private reset(x: ExecState): void {
    const n = x.threads.length;
    this.hb.reset(n);
    this.lastOf = new Array<number>(n).fill(-1);
    while (this.pendingEv.length < n) this.pendingEv.push(newEv());
  }

  private snapshot(x: ExecState, t: number): void {
    const th = x.threads[t] as ExecState['threads'][number];
    if (th.done) return;
    fill(this.pendingEv[t] as Ev, t, th.pending);
  }

  choose(x: ExecState, enabled: number): number {
    const d = x.depth;
    if (d === 0) this.reset(x);
    this.enabledAt[d] = enabled;
    if (d < this.rootDepth) {
      const c = this.prefix[d] as number;
      if (!(enabled & (1 << c))) throw new NondeterminismError(d);
      this.record(x, d, c);
      this.depth = d + 1;
      return c;
    }
    let c: number;
    if (d < this.branch) {
      const node = this.nodes[d] as ONode;
      if (node.enabled !== enabled) throw new NondeterminismError(d);
      c = node.chosen;
    } else if (this.resuming && d === this.branch) {
      this.resuming = false;
      const node = this.nodes[d] as ONode;
      if (node.enabled !== enabled) throw new NondeterminismError(d);
      c = this.pick(x, node);
      if (c < 0) return this.abandon(d);
      this.take(x, node, c);
    } else {
      const node: ONode = { enabled, sleep: this.nextSleep, wut: this.nextWut, chosen: -1 };
      this.nextWut = [];
      this.snapshotNode(x, d);
      this.nodes[d] = node;
      this.nodes.length = d + 1;
      if (node.wut.length > 0) {
        c = this.pick(x, node);
      } else {
        const cands = enabled & ~node.sleep;
        c = cands === 0 ? -1 : preferred(cands, x.last);
        // The branch being explored: its event is never compared (insert skips it).
        if (c >= 0) node.wut.push({ tid: c, ev: NO_EV, children: [] });
      }
      if (c < 0) {
        this.nodes.length = d;
        return this.abandon(d);
      }
      this.take(x, node, c);
    }
    this.record(x, d, c);
    this.depth = d + 1;
    return c;
  }

  /** Records every thread's pending step at node d. */
  private snapshotNode(x: ExecState, d: number): void {
    let at = this.pendingAt[d];
    if (!at) {
      at = [];
      this.pendingAt[d] = at;
    }
    for (let t = 0; t < x.threads.length; t++) {
      const th = x.threads[t] as ExecState['threads'][number];
      let e = at[t];
      if (!e) {
        e = newEv();
        at[t] = e;
      }
      // Only a declaration that can change without its thread running needs
      // a copy; any other is the thread's next event in E (nextEvent).
      if (th.done) e.tid = -1;
      else if (th.pending.refresh !== null) fill(e, t, th.pending);
      else e.tid = -2;
    }
  }

  private abandon(d: number): number {
    this.depth = d;
    return -1;
  }

  /**
   * The next branch of the node's wakeup tree that can run. A blocked one is
   * dropped, and every runnable thread not asleep becomes a branch instead.
   */
  private pick(x: ExecState, node: ONode): number {
    while (node.wut.length > 0) {
      const b = node.wut[0] as WNode;
      if (node.enabled & (1 << b.tid) && !(node.sleep & (1 << b.tid))) return b.tid;
      node.wut.shift();
      if (node.sleep & (1 << b.tid)) continue;
      this.fallbacks++;
      let cands = node.enabled & ~node.sleep;
      for (const w of node.wut) cands &= ~(1 << w.tid);
      while (cands) {
        const r = 31 - Math.clz32(cands & -cands);
        cands &= cands - 1;
        this.snapshot(x, r);
        node.wut.push({ tid: r, ev: copyEv(this.pendingEv[r] as Ev), children: [] });
      }
    }
    return -1;
  }

  /** Runs branch `c` of `node`: the child inherits the sleepers independent of c, and c's subtree. */
  private take(x: ExecState, node: ONode, c: number): void {
    node.chosen = c;
    this.nextSleep = stillAsleep(x.threads, node.sleep, c);
    const b = node.wut[0] as WNode;
    this.nextWut = b.children;
    b.children = [];
  }

  /** Records the step about to run as event `d`, with its vector clock (program order and dependence). */
  private record(x: ExecState, d: number, c: number): void {
    let e = this.events[d];
    if (!e) {
      e = { ...newEv(), vc: EMPTY, prev: -1 };
      this.events[d] = e;
    }
    fill(e, c, (x.threads[c] as ExecState['threads'][number]).pending);
    e.prev = this.lastOf[c] as number;
    this.lastOf[c] = d;
    // The event slot's clock is reused from execution to execution (it is
    // written once per execution, before anything refers to it).
    if (e.vc.length !== this.hb.threads) e.vc = new Int32Array(this.hb.threads);
    e.seq = this.hb.step(c, e.acc, e.nacc, e.global, e.vc);
    if (e.timed) this.sawTimed = true;
    if (e.stateDep) this.sawStateDep = true;
  }

  /** The end of the interleaved part of an execution: find its races. */
  finish(x: ExecState): void {
    // Every thread blocked from the start: no choice was asked for.
    if (x.depth === 0) this.reset(x);
    this.depth = x.depth;
    for (let t = 0; t < x.threads.length; t++) this.snapshot(x, t);
    const n = this.depth;
    const nt = x.threads.length;
    const covered = new Int32Array(nt);
    for (let j = this.analyseFrom; j < n; j++) this.racesWith(j, covered, n);
    // A thread that did not finish (blocked in a deadlock, or cut off) races
    // with its pending step: a lock it waits for, taken first by another thread.
    const ts = x.threads;
    let runnableNow = 0;
    for (let q = 0; q < nt; q++) if (!(ts[q] as Task).done && runnable(ts[q] as Task)) runnableNow |= 1 << q;
    this.enabledAt[n] = runnableNow;
    for (let q = 0; q < nt; q++) {
      const tq = ts[q] as Task;
      if (tq.done) continue;
      let p = this.events[n];
      if (!p) {
        p = { ...newEv(), vc: EMPTY, prev: -1 };
        this.events[n] = p;
      }
      fill(p, q, tq.pending);
      p.seq = (this.hb.seqOf[q] as number) + 1;
      p.prev = this.lastOf[q] as number;
      if (p.timed) this.sawTimed = true;
      if (p.stateDep) this.sawStateDep = true;
      this.racesWith(n, covered, n);
    }
  }

  /**
   * The races of event j (for j = n, a blocked thread's pending step): walking
   * back, the dependent steps of other threads that do not happen before it
   * through anything else (`covered` gathers what does), each reversed when
   * it can be.
   */
  private racesWith(j: number, covered: Int32Array, n: number): void {
    const e2 = this.events[j] as Event;
    const q = e2.tid;
    covered.fill(0);
    if (e2.prev >= 0) join(covered, (this.events[e2.prev] as Event).vc);
    // Above a work unit's root nothing is reversed: its top levels branched on every thread.
    for (let i = j - 1; i >= this.rootDepth; i--) {
      const e = this.events[i] as Event;
      if (e.tid === q) continue;
      if ((covered[e.tid] as number) >= e.seq) continue;
      if (!dep(e, e2)) continue;
      if (!this.reversible(i, j)) continue;
      this.reverse(i, j, n);
      join(covered, e.vc);
    }
  }

  /** e happens before f in this execution. */
  private static hb(e: Event, f: Event): boolean {
    return (f.vc[e.tid] as number) >= e.seq;
  }

  /**
   * Whether e′ (event j) can run after notdep(e, E) (e is event i). Only a
   * blocking step can fail to. Its object's accesses that stay in that
   * sequence are those of E not after e; if they are the first ones of E,
   * the object is as E left it at some node, and whether e′'s thread could
   * run there (with e′ pending) was observed. Otherwise: reversible (see the
   * module comment for the fallback).
   */
  private reversible(i: number, j: number): boolean {
    const e2 = this.events[j] as Event;
    if (!e2.blocking || e2.timed || e2.blockObj < 0) return true;
    const e = this.events[i] as Event;
    const b = e2.blockObj;
    let lastKept = -1;
    let firstDropped = j;
    let prefix = true;
    // A plain lock: its state after the kept operations on it decides.
    let owner = -1;
    let readers = 0;
    // A fence: signalled once, for good; waiting needs the first signal.
    let firstSignalKept: boolean | null = null;
    for (let k = 0; k < j; k++) {
      const ev = this.events[k] as Event;
      if (!touches(ev, b)) continue;
      const dropped = k === i || OptimalDporSource.hb(e, ev);
      if (ev.signals === b && firstSignalKept === null) firstSignalKept = !dropped;
      if (dropped) {
        if (firstDropped === j) firstDropped = k;
        continue;
      }
      if (firstDropped < k) prefix = false;
      lastKept = k;
      if (ev.lockObj === b) {
        if (ev.acquire) {
          if (ev.shared) readers++;
          else owner = ev.tid;
        } else if (ev.shared) {
          readers--;
        } else {
          owner = -1;
        }
      }
    }
    if (e2.plainLock) return owner < 0 && (e2.shared || readers <= 0);
    if (e2.lockObj === b && e2.acquire) {
      // Other acquisitions (a ww_mutex with a context, interruptible): free, or
      // ours, is runnable; held by another thread, ask E with the same holder.
      if ((owner < 0 && readers <= 0) || owner === e2.tid) return true;
      return this.observedWithOwner(b, owner, e2, j);
    }
    // No signal in the interleaving: the fence was signalled before it if e′
    // ran in E, never if e′ is a step still blocked at the end (j = depth).
    if (e2.fenceWait) return j < this.depth ? firstSignalKept !== false : firstSignalKept === true;
    if (!prefix) return true;
    // The object's state holds at nodes lastKept+1 … firstDropped; e′ is pending after its thread's previous step.
    const lo = Math.max(lastKept, e2.prev) + 1;
    const hi = Math.min(firstDropped, j);
    if (lo > hi) return true;
    return ((this.enabledAt[lo] as number) & (1 << e2.tid)) !== 0;
  }

  /**
   * Whether E shows e′ runnable at a node where its thread had it pending and
   * `owner` held lock `b` (undecided: true).
   */
  private observedWithOwner(b: number, owner: number, e2: Event, j: number): boolean {
    let held = -1;
    for (let k = 0; k <= j; k++) {
      if (k > e2.prev && held === owner) return ((this.enabledAt[k] as number) & (1 << e2.tid)) !== 0;
      if (k === j) break;
      const ev = this.events[k] as Event;
      if (ev.lockObj === b && !ev.shared) held = ev.acquire ? ev.tid : -1;
    }
    return true;
  }

  /** Schedules v = notdep(e, E)·e′ from the node before e. */
  private reverse(i: number, j: number, n: number): void {
    const e = this.events[i] as Event;
    const v: Ev[] = [];
    for (let k = i + 1; k < j; k++) {
      const ev = this.events[k] as Event;
      if (!OptimalDporSource.hb(e, ev)) v.push(copyEv(ev));
    }
    v.push(copyEv(this.events[j] as Event));
    const node = this.nodes[i] as ONode;
    const at = this.tops;
    const nt = (this.pendingAt[i] as Ev[]).length;
    at.length = nt;
    for (let r = 0; r < nt; r++) at[r] = this.nextEvent(r, i, n);
    // A sleeping thread that is a weak initial of v: v is equivalent to an explored continuation.
    let sl = node.sleep;
    while (sl) {
      const r = 31 - Math.clz32(sl & -sl);
      sl &= sl - 1;
      if (weakInitial(r, at[r] as Ev, v, at)) return;
    }
    OptimalDporSource.insert(node.wut, v, at);
  }

  /** Thread r's next step at node i of this execution. */
  private nextEvent(r: number, i: number, n: number): Ev {
    const at = (this.pendingAt[i] as Ev[])[r] as Ev;
    if (at.tid !== -2) return at;
    for (let k = i; k < n; k++) if ((this.events[k] as Event).tid === r) return this.events[k] as Event;
    return this.pendingEv[r] as Ev;
  }

  /**
   * Inserts v into a wakeup tree: follows the leftmost branch whose thread is
   * a weak initial of what is left of v; a leaf reached that way already
   * covers v; else the rest of v becomes a new rightmost branch. The first
   * branch of the top level is the one being explored, which v never starts
   * (its step is e, which v leaves out and e′ depends on).
   */
  private static insert(top: WNode[], v: Ev[], atTop: readonly Ev[]): void {
    let level = top;
    let rest = v;
    let first = 1;
    for (;;) {
      let match: WNode | null = null;
      for (let k = first; k < level.length; k++) {
        const w = level[k] as WNode;
        // At the top, the branch's step as declared at this node.
        const ev = first === 1 ? ((atTop[w.tid] as Ev | undefined) ?? w.ev) : w.ev;
        if (weakInitial(w.tid, ev, rest, first === 1 ? atTop : null)) {
          match = w;
          break;
        }
      }
      if (!match) {
        level.push(chain(rest));
        return;
      }
      if (match.children.length === 0) return;
      const at = rest.findIndex((ev) => ev.tid === (match as WNode).tid);
      if (at >= 0) rest = [...rest.slice(0, at), ...rest.slice(at + 1)];
      if (rest.length === 0) return;
      level = match.children;
      first = 0;
    }
  }

  /** Prepares the next execution; false when every wakeup tree is empty. */
  advance(): boolean {
    for (let d = this.nodes.length - 1; d >= this.rootDepth; d--) {
      const node = this.nodes[d] as ONode;
      node.sleep |= 1 << node.chosen;
      node.wut.shift();
      if (node.wut.length > 0) {
        this.nodes.length = d + 1;
        this.branch = d;
        this.analyseFrom = d;
        this.resuming = true;
        return true;
      }
    }
    this.nodes.length = 0;
    this.finished = true;
    return false;
  }
}
