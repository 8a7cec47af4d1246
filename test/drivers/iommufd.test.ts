/**
 * The built-in `iommufd` importer: a pinned but revocable importer mapping
 * vfio-pci MMIO through the private interconnect into an IO page table
 * ([V4], [V6], [V7]), and the finding each bug option leads to.
 */
import { describe, expect, it } from 'vitest';
import type { DriverDef, ExportedBuffer, OptionValues } from '../../src/drivers/driver.ts';
import { ttm } from '../../src/drivers/exporters/ttm.ts';
import { vfioPci } from '../../src/drivers/exporters/vfio-pci.ts';
import { type IommufdImporter, iommufd } from '../../src/drivers/importers/iommufd.ts';
import { EBUSY, ENODEV, EOPNOTSUPP, isErr, Kernel, type KGen, type Task } from '../../src/index.ts';
import { check, codes, expectBug, expectSafe, first, fromYaml } from '../helpers.ts';
import { solo } from '../kernel/harness.ts';

function withIoas<R>(
  exporter: DriverDef & { kind: 'exporter' },
  options: OptionValues,
  body: (t: Task, imp: IommufdImporter, exp: ExportedBuffer) => KGen<R>,
): { result: R; k: Kernel } {
  const k = new Kernel();
  const { result } = solo(function* (t) {
    const exp = yield* exporter.export(t, { k, name: 'mmio', pages: 1, options: {} });
    if (isErr(exp)) throw new Error('export failed');
    const imp = iommufd.create({
      k,
      name: 'ioas',
      buffer: exp.buf,
      pages: 1,
      options,
      buffers: new Map([['mmio', exp.buf]]),
    }) as IommufdImporter;
    expect(yield* imp.attach(t)).toBe(0);
    return yield* body(t, imp, exp);
  }, k);
  return { result, k };
}

const map = (t: Task, imp: IommufdImporter) => imp.ops.map(t) as KGen<number>;
const unmap = (t: Task, imp: IommufdImporter) => imp.ops.unmap(t) as KGen<number>;

describe('iommufd', () => {
  it('creating the IOAS attaches nothing; IOMMU_IOAS_MAP_FILE attaches, pins and maps the BAR range', () => {
    const { result, k } = withIoas(vfioPci, {}, function* (t, imp, exp) {
      const before = exp.buf.attachments.length;
      const rc = yield* map(t, imp);
      const pages = imp.ioas.pages;
      return { before, rc, pages, entry: imp.ioas.domain.entries[0], bar: exp.buf.backing?.()[0] };
    });
    expect(result.before).toBe(0);
    expect(result.rc).toBe(0);
    expect(result.pages.attach?.importer_ops?.invalidate_mappings).toBeDefined();
    expect(result.pages.attach?.pinCount).toBe(1);
    // The private interconnect: no sg_table mapping at all ([V7]).
    expect(result.pages.attach?.sgts.length).toBe(0);
    expect(result.entry?.frame).toBe(result.bar);
    expect(result.entry?.importer).toBe('ioas:iopt');
    expect(k.findings).toEqual([]);
    // lockdep learned resv → pages->mutex from the priming in iopt_map_dmabuf.
    expect(k.lockGraph.has('reservation_ww_class_mutex', 'iopt_pages->mutex (dmabuf)')).toBe(true);
  });

  it('a revoke unmaps the IO page table and marks the pages revoked; the attachment stays pinned until IOMMU_IOAS_UNMAP', () => {
    const { result, k } = withIoas(vfioPci, {}, function* (t, imp, exp) {
      yield* map(t, imp);
      yield* exp.ops.revoke?.(t, {}) as KGen<unknown>;
      const pages = imp.ioas.pages;
      const afterRevoke = {
        entry: imp.ioas.domain.entries[0],
        revoked: pages.phys === null,
        pins: pages.attach?.pinCount,
      };
      yield* imp.ops.dma(t, { page: 0 }); // an IOMMU fault: no finding
      const again = yield* map(t, imp); // the range is still there: the VMM must unmap first
      const refs = exp.buf.refcount;
      const rc = yield* unmap(t, imp);
      return { afterRevoke, again, refs, rc, after: exp.buf.refcount, attach: pages.attach };
    });
    expect(result.afterRevoke).toEqual({ entry: null, revoked: true, pins: 1 });
    expect(result.again).toBe(-EBUSY);
    expect(result.rc).toBe(0);
    expect(result.after).toBe(result.refs - 1);
    expect(result.attach).toBeNull();
    expect(k.findings).toEqual([]);
  });

  it('never maps again by itself: while revoked a new MAP_FILE is refused (-ENODEV); after unrevoke it maps', () => {
    const { result, k } = withIoas(vfioPci, {}, function* (t, imp, exp) {
      yield* map(t, imp);
      yield* unmap(t, imp);
      yield* exp.ops.revoke?.(t, {}) as KGen<unknown>;
      const whileRevoked = yield* map(t, imp);
      const attached = exp.buf.attachments.length;
      yield* exp.ops.unrevoke?.(t, {}) as KGen<unknown>;
      const after = yield* map(t, imp);
      yield* imp.ops.dma(t, { page: 0 });
      return { whileRevoked, attached, after, entry: imp.ioas.domain.entries[0] };
    });
    expect(result.whileRevoked).toBe(-ENODEV);
    expect(result.attached).toBe(0);
    expect(result.after).toBe(0);
    expect(result.entry?.stale).toBe(false);
    expect(k.findings).toEqual([]);
  });

  it('a buffer vfio did not export has no private interconnect: MAP_FILE fails and leaves nothing attached or pinned', () => {
    const { result, k } = withIoas(ttm, {}, function* (t, imp, exp) {
      const rc = yield* map(t, imp);
      return { rc, attachments: exp.buf.attachments.length, entry: imp.ioas.domain.entries[0] };
    });
    expect(result).toEqual({ rc: -EOPNOTSUPP, attachments: 0, entry: null });
    expect(k.findings).toEqual([]);
  });

  it('the VMM unmapping around a reset, with the device DMAing meanwhile, is safe ([V6])', () => {
    expectSafe(
      check(
        fromYaml(`
name: around
buffers: { mmio: { exporter: vfio-pci } }
importers: { ioas: { driver: iommufd, buffer: mmio } }
threads:
  vmm: [ ioas.map, ioas.unmap, mmio.revoke, mmio.unrevoke, ioas.map ]
  dev: [ { ioas.dma: { page: 0 } } ]
`),
      ),
    );
  });
});

