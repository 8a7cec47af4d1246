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
