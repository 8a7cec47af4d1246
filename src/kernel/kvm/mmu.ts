/**
 * The x86 TDP MMU pieces of a KVM fault: installing an SPTE
 * (`kvm_tdp_mmu_map`), zapping a gfn range (`kvm_unmap_gfn_range`) and the
 * guest's own access through an SPTE.
 *
 * Models: arch/x86/kvm/mmu/mmu.c, arch/x86/kvm/mmu/tdp_mmu.c
 */
import { kasan_check } from '../../checkers/kasan.ts';
import { installTranslation, zapTranslation } from '../memory.ts';
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
  yield t.at('kvm_tdp_mmu_map', 'write', t.k.physmem).touch(kvm.mmu, 'read');
  if (seq !== null && mmu_invalidate_retry_gfn(kvm, seq, kvm.gfn(page))) return false;
  const old = kvm.sptes[page];
  if (old) zapTranslation(old);
  kvm.sptes[page] = installTranslation(t, 'spte', importer, buffer, page, ref);
  return true;
}

/** `kvm_unmap_gfn_range()` over the whole slot, then a TLB flush. */
export function* kvm_unmap_gfn_range(t: Task, kvm: Kvm): KGen<number> {
  yield t.at('kvm_unmap_gfn_range', 'write', t.k.physmem);
  let n = 0;
  for (let i = 0; i < kvm.sptes.length; i++) {
    const tr = kvm.sptes[i];
    if (tr) {
      zapTranslation(tr);
      kvm.sptes[i] = null;
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
  yield t.at('vcpu_enter_guest', 'read', t.k.physmem);
  const spte = kvm.sptes[page];
  if (!spte) return false;
  kasan_check(t, spte, 'guest');
  return true;
}
