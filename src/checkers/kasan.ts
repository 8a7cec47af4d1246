/**
 * KASAN for the model: every access through a translation checks that the
 * frame still backs what the translation was made for ([I1], [I2], [I25]).
 *
 * RAM: a generation mismatch means the frame was freed (and maybe reused)
 * since the PFN was obtained — `use-after-free`. MMIO: a mismatch, or a BAR
 * whose revoke has completed, is `access-after-revoke`.
 */
import { frameInfo, hexPfn, type Translation, translationInfo } from '../kernel/page-alloc.ts';
import type { Task } from '../kernel/sched.ts';
import { apiMisuse } from './api.ts';
import type { Origin } from './finding.ts';
import { origin } from './lockdep.ts';

/**
 * A kmalloc'ed array KASAN knows the bounds of (its redzone): a driver's
 * `pages` / `folios` array, which never changes size after allocation.
 */
export class KasanArray<T> {
  readonly allocated: Origin;

  constructor(
    t: Task,
    /** What reports call it: the field ("cma_heap_buffer->pages"). */
    readonly name: string,
    /** Whose it is (the buffer's name). */
    readonly owner: string,
    readonly items: readonly T[],
  ) {
    this.allocated = origin(t);
  }

  get length(): number {
    return this.items.length;
  }

  /**
   * `array[index]`, checked: past the end is an `out-of-bounds` finding
   * (KASAN slab-out-of-bounds, in the innermost kernel function running) and
   * gives undefined — what lies past the end of the kmalloc'ed array is not
   * modelled ([C1]). The array never changes, so the read needs no step.
   */
  at(t: Task, index: number, how: 'read' | 'write' = 'read'): T | undefined {
    if (index >= 0 && index < this.items.length) return this.items[index];
    t.k.report(t, {
      code: 'out-of-bounds',
      access: { how, object: this.name, owner: this.owner, index, size: this.items.length },
      allocated: this.allocated,
      rules: ['C1'],
      message: `BUG: KASAN: slab-out-of-bounds in ${t.fn}: ${how} of ${this.name}[${index}] of ${this.owner}, an array of ${this.items.length}`,
    });
    return undefined;
  }
}

export type AccessHow = 'guest' | 'cpu' | 'dma';

const KIND_NAMES = { spte: 'an SPTE', pte: 'a CPU PTE', dma: 'a DMA mapping' } as const;

/**
 * Checks one access by `t` through `tr` (inside a step that declared a read
 * of the translation's frame). Returns true when the access was valid.
 */
export function kasan_check(t: Task, tr: Translation, how: AccessHow): boolean {
  const f = tr.frame;
  if (tr.state === 'gone') {
    apiMisuse(t, t.pending.fn, `${how} access through ${KIND_NAMES[tr.kind]} that was already torn down`, ['LT10']);
    return false;
  }
  if (f.pool.kind === 'mmio') {
    if (tr.gen === f.gen && f.accessible) return true;
    t.k.report(
      t,
      {
        code: 'access-after-revoke',
        access: { how, via: translationInfo(tr) },
        frame: frameInfo(f, tr.gen),
        revoked: f.revoked,
        rules: ['I25', 'V5', 'V6'],
        message: `BUG: access after revoke in ${t.pending.fn}: ${how} access to MMIO pfn ${hexPfn(f.pfn)} of ${tr.buffer} through ${tr.importer}'s ${tr.kind}`,
      },
      t.pending.fn,
    );
    return false;
  }
  if (tr.gen === f.gen) return true;
  const life = f.lives[tr.gen];
  const next = f.lives[tr.gen + 1];
  t.k.report(
    t,
    {
      code: 'use-after-free',
      access: { how, via: translationInfo(tr) },
      frame: frameInfo(f, tr.gen),
      allocated: life?.allocated ?? null,
      freed: life?.freed ?? null,
      reused: next?.allocated ? { ...next.allocated, owner: next.owner } : null,
      rules: ['I1', 'I2', 'LT10'],
      message: `BUG: KASAN: use-after-free in ${t.pending.fn}: ${how} access to pfn ${hexPfn(f.pfn)} through ${tr.importer}'s ${tr.kind} for ${tr.buffer} page ${tr.page}`,
    },
    t.pending.fn,
  );
  return false;
}
