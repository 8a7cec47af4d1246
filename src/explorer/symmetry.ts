/**
 * Symmetry: threads that run the same op list on the same objects (N vCPUs of
 * one VM, N identical importers of one buffer) are interchangeable. A state
 * reached with vCPU 1 ahead of vCPU 2 behaves, up to renaming the two, like
 * the one with vCPU 2 ahead; the state-caching search (explorer/stateful.ts)
 * stores one of them and prunes the other.
 *
 * What names a state is the Mazurkiewicz trace of the prefix that reached it
 * (the explorer's programs are deterministic: equivalent prefixes reach the
 * same state, which the brute force in test/explorer/mazurkiewicz.test.ts
 * checks for the declared dependence), plus the simulated clock. A trace is
 * its events with their vector clocks (explorer/clocks.ts); renaming threads
 * by a permutation π maps event (t, seq, vc) to (π t, seq, vc ∘ π⁻¹). The
 * fingerprint of a prefix under symmetry is that of the renamed trace, with π
 * chosen from what does not depend on the names: within each group, threads
 * sorted by a name-blind signature of their own events. Any choice of π is
 * sound — equal fingerprints mean traces equal up to a renaming of
 * interchangeable threads, so states with isomorphic futures — a better
 * choice only merges more.
 *
 * Fingerprints are 64 bits (two 32-bit lanes, the events' hashes summed so the
 * order of independent steps does not matter): two different states share one
 * with probability about n²/2⁶⁵ for n states (3 × 10⁻⁶ at ten million), as
 * with SPIN's hash compaction. The model does not otherwise simplify here.
 */
import type { Program } from './program.ts';

/**
 * Groups of interchangeable threads (indices, each group sorted, at least two
 * threads), as the program declares them (`Program.symmetry`).
 */
export function symmetryGroups(program: Program): readonly (readonly number[])[] {
  const groups = program.symmetry ?? [];
  const seen = new Set<number>();
  const out: number[][] = [];
  for (const g of groups) {
    const members = [...new Set(g)].filter((t) => t >= 0 && t < program.threads.length && !seen.has(t));
    members.sort((a, b) => a - b);
    if (members.length < 2) continue;
    for (const t of members) seen.add(t);
    out.push(members);
  }
  return out;
}

/** Groups of equal keys: indices whose `keys` are equal (JSON-comparable), two or more per group. */
export function groupsOfEqual(keys: readonly string[]): number[][] {
  const by = new Map<string, number[]>();
  keys.forEach((k, i) => {
    const g = by.get(k);
    if (g) g.push(i);
    else by.set(k, [i]);
  });
  return [...by.values()].filter((g) => g.length > 1);
}

/** The mask with each bit i moved to bit map[i]. */
function mapMask(mask: number, map: Int32Array): number {
  let out = 0;
  while (mask) {
    const i = 31 - Math.clz32(mask & -mask);
    mask &= mask - 1;
    out |= 1 << (map[i] as number);
  }
  return out;
}