describe('iommufd bug options', () => {
  const revokeRace = (opt: string, vmm = 'ioas.map, { ioas.dma: { page: 0 } }') => `
name: r
buffers: { mmio: { exporter: vfio-pci } }
importers: { ioas: { driver: iommufd, buffer: mmio${opt ? `, options: { ${opt} }` : ''} } }
threads:
  vmm: [ ${vmm} ]
  reset: [ mmio.revoke ]
`;

  it('unmap_on_revoke: false leaves the IO page table mapping the revoked BAR ([V4], [I25]); the default unmaps', () => {
    expectSafe(check(fromYaml(revokeRace(''))));
    const r = check(fromYaml(revokeRace('unmap_on_revoke: false')));
    expectBug(r, 'stale-mapping');
    expect(first(r, 'stale-mapping').message).toContain("ioas:iopt's dma for mmio page 0 still maps it");
    // The device's DMA after the revoke completed.
    const late = check(
      fromYaml(revokeRace('unmap_on_revoke: false', 'ioas.map, mmio.revoke, { ioas.dma: { page: 0 } }')),
    );
    expect(codes(late)).toContain('access-after-revoke');
  });

  it('unmap_on_revoke: false: a later IOMMU_IOAS_UNMAP skips the revoked range, so the entry stays for ever', () => {
    const { result } = withIoas(vfioPci, { unmap_on_revoke: false }, function* (t, imp, exp) {
      yield* map(t, imp);
      yield* exp.ops.revoke?.(t, {}) as KGen<unknown>;
      yield* unmap(t, imp);
      return imp.ioas.domain.entries[0];
    });
    expect(result?.stale).toBe(true);
    expect(result?.state).toBe('live');
  });

  it('fill_takes_resv: true inverts resv → pages->mutex: lock-order at once, and a deadlock against a reset', () => {
    const r = check(fromYaml(revokeRace('fill_takes_resv: true', 'ioas.map')));
    expectBug(r, 'lock-order');
    expect(first(r, 'lock-order').message).toMatch(/iopt_pages->mutex/);
    const d = check(
      fromYaml(`${revokeRace('fill_takes_resv: true', 'ioas.map')}expect: { verdict: bug, finding: deadlock }\n`),
    );
    expect(codes(d)).toContain('deadlock');
  });

  it('unpin_under_resv: false: dma_buf_unpin without resv on IOMMU_IOAS_UNMAP and on IOAS destroy ([L1])', () => {
    const y = (opt: string, ops: string) => `
name: u
buffers: { mmio: { exporter: vfio-pci } }
importers: { ioas: { driver: iommufd, buffer: mmio${opt} } }
threads: { vmm: [ ${ops} ] }
`;
    expectSafe(check(fromYaml(y('', 'ioas.map, ioas.unmap'))));
    const r = check(fromYaml(y(', options: { unpin_under_resv: false }', 'ioas.map, ioas.unmap')));
    expect(codes(r)).toEqual(['lock-not-held']);
    const f = first(r, 'lock-not-held');
    expect(f.message).toBe('dma_buf_unpin called without holding mmio->resv');
    expect(f.stack).toEqual(['iommufd_ioas_unmap', 'iopt_unmap_iova_range', 'iopt_release_pages', 'dma_buf_unpin']);
    // Closing the iommufd with the range still mapped releases the pages the same way.
    const destroy = check(fromYaml(y(', options: { unpin_under_resv: false }', 'ioas.map')));
    expect(first(destroy, 'lock-not-held').stack).toContain('iommufd_ioas_destroy');
  });
});
