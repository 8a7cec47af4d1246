/**
 * Happens-before of one execution, by vector clocks over the declared
 * accesses: program order, plus every pair of steps that touch one object
 * where one writes (reads of one object commute), plus a global step ordered
 * with everything. The race analyses (optimal.ts, dpor.ts) and the brute-force
 * trace fingerprints (mazurkiewicz.ts) all use it, so they agree on what
 * happens before what.
 */

/** `into` := pointwise max(`into`, `from`). */
export function join(into: Int32Array, from: Int32Array | undefined): void {
  if (!from) return;
  for (let i = 0; i < into.length; i++) if ((from[i] as number) > (into[i] as number)) into[i] = from[i] as number;
}

export class HappensBefore {
  /** Each thread's clock: that of its last step. */
  private threadVc: Int32Array[] = [];
  /** Steps each thread has taken in this execution. */
  seqOf: number[] = [];
  /** By object id: the clock of the last write, and the join of the reads since (ids are small). */
  private readonly writeVc: (Int32Array | undefined)[] = [];
  private readonly readVc: (Int32Array | undefined)[] = [];
  private readonly touched: number[] = [];
  private allVc: Int32Array = new Int32Array(0);
  private globalVc: Int32Array = new Int32Array(0);

  /** A new execution of `n` threads. */
  reset(n: number): void {
    this.threadVc = Array.from({ length: n }, () => new Int32Array(n));
    this.seqOf = new Array<number>(n).fill(0);
    for (const o of this.touched) {
      this.writeVc[o] = undefined;
      this.readVc[o] = undefined;
    }
    this.touched.length = 0;
    this.allVc = new Int32Array(n);
    this.globalVc = new Int32Array(n);
  }

  /** Threads of this execution. */
  get threads(): number {
    return this.seqOf.length;
  }

  /** The clock of thread `tid`'s last step (all zero before its first). */
  clockOf(tid: number): Int32Array {
    return this.threadVc[tid] as Int32Array;
  }

  /**
   * Thread `tid` takes a step with these accesses (packed `id * 2 + write`):
   * writes its clock into `vc` (of length `threads`, kept by the caller and
   * not changed afterwards) and returns the step's 1-based index in its thread.
   */
  step(tid: number, acc: Int32Array, nacc: number, global: boolean, vc: Int32Array): number {
    const seq = ++(this.seqOf[tid] as number);
    vc.set(this.threadVc[tid] as Int32Array);
    join(vc, this.globalVc);
    if (global) join(vc, this.allVc);
    for (let i = 0; i < nacc; i++) {
      const a = acc[i] as number;
      join(vc, this.writeVc[a >> 1]);
      if (a & 1) join(vc, this.readVc[a >> 1]);
    }
    vc[tid] = seq;
    for (let i = 0; i < nacc; i++) {
      const a = acc[i] as number;
      const obj = a >> 1;
      if (this.writeVc[obj] === undefined && this.readVc[obj] === undefined) this.touched.push(obj);
      if (a & 1) {
        this.writeVc[obj] = vc;
        this.readVc[obj] = undefined;
      } else {
        const r = this.readVc[obj];
        if (r) {
          const m = new Int32Array(r);
          join(m, vc);
          this.readVc[obj] = m;
        } else {
          this.readVc[obj] = vc;
        }
      }
    }
    join(this.allVc, vc);
    if (global) this.globalVc = vc;
    this.threadVc[tid] = vc;
    return seq;
  }
}