/** One round of a 32-bit mixer (murmur3's finaliser on the combined word). */
function mix(h: number, x: number): number {
  let k = Math.imul(x, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  h ^= Math.imul(k, 0x1b873593);
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** The events of one execution's prefix, as the fingerprints need them. */
export class PrefixEvents {
  /** Per event: thread, 1-based index in its thread, vector clock. */
  readonly tid: number[] = [];
  readonly seq: number[] = [];
  readonly vc: Int32Array[] = [];
  length = 0;

  set(d: number, tid: number, seq: number, vc: Int32Array): void {
    this.tid[d] = tid;
    this.seq[d] = seq;
    this.vc[d] = vc;
    this.length = d + 1;
  }
}

/**
 * Canonical fingerprints of prefixes, for a program with `threads` threads and
 * these symmetry groups. `fingerprint` fills `out` with the two lanes and
 * `perm` with π (thread → canonical index).
 */
export class Canonicaliser {
  /** Thread → its group (-1: none). */
  private readonly groupOf: Int32Array;
  private readonly sig: Uint32Array;
  private readonly scratch: number[] = [];
  readonly perm: Int32Array;
  /** Inverse of perm (canonical index → thread). */
  readonly inv: Int32Array;

  constructor(
    private readonly threads: number,
    private readonly groups: readonly (readonly number[])[],
  ) {
    this.groupOf = new Int32Array(threads).fill(-1);
    groups.forEach((g, i) => {
      for (const t of g) this.groupOf[t] = i;
    });
    this.sig = new Uint32Array(threads);
    this.perm = new Int32Array(threads);
    this.inv = new Int32Array(threads);
    for (let t = 0; t < threads; t++) {
      this.perm[t] = t;
      this.inv[t] = t;
    }
  }

  get symmetric(): boolean {
    return this.groups.length > 0;
  }

  /**
   * The fingerprint of the prefix `ev[0 … n)` with the simulated clock at
   * `jiffies`: lanes in out[0], out[1] (never both zero).
   */
  fingerprint(ev: PrefixEvents, n: number, jiffies: number, out: Uint32Array): void {
    const nt = this.threads;
    if (this.symmetric) this.choosePermutation(ev, n);
    const perm = this.perm;
    const inv = this.inv;
    let a = 0;
    let b = 0;
    for (let i = 0; i < n; i++) {
      const vc = ev.vc[i] as Int32Array;
      let h1 = mix(0x3c6ef372, perm[ev.tid[i] as number] as number);
      let h2 = mix(0x5be0cd19, perm[ev.tid[i] as number] as number);
      h1 = mix(h1, ev.seq[i] as number);
      h2 = mix(h2, ev.seq[i] as number);
      for (let c = 0; c < nt; c++) {
        const x = vc[inv[c] as number] as number;
        h1 = mix(h1, x);
        h2 = mix(h2, x ^ 0x27d4eb2f);
      }
      a = (a + fmix(h1)) | 0;
      b = (b + fmix(h2)) | 0;
    }
    a = mix(a, jiffies);
    b = mix(b, jiffies ^ 0x165667b1);
    out[0] = fmix(a);
    out[1] = fmix(b);
    if (out[0] === 0 && out[1] === 0) out[0] = 1;
  }

  /**
   * π: within each group, threads ordered by a signature of their own events
   * that does not depend on the threads' names (clock entries of the group's
   * threads as a sorted multiset), ties by index.
   */
  private choosePermutation(ev: PrefixEvents, n: number): void {
    const nt = this.threads;
    const sig = this.sig;
    sig.fill(0x811c9dc5);
    const s = this.scratch;
    for (let i = 0; i < n; i++) {
      const t = ev.tid[i] as number;
      const g = this.groupOf[t] as number;
      if (g < 0) continue;
      const vc = ev.vc[i] as Int32Array;
      let h = mix(sig[t] as number, ev.seq[i] as number);
      s.length = 0;
      for (let c = 0; c < nt; c++) {
        const gc = this.groupOf[c] as number;
        if (gc < 0) h = mix(h, vc[c] as number);
        else if (c !== t) s.push(gc * 65536 + (vc[c] as number));
      }
      s.sort((x, y) => x - y);
      for (const x of s) h = mix(h, x);
      sig[t] = fmix(h);
    }
    for (const g of this.groups) {
      const order = [...g].sort((x, y) => (sig[x] as number) - (sig[y] as number) || x - y);
      for (let k = 0; k < g.length; k++) {
        const t = order[k] as number;
        this.perm[t] = g[k] as number;
        this.inv[g[k] as number] = t;
      }
    }
  }

  /** A thread mask in actual indices → canonical indices (π applied). */
  toCanonical(mask: number): number {
    return mapMask(mask, this.perm);
  }

  /** A mask in canonical indices → actual indices (π⁻¹ applied). */
  fromCanonical(mask: number): number {
    return mapMask(mask, this.inv);
  }
}
