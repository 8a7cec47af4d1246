/**
 * An IOMMU domain: the IO page table a device's DMA is translated through
 * (`struct iommu_domain`), with `iommu_map()` / `iommu_unmap()` and the
 * device's DMA through it.
 *
 * Each IOVA page of the domain is an entry (a `dma` translation of a frame);
 * each entry is a shared object of its own for the explorer, so DMAs to
 * different pages commute. The model has one IOVA range per domain: IOVA
 * page `i` is page `i` of the one buffer mapped there.
 *
 * Models: drivers/iommu/iommu.c (iommu_map, iommu_unmap), the device side of
 * an IOMMU translation (what KASAN checks)
 */
import { kasan_check } from '../checkers/kasan.ts';
import type { Kernel } from './kernel.ts';
import { installTranslation, type TranslationTable, tableSlots, tableStep, zapTranslation } from './memory.ts';
import { hexPfn, type PfnRef, type Translation } from './page-alloc.ts';
import { type KGen, KObject, kfn, type Task } from './sched.ts';

/** `struct iommu_domain`: one IO page table entry per IOVA page. */
export class IommuDomain extends KObject implements TranslationTable {
  readonly type = 'iommu_domain';
  readonly entries: (Translation | null)[];
  readonly slots: readonly KObject[];

  constructor(k: Kernel, name: string, npages: number) {
    super(k, name);
    this.entries = new Array<Translation | null>(npages).fill(null);
    this.slots = tableSlots(k, `${name}:iopte`, npages);
  }

  override snapshot(): Record<string, unknown> {
    return { ioptes: this.entries.map((e) => (e ? { pfn: hexPfn(e.frame.pfn), stale: e.stale } : null)) };
  }
}

/**
 * `iommu_map()`: maps `refs[i]` at IOVA page `i` (one step writing every
 * entry and frame). `owner` names the mapping in reports ("ioas (iommufd)"),
 * `buffer` the buffer it belongs to. A PFN that no longer backs the buffer is
 * a `stale-mapping` at install; private MMIO is a `private-mmio` ([K8]).
 * Locking: none of its own (the caller serialises the IOVA range).
 */
export const iommu_map = kfn(
  'iommu_map',
  function* (t: Task, domain: IommuDomain, owner: string, buffer: string, refs: readonly PfnRef[]): KGen {
    const s = t.at('iommu_map', 'write', domain);
    for (const r of refs) s.touch(r.frame, 'write');
    yield tableStep(s, [domain], -1, true);
    for (let i = 0; i < refs.length && i < domain.entries.length; i++) {
      const old = domain.entries[i];
      if (old) zapTranslation(old);
      domain.entries[i] = installTranslation(t, 'dma', owner, buffer, i, refs[i] as PfnRef);
    }
  },
);

/**
 * `iommu_unmap()` of the whole range, then the IOTLB flush: after it no DMA
 * reaches the old frames. Returns the number of pages unmapped.
 */
export const iommu_unmap = kfn('iommu_unmap', function* (t: Task, domain: IommuDomain): KGen<number> {
  yield tableStep(t.at('iommu_unmap', 'write', domain), [domain], -1, true);
  let n = 0;
  for (let i = 0; i < domain.entries.length; i++) {
    const tr = domain.entries[i];
    if (tr) {
      zapTranslation(tr);
      domain.entries[i] = null;
      n++;
    }
  }
  return n;
});

/**
 * A device DMA to `page` translated by a device-side table (an IOMMU domain,
 * an RDMA NIC's MTT): reads the entry and, through it, the frame, which KASAN
 * checks ([I1], [I25]). Returns null when the entry is empty (an IOMMU fault,
 * or for an ODP NIC a page fault), else whether the access was valid.
 */
export function* device_dma_table(t: Task, table: TranslationTable, page: number): KGen<boolean | null> {
  yield tableStep(t.at('device_dma', 'read', table.slots[page] ?? table), [table], page, false);
  const tr = table.entries[page];
  if (!tr) return null;
  return kasan_check(t, tr, 'dma');
}
