/**
 * The x86 TDP MMU pieces of a KVM fault: installing an SPTE
 * (`kvm_tdp_mmu_map`), zapping a gfn range (`kvm_unmap_gfn_range`) and the
 * guest's own access through an SPTE.
 *
 * Models: arch/x86/kvm/mmu/mmu.c, arch/x86/kvm/mmu/tdp_mmu.c
 */

import { assertHeld } from '../../checkers/api.ts';
import { kasan_check } from '../../checkers/kasan.ts';
import { installTranslation, tableStep, zapTranslation } from '../memory.ts';
import type { PfnRef } from '../page-alloc.ts';
import type { KGen, Task } from '../sched.ts';
import { type Kvm, mmu_invalidate_retry_gfn } from './kvm-main.ts';

/**
 * `is_page_fault_stale()` + `kvm_tdp_mmu_map()` in one step under mmu_lock:
 * returns false (RET_PF_RETRY) when `seq` is stale, else installs the SPTE.
 * With `seq` null the staleness check is skipped (a protocol without retry).
 */
export function* kvm_tdp_mmu_map(
  t: Task,
  kvm: Kvm,
  importer: string,
  buffer: string,
  page: number,
  ref: PfnRef,
  seq: number | null,
): KGen<boolean> {
  yield tableStep(
    t
      .at('kvm_tdp_mmu_map', 'write', kvm.spt.slots[page] ?? kvm.spt)
      .touch(ref.frame, 'write')
      .touch(kvm.mmu, 'read'),
    [kvm.spt],
    page,
    true,
  );
  // The installer holds mmu_lock ([I5], [K4] 4).
  assertHeld(t, kvm.mmu_lock, 'kvm_tdp_mmu_map', ['I5', 'K4']);
  if (seq !== null && mmu_invalidate_retry_gfn(kvm, seq, kvm.gfn(page))) return false;
  const old = kvm.spt.entries[page];
  if (old) zapTranslation(old);
  kvm.spt.entries[page] = installTranslation(t, 'spte', importer, buffer, page, ref, kvm.secureEpt);
  return true;
}

/** `kvm_unmap_gfn_range()` over the whole slot, then a TLB flush. */
export function* kvm_unmap_gfn_range(t: Task, kvm: Kvm): KGen<number> {
  yield tableStep(t.at('kvm_unmap_gfn_range', 'write', kvm.spt), [kvm.spt], -1, true);
  let n = 0;
  const sptes = kvm.spt.entries;
  for (let i = 0; i < sptes.length; i++) {
    const tr = sptes[i];
    if (tr) {
      zapTranslation(tr);
      sptes[i] = null;
      n++;
    }
  }
  return n;
}

/**
 * The guest touches `page`: through the SPTE when there is one. Returns
 * false when there is no SPTE (the guest takes an EPT violation).
 */
export function* guest_access(t: Task, kvm: Kvm, page: number): KGen<boolean> {
  yield tableStep(t.at('vcpu_enter_guest', 'read', kvm.spt.slots[page] ?? kvm.spt), [kvm.spt], page, false);
  const spte = kvm.spt.entries[page];
  if (!spte) return false;
  kasan_check(t, spte, 'guest');
  return true;
}
