/**
 * Every option and op of every built-in driver makes an observable
 * difference: each test pairs two scenarios that differ in one option value
 * (or in one op) and asserts the verdict and findings of both.
 */
import { describe, expect, it } from 'vitest';
import type { CheckResult, ReportedFinding } from '../../src/check.ts';
import type { UseAfterFreeFinding } from '../../src/checkers/finding.ts';
import { mapFrames, unmapFrames } from '../../src/drivers/exporters/common.ts';
import {
  alloc_pages,
  type DmaBufOps,
  type DriverDef,
  defineExporter,
  dma_buf_export,
  free_pages,
  isErr,
} from '../../src/index.ts';
import { check, codes, expectBug, expectSafe, first, fromYaml } from '../helpers.ts';

/** An exporter without get_pfn: which get_pfn call an importer makes shows in the warning. */
const noPfnExporter = defineExporter({
  name: 'no-pfn',
  summary: 'system pages, map_dma_buf only (no get_pfn)',
  options: {},
  ops: {},
  *export(t, env) {
    const pool = env.k.physmem.pools.get('system');
    if (!pool) throw new Error('no system pool');
    const frames = yield* alloc_pages(t, pool, env.pages, (i) => `${env.name} (no-pfn) page ${i}`);
    const ops: DmaBufOps = {
      *map_dma_buf(t, attach, dir) {
        return yield* mapFrames(t, 'no_pfn_map_dma_buf', attach, frames, dir);
      },
      *unmap_dma_buf(t, _attach, sgt) {
        yield* unmapFrames(t, 'no_pfn_unmap_dma_buf', sgt);
      },
      *release(t) {
        yield* free_pages(t, frames);
      },
    };
    const buf = yield* dma_buf_export(t, env.name, { exp_name: 'no-pfn', ops, pages: env.pages, priv: frames });
    if (isErr(buf)) return buf;
    return { buf, pool, ops: {} };
  },
});

const MODULES: ReadonlyMap<string, DriverDef> = new Map<string, DriverDef>([['./no-pfn.ts', noPfnExporter]]);

function run(yaml: string): CheckResult {
  return check(fromYaml(yaml, MODULES));
}

/** One buffer, one importer, threads given as YAML lines. */
function scenario(o: {
  exporter?: string;
  bufferOptions?: string;
  pages?: number;
  driver: string;
  options?: string;
  threads: string;
  expect?: string;
}): string {
  return `
name: opt
buffers:
  bo: { exporter: ${o.exporter ?? 'ttm'}${o.pages ? `, pages: ${o.pages}` : ''}${o.bufferOptions ? `, options: { ${o.bufferOptions} }` : ''} }
importers:
  imp: { driver: ${o.driver}, buffer: bo${o.options ? `, options: { ${o.options} }` : ''} }
threads:
${o.threads}
${o.expect ? `expect: ${o.expect}` : ''}
`;
}

// ===========================================================================
// Exporters
// ===========================================================================

describe('exporter system-heap', () => {
  const kvmNoRetry = (exporter: string, other: string) =>
    scenario({
      exporter,
      driver: 'kvm',
      options: 'invalidate_retry: false',
      threads: `  vcpu0: [ { imp.access: { page: 0 } } ]\n  other: [ ${other} ]`,
    });

  it('never moves: kvm without the seq re-check is safe on it while the owner drops its reference ([K6], [LT1])', () => {
    expectSafe(run(kvmNoRetry('system-heap', 'bo.put')));
  });

  it('the same importer on a ttm buffer that moves is a use-after-free', () => {
    expectBug(run(kvmNoRetry('ttm', 'bo.move')), 'use-after-free');
  });

  it('has no move op', () => {
    expect(() => fromYaml(kvmNoRetry('system-heap', 'bo.move'))).toThrow(/buffer "bo" has no op "move"/);
  });

  it('put: the last put frees the pages while a CPU PTE of an importer that took no reference maps them', () => {
    // rogue-mmap holds its own reference, so the owner's put is harmless ...
    expectSafe(
      run(
        scenario({
          exporter: 'system-heap',
          driver: 'rogue-mmap',
          threads: '  user: [ { imp.access: { page: 0 } }, bo.put, { imp.access: { page: 0 } } ]',
        }),
      ),
    );
    // ... and a second put drops that reference too: the pages are freed under the PTE.
    const r = run(
      scenario({
        exporter: 'system-heap',
        driver: 'rogue-mmap',
        threads: '  user: [ { imp.access: { page: 0 } }, bo.put, bo.put, { imp.access: { page: 0 } } ]',
      }),
    );
    expectBug(r, 'stale-mapping');
    expect(codes(r)).toContain('use-after-free');
  });
});

describe('exporter ttm', () => {
  const uafWithPlacement = (placement: string) =>
    run(
      scenario({
        bufferOptions: `placement: ${placement}`,
        driver: 'kvm',
        options: 'zap_on_invalidate: false',
        threads: '  t: [ { imp.access: { page: 0 } }, bo.move, { imp.access: { page: 0 } } ]',
      }),
    );

  it('placement: vram puts the buffer in VRAM first; the stale access hits a VRAM frame', () => {
    const r = uafWithPlacement('vram');
    expectBug(r, 'use-after-free');
    const f = first(r, 'use-after-free') as UseAfterFreeFinding & ReportedFinding;
    expect(f.frame.pool).toBe('vram');
    expect(f.frame.owner).toBe('bo (ttm, vram) page 0');
    expect(f.message).toMatch(/access to pfn 0x800000 /);
  });

  it('placement: system puts it in system RAM first; the stale access hits a system frame', () => {
    const r = uafWithPlacement('system');
    expectBug(r, 'use-after-free');
    const f = first(r, 'use-after-free') as UseAfterFreeFinding & ReportedFinding;
    expect(f.frame.pool).toBe('system');
    expect(f.frame.owner).toBe('bo (ttm, system) page 0');
    expect(f.message).toMatch(/access to pfn 0x100000 /);
  });

  it('move: kvm without the re-check against a move is a use-after-free ([K6] i) ...', () => {
    expectBug(
      run(
        scenario({
          driver: 'kvm',
          options: 'invalidate_retry: false',
          threads: '  vcpu0: [ { imp.access: { page: 0 } } ]\n  evictor: [ bo.move ]',
        }),
      ),
      'use-after-free',
    );
  });

  it('... and without the move it is safe', () => {
    expectSafe(
      run(
        scenario({
          driver: 'kvm',
          options: 'invalidate_retry: false',
          threads: '  vcpu0: [ { imp.access: { page: 0 } } ]\n  evictor: [ bo.put ]',
        }),
      ),
    );
  });

  it('move fails with -EBUSY while a static mapping pins the buffer ([LT6], [LT8] 1)', () => {
    expectSafe(
      run(
        scenario({
          driver: 'dma-static',
          threads: '  t: [ imp.map, bo.move, { imp.dma: { page: 0 } }, imp.unmap ]',
        }),
      ),
    );
  });

  it('move succeeds once the static mapping is gone; the next DMA needs a new map', () => {
    const r = run(
      scenario({
        driver: 'dma-static',
        threads: '  t: [ imp.map, imp.unmap, bo.move, { imp.dma: { page: 0 } } ]',
      }),
    );
    expectBug(r, 'api-misuse');
    expect(first(r, 'api-misuse').message).toBe(
      'WARNING: dma_static_dma: device DMA to page 0 of bo without a mapping',
    );
  });

  it('move zaps CPU PTEs through the address_space: a cpu-mmap user refaults ([C3], [C4])', () => {
    expectSafe(
      run(
        scenario({
          driver: 'cpu-mmap',
          threads: '  user: [ { imp.access: { page: 0 } }, bo.move, { imp.access: { page: 0 } } ]',
        }),
      ),
    );
  });
});

describe('exporter vfio-pci', () => {
  const kvmRevoke = (ops: string, zap = false) =>
    run(
      scenario({
        exporter: 'vfio-pci',
        driver: 'kvm',
        options: `zap_on_invalidate: ${zap}`,
        threads: `  t: [ ${ops} ]`,
      }),
    );

  it('revoke: the BAR stops decoding, an SPTE left behind is an access after revoke ([V5], [I25])', () => {
    const r = kvmRevoke(
      '{ imp.access: { page: 0 } }, mmio_op, { imp.access: { page: 0 } }'.replace('mmio_op', 'bo.revoke'),
    );
    expectBug(r, 'access-after-revoke');
  });

  it('without the revoke the same accesses are safe', () => {
    expectSafe(kvmRevoke('{ imp.access: { page: 0 } }, { imp.access: { page: 0 } }'));
  });

  it('revoke with a zapping importer: the next guest access gets -EIO from get_pfn, no finding ([V6])', () => {
    expectSafe(kvmRevoke('{ imp.access: { page: 0 } }, bo.revoke, { imp.access: { page: 0 } }', true));
  });

  const refaultAfterRevoke = (unrevoke: boolean) =>
    kvmRevoke(
      `bo.revoke, ${unrevoke ? 'bo.unrevoke, ' : ''}{ imp.access: { page: 0 } }, bo.revoke, { imp.access: { page: 0 } }`,
    );

  it('revoke: get_pfn gives -ENODEV afterwards, so no SPTE exists for the next revoke to miss ([P5], [V6])', () => {
    expectSafe(refaultAfterRevoke(false));
  });

  it('unrevoke: get_pfn works again; the new SPTE, left by a non-zapping KVM, outlives the next revoke ([V3])', () => {
    const r = refaultAfterRevoke(true);
    expectBug(r, 'access-after-revoke');
    expect(codes(r)).toContain('stale-mapping');
  });

  it('an SPTE made before the revoke stays stale after unrevoke (a new life of the BAR)', () => {
    const r = kvmRevoke('{ imp.access: { page: 0 } }, bo.revoke, bo.unrevoke, { imp.access: { page: 0 } }');
    expectBug(r, 'access-after-revoke');
  });

  it('refuses static importers at setup ([V4])', () => {
    const r = run(scenario({ exporter: 'vfio-pci', driver: 'dma-static', threads: '  t: [ imp.map, imp.unmap ]' }));
    expectBug(r, 'api-misuse');
    expect(first(r, 'api-misuse').message).toContain('vfio-pci refused dma-static importer imp');
  });

  it('cpu-mmap of vfio-pci: faults under memory_lock, revoke zaps, later access is SIGBUS ([C4])', () => {
    expectSafe(
      run(
        scenario({
          exporter: 'vfio-pci',
          driver: 'cpu-mmap',
          threads: '  user: [ { imp.access: { page: 0 } }, bo.revoke, { imp.access: { page: 0 } } ]',
        }),
      ),
    );
  });
});

// ===========================================================================
// Importers
// ===========================================================================

describe('importer dma-static (ops map, dma, unmap)', () => {
  const stat = (ops: string) => run(scenario({ driver: 'dma-static', threads: `  t: [ ${ops} ]` }));

  it('map, dma, unmap is safe', () => {
    expectSafe(stat('imp.map, { imp.dma: { page: 0 } }, imp.unmap'));
  });

  it('dma without map is api-misuse ([LT5], [LT10])', () => {
    const r = stat('{ imp.dma: { page: 0 } }');
    expectBug(r, 'api-misuse');
    expect(codes(r)).toEqual(['api-misuse']);
  });

  it('map without unmap leaks the mapping ([LT3], [LT5])', () => {
    const r = stat('imp.map, { imp.dma: { page: 0 } }');
    expectBug(r, 'leak');
    expect(first(r, 'leak').message).toBe('imp detached with 1 mapping(s) not unmapped');
  });

  it('unmap without map is api-misuse ([I11])', () => {
    const r = stat('imp.unmap');
    expectBug(r, 'api-misuse');
    expect(first(r, 'api-misuse').message).toBe('WARNING: dma_static_unmap: unmap without a mapping');
  });

  it('map twice is api-misuse ([LT5])', () => {
    const r = stat('imp.map, imp.map, imp.unmap');
    expectBug(r, 'api-misuse');
    expect(first(r, 'api-misuse').message).toMatch(/^WARNING: dma_static_map: mapped again while already mapped/);
  });

  it('concurrent move: the map pins, the move fails with -EBUSY, DMA stays valid ([LT6])', () => {
    expectSafe(
      run(
        scenario({
          driver: 'dma-static',
          threads: '  driver: [ imp.map, { imp.dma: { page: 0 } }, imp.unmap ]\n  evictor: [ bo.move ]',
        }),
      ),
    );
  });
});

describe('importer dma-dynamic', () => {
  const dyn = (respect: boolean, threads: string) =>
    run(scenario({ driver: 'dma-dynamic', options: `respect_invalidate: ${respect}`, threads }));

  it('respect_invalidate: false keeps DMAing through the old mapping after a concurrent move ([LT9], [LT10])', () => {
    const r = dyn(
      false,
      '  driver: [ imp.map, { imp.dma: { page: 0 } }, imp.unmap ]\n  evictor: [ bo.move ]\nexpect: { verdict: bug, finding: use-after-free }',
    );
    expectBug(r, 'use-after-free');
    expect(r.met).toBe(true);
  });

  it('respect_invalidate: true (default) waits, drops the mapping and re-maps: safe ([L10])', () => {
    expectSafe(dyn(true, '  driver: [ imp.map, { imp.dma: { page: 0 } }, imp.unmap ]\n  evictor: [ bo.move ]'));
  });

  it('respect_invalidate: false leaves a live DMA mapping when the move frees the frames ([I1])', () => {
    const r = dyn(false, '  t: [ imp.map, bo.move, imp.unmap ]');
    expectBug(r, 'stale-mapping');
    expect(first(r, 'stale-mapping').message).toMatch(/still maps it$/);
  });

  it('respect_invalidate: true unmaps in the callback, so nothing maps the freed frames', () => {
    expectSafe(dyn(true, '  t: [ imp.map, bo.move, imp.unmap ]'));
  });

  it('ops: dma without map is api-misuse', () => {
    const r = dyn(true, '  t: [ { imp.dma: { page: 0 } } ]');
    expectBug(r, 'api-misuse');
    expect(first(r, 'api-misuse').message).toBe(
      'WARNING: dma_dynamic_submit: device DMA to page 0 of bo without a mapping',
    );
  });

  it('ops: unmap without map is api-misuse', () => {
    const r = dyn(true, '  t: [ imp.unmap ]');
    expectBug(r, 'api-misuse');
    expect(first(r, 'api-misuse').message).toBe('WARNING: dma_dynamic_unmap: unmap without a mapping');
  });

  it('ops: map twice is api-misuse', () => {
    const r = dyn(true, '  t: [ imp.map, imp.map, imp.unmap ]');
    expectBug(r, 'api-misuse');
    expect(first(r, 'api-misuse').message).toBe('WARNING: dma_dynamic_map: mapped again while already mapped');
  });

  it('ops: map without unmap leaks the mapping at detach', () => {
    const r = dyn(true, '  t: [ imp.map, { imp.dma: { page: 0 } } ]');
    expectBug(r, 'leak');
    expect(first(r, 'leak').message).toBe('imp detached with 1 mapping(s) not unmapped');
  });

  it('ops: map, dma, dma, unmap is safe', () => {
    expectSafe(dyn(true, '  t: [ imp.map, { imp.dma: { page: 0 } }, { imp.dma: { page: 0 } }, imp.unmap ]'));
  });
});

describe('importer kvm', () => {
  const kvmVsMove = (options: string, vcpu = '{ imp.access: { page: 0 } }', exp?: string) =>
    run(
      scenario({
        driver: 'kvm',
        options,
        threads: `  vcpu0: [ ${vcpu} ]\n  evictor: [ bo.move ]`,
        ...(exp ? { expect: exp } : {}),
      }),
    );

  describe('get_pfn', () => {
    const noPfn = (getPfn: string) =>
      run(
        scenario({
          exporter: './no-pfn.ts',
          driver: 'kvm',
          options: `get_pfn: ${getPfn}`,
          threads: '  vcpu0: [ { imp.access: { page: 0 } } ]',
        }),
      );

    it('unlocked calls dma_buf_get_pfn_unlocked ([P3])', () => {
      const r = noPfn('unlocked');
      expectBug(r, 'api-misuse');
      expect(r.findings.map((f) => f.message)).toEqual([
        'WARNING: dma_buf_get_pfn_unlocked: exporter no-pfn has no get_pfn',
      ]);
    });

    it('locked takes resv and calls dma_buf_get_pfn ([P4])', () => {
      const r = noPfn('locked');
      expectBug(r, 'api-misuse');
      expect(r.findings.map((f) => f.message)).toEqual(['WARNING: dma_buf_get_pfn: exporter no-pfn has no get_pfn']);
    });

    it('both are safe against a move with the seq re-check ([K5])', () => {
      expectSafe(kvmVsMove('get_pfn: unlocked, invalidate_retry: true'));
      expectSafe(kvmVsMove('get_pfn: locked, invalidate_retry: true'));
    });

    it('hold_resv_across_install needs get_pfn: locked', () => {
      expect(() =>
        fromYaml(scenario({ driver: 'kvm', options: 'hold_resv_across_install: true', threads: '  t: [ bo.move ]' })),
      ).toThrow(/hold_resv_across_install: true needs get_pfn: locked/);
    });
  });

  describe('invalidate_retry', () => {
    it('false: the PFN resolved before the move is installed and touched after it ([K4], [K6] i)', () => {
      const r = kvmVsMove('invalidate_retry: false');
      expectBug(r, 'use-after-free');
      expect(first(r, 'use-after-free').thread).toBe('vcpu0');
    });

    it('true: the re-check under mmu_lock rejects it and the vCPU refaults ([K3], [K5])', () => {
      expectSafe(kvmVsMove('invalidate_retry: true'));
    });
  });

  describe('hold_resv_across_install', () => {
    it('false (get_pfn: locked, no re-check): the move runs between get_pfn and install ([P4], [K6] i)', () => {
      expectBug(
        kvmVsMove('get_pfn: locked, invalidate_retry: false, hold_resv_across_install: false'),
        'use-after-free',
      );
    });

    it('true: resv held until the SPTE is installed, so the move waits and then zaps it ([P4])', () => {
      expectSafe(kvmVsMove('get_pfn: locked, invalidate_retry: false, hold_resv_across_install: true'));
    });
  });

  describe('zap_on_invalidate', () => {
    const faultThenMove = (zap: boolean) =>
      run(
        scenario({
          driver: 'kvm',
          options: `zap_on_invalidate: ${zap}`,
          threads: '  t: [ { imp.fault: { page: 0 } }, bo.move ]',
        }),
      );

    it('false: the SPTE survives the move and maps the freed frame ([K2], [I1])', () => {
      const r = faultThenMove(false);
      expectBug(r, 'stale-mapping');
      expect(codes(r)).not.toContain('use-after-free');
    });

    it('true: the callback zaps it first ([K2])', () => {
      expectSafe(faultThenMove(true));
    });

    it('false against a vfio revoke: the guest keeps touching the BAR ([I25], [V6])', () => {
      const r = run(
        scenario({
          exporter: 'vfio-pci',
          driver: 'kvm',
          options: 'zap_on_invalidate: false',
          threads: '  vcpu0: [ { imp.access: { page: 0 } }, { imp.access: { page: 0 } } ]\n  vmm: [ bo.revoke ]',
          expect: '{ verdict: bug, finding: access-after-revoke }',
        }),
      );
      expectBug(r, 'access-after-revoke');
      expect(r.met).toBe(true);
    });

    it('true against the same revoke: safe ([V6])', () => {
      expectSafe(
        run(
          scenario({
            exporter: 'vfio-pci',
            driver: 'kvm',
            options: 'zap_on_invalidate: true',
            threads: '  vcpu0: [ { imp.access: { page: 0 } }, { imp.access: { page: 0 } } ]\n  vmm: [ bo.revoke ]',
          }),
        ),
      );
    });
  });

  describe('attach_mode', () => {
    const twoAccesses = '{ imp.access: { page: 0 } }, { imp.access: { page: 0 } }';

    it('static: no invalidate callback, the move never tells KVM ([K6] ii)', () => {
      const r = kvmVsMove('attach_mode: static', twoAccesses, '{ verdict: bug, finding: use-after-free }');
      expectBug(r, 'use-after-free');
      expect(r.met).toBe(true);
    });

    it('dynamic (default): the invalidate zaps and bumps the sequence ([K2])', () => {
      expectSafe(kvmVsMove('attach_mode: dynamic', twoAccesses));
    });

    it('static on vfio-pci is refused at setup: not revocable ([V4])', () => {
      const r = run(
        scenario({
          exporter: 'vfio-pci',
          driver: 'kvm',
          options: 'attach_mode: static',
          threads: '  t: [ { imp.access: { page: 0 } } ]',
        }),
      );
      expectBug(r, 'api-misuse');
      expect(first(r, 'api-misuse').message).toBe(
        'WARNING: dma_buf_attach: setup: vfio-pci refused kvm importer imp: dma_buf_attach returned -EOPNOTSUPP',
      );
    });

    it('static on a system-heap buffer that never moves is safe ([K6] ii: "hard pinned memory")', () => {
      expectSafe(
        run(
          scenario({
            exporter: 'system-heap',
            driver: 'kvm',
            options: 'attach_mode: static',
            threads: `  t: [ ${twoAccesses} ]`,
          }),
        ),
      );
    });
  });

  describe('invalidate_takes_resv', () => {
    it('true: the callback re-locks the resv the mover holds: deadlock ([L10], [I15])', () => {
      const r = kvmVsMove('invalidate_takes_resv: true');
      expectBug(r, 'deadlock');
      expect(first(r, 'deadlock').message).toContain('possible recursive locking detected');
    });

    it('false (default): safe', () => {
      expectSafe(kvmVsMove('invalidate_takes_resv: false'));
    });
  });

  describe('ops access and fault', () => {
    const seq = (ops: string) =>
      run(scenario({ driver: 'kvm', options: 'zap_on_invalidate: false', threads: `  t: [ ${ops} ]` }));

    it('fault installs the SPTE without touching the page: only a stale mapping', () => {
      const r = seq('{ imp.fault: { page: 0 } }, bo.move');
      expect(codes(r)).toEqual(['stale-mapping']);
    });

    it('access touches the page through the stale SPTE: use-after-free ([I2])', () => {
      const r = seq('{ imp.fault: { page: 0 } }, bo.move, { imp.access: { page: 0 } }');
      expectBug(r, 'use-after-free');
      expect(first(r, 'use-after-free').message).toContain("guest access to pfn 0x800000 through imp's spte");
    });

    it('access alone, with no move, is safe', () => {
      expectSafe(seq('{ imp.access: { page: 0 } }, { imp.fault: { page: 0 } }, { imp.access: { page: 0 } }'));
    });
  });
});

describe('importer cpu-mmap (ops access, munmap)', () => {
  it('access against a concurrent move: TTM zaps and the user refaults ([C4])', () => {
    expectSafe(
      run(
        scenario({
          driver: 'cpu-mmap',
          threads: '  user: [ { imp.access: { page: 0 } }, { imp.access: { page: 0 } } ]\n  evictor: [ bo.move ]',
        }),
      ),
    );
  });

  const puts = (ops: string) =>
    run(scenario({ exporter: 'system-heap', driver: 'cpu-mmap', threads: `  user: [ ${ops} ]` }));

  it('munmap drops the file reference the mapping held ([C1], [LT1]): a second put then underflows', () => {
    const r = puts('{ imp.access: { page: 0 } }, imp.munmap, bo.put, bo.put');
    expectBug(r, 'refcount');
    expect(codes(r)).not.toContain('stale-mapping');
    expect(first(r, 'refcount').thread).toBe('user');
  });

  it('without munmap the second put drops the mapping’s reference: the pages are freed under its PTE', () => {
    const r = puts('{ imp.access: { page: 0 } }, bo.put, bo.put');
    expectBug(r, 'stale-mapping');
    expect(first(r, 'stale-mapping').message).toMatch(/frees pfn 0x100000 while imp's pte for bo page 0 still maps it/);
  });

  it('munmap, then the owner’s single put: safe', () => {
    expectSafe(puts('{ imp.access: { page: 0 } }, imp.munmap, bo.put'));
  });

  it('access after munmap finds no VMA (SIGSEGV), not a finding', () => {
    expectSafe(puts('imp.munmap, { imp.access: { page: 0 } }'));
  });
});

describe('importer rogue-mmap', () => {
  const rogue = (options: string, threads: string, exporter = 'ttm') =>
    run(scenario({ exporter, driver: 'rogue-mmap', options, threads }));
  const vsMove = '  user: [ { imp.access: { page: 0 } }, { imp.access: { page: 0 } } ]\n  evictor: [ bo.move ]';

  describe('get_pfn', () => {
    it('unlocked calls dma_buf_get_pfn_unlocked', () => {
      const r = rogue('get_pfn: unlocked', '  user: [ { imp.access: { page: 0 } } ]', './no-pfn.ts');
      expect(r.findings.map((f) => f.message)).toEqual([
        'WARNING: dma_buf_get_pfn_unlocked: exporter no-pfn has no get_pfn',
      ]);
    });

    it('locked takes resv and calls dma_buf_get_pfn', () => {
      const r = rogue('get_pfn: locked', '  user: [ { imp.access: { page: 0 } } ]', './no-pfn.ts');
      expect(r.findings.map((f) => f.message)).toEqual(['WARNING: dma_buf_get_pfn: exporter no-pfn has no get_pfn']);
    });

    it('either way its own PTE survives the move: use-after-free ([C5])', () => {
      for (const g of ['unlocked', 'locked']) {
        const r = rogue(`get_pfn: ${g}`, `${vsMove}\nexpect: { verdict: bug, finding: use-after-free }`);
        expectBug(r, 'use-after-free');
        expect(first(r, 'use-after-free').message).toContain("cpu access to pfn 0x800000 through imp's pte");
      }
    });
  });

  describe('hold_resv_while_mapped', () => {
    it('true: the fault handler returns holding resv ([L14], [I18])', () => {
      const r = rogue('hold_resv_while_mapped: true', '  user: [ { imp.access: { page: 0 } } ]');
      expectBug(r, 'lock-held-on-return');
      expect(r.findings[0]?.message).toBe('rogue_vm_fault returned to the page-fault path with bo->resv still held');
    });

    it('false: it drops resv before returning: safe without a move', () => {
      expectSafe(rogue('hold_resv_while_mapped: false', '  user: [ { imp.access: { page: 0 } } ]'));
    });
  });

  it('access on a buffer that never moves is safe ([C2] a)', () => {
    expectSafe(rogue('', '  user: [ { imp.access: { page: 0 } }, { imp.access: { page: 0 } } ]', 'system-heap'));
  });
});

// ===========================================================================
// Every importer: options.attach auto|manual, ops attach (manual) and detach
// ===========================================================================

describe('attach: auto | manual', () => {
  it('dma-static manual: not attached, so dma does nothing; auto: dma without map is api-misuse', () => {
    expectSafe(
      run(scenario({ driver: 'dma-static', options: 'attach: manual', threads: '  t: [ { imp.dma: { page: 0 } } ]' })),
    );
    expectBug(
      run(scenario({ driver: 'dma-static', options: 'attach: auto', threads: '  t: [ { imp.dma: { page: 0 } } ]' })),
      'api-misuse',
    );
  });

  it('dma-static manual attach op: attach, map, dma, unmap is safe', () => {
    expectSafe(
      run(
        scenario({
          driver: 'dma-static',
          options: 'attach: manual',
          threads: '  t: [ imp.attach, imp.map, { imp.dma: { page: 0 } }, imp.unmap ]',
        }),
      ),
    );
  });

  it('dma-static manual on vfio-pci: a refused attach in a thread is not a finding; at setup (auto) it is', () => {
    const threads = '  t: [ imp.attach, imp.map, { imp.dma: { page: 0 } } ]';
    expectSafe(run(scenario({ exporter: 'vfio-pci', driver: 'dma-static', options: 'attach: manual', threads })));
    const auto = scenario({
      exporter: 'vfio-pci',
      driver: 'dma-static',
      threads: '  t: [ imp.map, { imp.dma: { page: 0 } } ]',
    });
    expectBug(run(auto), 'api-misuse');
  });

  it('attach is an op only with attach: manual', () => {
    expect(() => fromYaml(scenario({ driver: 'dma-static', threads: '  t: [ imp.attach ]' }))).toThrow(
      /has no op "attach".*options: \{ attach: manual \}/,
    );
  });

  it('dma-dynamic manual: dma before attach does nothing; after attach and map it runs', () => {
    expectSafe(
      run(scenario({ driver: 'dma-dynamic', options: 'attach: manual', threads: '  t: [ { imp.dma: { page: 0 } } ]' })),
    );
    expectBug(
      run(scenario({ driver: 'dma-dynamic', options: 'attach: auto', threads: '  t: [ { imp.dma: { page: 0 } } ]' })),
      'api-misuse',
    );
    expectSafe(
      run(
        scenario({
          driver: 'dma-dynamic',
          options: 'attach: manual',
          threads: '  t: [ imp.attach, imp.map, { imp.dma: { page: 0 } }, imp.unmap ]\n  evictor: [ bo.move ]',
        }),
      ),
    );
  });

  it('kvm manual: without the bind the guest access fails (-EFAULT), so no stale PFN even without re-check', () => {
    const threads = (ops: string) => `  vcpu0: [ ${ops} ]\n  evictor: [ bo.move ]`;
    expectSafe(
      run(
        scenario({
          driver: 'kvm',
          options: 'attach: manual, invalidate_retry: false',
          threads: threads('{ imp.access: { page: 0 } }'),
        }),
      ),
    );
    expectBug(
      run(
        scenario({
          driver: 'kvm',
          options: 'attach: auto, invalidate_retry: false',
          threads: threads('{ imp.access: { page: 0 } }'),
        }),
      ),
      'use-after-free',
    );
  });

  it('kvm manual attach op racing a move, with and without the re-check ([K1], [K5])', () => {
    const ops = (retry: boolean) =>
      scenario({
        driver: 'kvm',
        options: `attach: manual, invalidate_retry: ${retry}`,
        threads: '  vcpu0: [ imp.attach, { imp.access: { page: 0 } } ]\n  evictor: [ bo.move ]',
      });
    expectSafe(run(ops(true)));
    expectBug(run(ops(false)), 'use-after-free');
  });

  it('cpu-mmap manual: attach (dma_buf_mmap) after the last put is a use after release ([C1], [I7])', () => {
    const threads = '  user: [ bo.put, imp.attach, { imp.access: { page: 0 } } ]';
    const r = run(scenario({ exporter: 'system-heap', driver: 'cpu-mmap', options: 'attach: manual', threads }));
    expectBug(r, 'refcount');
    expect(r.findings.map((f) => f.message)).toContain('get_dma_buf on bo after its release');
  });

  it('cpu-mmap manual: attach before the put keeps the buffer alive (the mapping holds a reference)', () => {
    const threads = '  user: [ imp.attach, bo.put, { imp.access: { page: 0 } } ]';
    expectSafe(run(scenario({ exporter: 'system-heap', driver: 'cpu-mmap', options: 'attach: manual', threads })));
  });

  it('rogue-mmap manual: the fault handler finds no attachment and SIGBUSes; auto: use-after-free', () => {
    const threads = '  user: [ { imp.access: { page: 0 } }, { imp.access: { page: 0 } } ]\n  evictor: [ bo.move ]';
    expectSafe(run(scenario({ driver: 'rogue-mmap', options: 'attach: manual', threads })));
    const uaf = '{ verdict: bug, finding: use-after-free }';
    expectBug(run(scenario({ driver: 'rogue-mmap', options: 'attach: auto', threads, expect: uaf })), 'use-after-free');
  });

  it('rogue-mmap manual attach op: attaching first brings the bug back ([C5])', () => {
    const threads =
      '  user: [ imp.attach, { imp.access: { page: 0 } }, { imp.access: { page: 0 } } ]\n  evictor: [ bo.move ]';
    const r = run(
      scenario({
        driver: 'rogue-mmap',
        options: 'attach: manual',
        threads,
        expect: '{ verdict: bug, finding: use-after-free }',
      }),
    );
    expectBug(r, 'use-after-free');
    expect(r.met).toBe(true);
  });
});

describe('detach', () => {
  it('dma-static: ops after detach do nothing; before it, dma without map is api-misuse', () => {
    expectSafe(run(scenario({ driver: 'dma-static', threads: '  t: [ imp.detach, { imp.dma: { page: 0 } } ]' })));
    expectBug(
      run(scenario({ driver: 'dma-static', threads: '  t: [ { imp.dma: { page: 0 } }, imp.detach ]' })),
      'api-misuse',
    );
  });

  it('dma-static: detach with a mapping left is a leak found in the thread ([LT3], [I9])', () => {
    const r = run(scenario({ driver: 'dma-static', threads: '  t: [ imp.map, imp.detach ]' }));
    expectBug(r, 'leak');
    expect(first(r, 'leak').thread).toBe('t');
    expectSafe(run(scenario({ driver: 'dma-static', threads: '  t: [ imp.map, imp.unmap, imp.detach ]' })));
  });

  it('dma-dynamic: ops after detach do nothing; before it, dma without map is api-misuse', () => {
    expectSafe(run(scenario({ driver: 'dma-dynamic', threads: '  t: [ imp.detach, { imp.dma: { page: 0 } } ]' })));
    expectBug(
      run(scenario({ driver: 'dma-dynamic', threads: '  t: [ { imp.dma: { page: 0 } }, imp.detach ]' })),
      'api-misuse',
    );
  });

  it('kvm: after detach the guest access fails, so the move cannot leave a stale PFN ([K1])', () => {
    const threads = (ops: string) => `  vcpu0: [ ${ops} ]\n  evictor: [ bo.move ]`;
    expectSafe(
      run(
        scenario({
          driver: 'kvm',
          options: 'invalidate_retry: false',
          threads: threads('imp.detach, { imp.access: { page: 0 } }'),
        }),
      ),
    );
    expectBug(
      run(
        scenario({
          driver: 'kvm',
          options: 'invalidate_retry: false',
          threads: threads('{ imp.access: { page: 0 } }, imp.detach'),
        }),
      ),
      'use-after-free',
    );
  });

  it('kvm: detach zaps the SPTEs even when invalidate does not ([K1])', () => {
    const ops = (detach: boolean) =>
      scenario({
        driver: 'kvm',
        options: 'zap_on_invalidate: false',
        threads: `  t: [ { imp.fault: { page: 0 } }, ${detach ? 'imp.detach, ' : ''}bo.move ]`,
      });
    expectSafe(run(ops(true)));
    expectBug(run(ops(false)), 'stale-mapping');
  });

  it('cpu-mmap: detach is munmap (drops the mapping’s reference)', () => {
    const r = run(
      scenario({
        exporter: 'system-heap',
        driver: 'cpu-mmap',
        threads: '  user: [ { imp.access: { page: 0 } }, imp.detach, bo.put, bo.put ]',
      }),
    );
    expectBug(r, 'refcount');
    expect(codes(r)).not.toContain('stale-mapping');
  });

  it('rogue-mmap: after detach its fault handler has nothing to map', () => {
    const threads = (ops: string) => `  user: [ ${ops} ]\n  evictor: [ bo.move ]`;
    expectSafe(run(scenario({ driver: 'rogue-mmap', threads: threads('imp.detach, { imp.access: { page: 0 } }') })));
    expectBug(
      run(
        scenario({
          driver: 'rogue-mmap',
          threads: `${threads('{ imp.access: { page: 0 } }, imp.detach, { imp.access: { page: 0 } }')}\nexpect: { verdict: bug, finding: use-after-free }`,
        }),
      ),
      'use-after-free',
    );
  });
});

// ===========================================================================
// Buffers: get / put; mm.alloc
// ===========================================================================

describe('buffer ops get and put', () => {
  const buf = (ops: string) =>
    run(`
name: refs
buffers: { bo: { exporter: ttm } }
threads:
  t: [ ${ops} ]
`);

  it('get without put leaks a reference at teardown ([LT1])', () => {
    const r = buf('bo.get');
    expectBug(r, 'leak');
    expect(first(r, 'leak').message).toBe('1 reference(s) to bo never dropped: the buffer is never released');
  });

  it('get then put is balanced', () => {
    expectSafe(buf('bo.get, bo.put'));
  });

  it('put drops the initial reference: teardown does not drop it again', () => {
    expectSafe(buf('bo.put'));
  });

  it('put twice underflows ([I7])', () => {
    expectBug(buf('bo.put, bo.put'), 'refcount');
  });
});

describe('mm.alloc', () => {
  const stale = (alloc: string, opts: { pages?: number; page?: number; placement?: string; extra?: string } = {}) =>
    run(`
name: realloc
buffers:
  bo: { exporter: ttm, pages: ${opts.pages ?? 1}, options: { placement: ${opts.placement ?? 'vram'} } }
${opts.extra ?? ''}
importers:
  kvm: { driver: kvm, buffer: bo, options: { zap_on_invalidate: false } }
threads:
  t: [ { kvm.fault: { page: ${opts.page ?? 0} } }, bo.move, ${alloc ? `${alloc}, ` : ''}{ kvm.access: { page: ${opts.page ?? 0} } } ]
`);

  const uaf = (r: CheckResult) => first(r, 'use-after-free') as UseAfterFreeFinding & ReportedFinding;

  it('without it the freed frame stays free: the use-after-free shows no reallocation', () => {
    const r = stale('');
    expectBug(r, 'use-after-free');
    expect(uaf(r).reused).toBeNull();
  });

  it('reuses the freed frame from the buffer’s pool: the report names the new owner', () => {
    const r = stale('{ mm.alloc: { pages: 1 } }');
    expectBug(r, 'use-after-free');
    const f = uaf(r);
    expect(f.reused?.owner).toBe('mm.alloc by t page 0');
    expect(f.reused?.thread).toBe('t');
  });

  it('pool: system does not reuse a VRAM frame; pool: vram does', () => {
    expect(uaf(stale('{ mm.alloc: { pages: 1, pool: system } }')).reused).toBeNull();
    expect(uaf(stale('{ mm.alloc: { pages: 1, pool: vram } }')).reused).not.toBeNull();
  });

  it('pool follows the placement: a system-placed buffer frees system frames', () => {
    expect(uaf(stale('{ mm.alloc: { pages: 1, pool: system } }', { placement: 'system' })).reused).not.toBeNull();
    expect(uaf(stale('{ mm.alloc: { pages: 1, pool: vram } }', { placement: 'system' })).reused).toBeNull();
  });

  it('buffer: takes from the named buffer’s pool', () => {
    const extra = '  heap: { exporter: system-heap }';
    expect(uaf(stale('{ mm.alloc: { pages: 1, buffer: heap } }', { extra })).reused).toBeNull();
    expect(uaf(stale('{ mm.alloc: { pages: 1, buffer: bo } }', { extra })).reused).not.toBeNull();
  });

  it('pages: the most recently freed frames are reused first, so one page is not enough for page 0', () => {
    // Two pages freed in order 0, 1: a one-page allocation takes page 1's frame.
    expect(uaf(stale('{ mm.alloc: { pages: 1 } }', { pages: 2, page: 0 })).reused).toBeNull();
    expect(uaf(stale('{ mm.alloc: { pages: 1 } }', { pages: 2, page: 1 })).reused).not.toBeNull();
    expect(uaf(stale('{ mm.alloc: { pages: 2 } }', { pages: 2, page: 0 })).reused).not.toBeNull();
  });
});

describe('dma-dynamic wait_in_job', () => {
  const yaml = (opt: string) => `
name: job
buffers: { bo: { exporter: ttm } }
importers: { gpu: { driver: dma-dynamic, buffer: bo${opt} } }
threads:
  driver: [gpu.map, { gpu.dma: { page: 0 } }, gpu.unmap]
`;
  it("true: the running job waits inside its own fence's signalling section ([L11] a, [I21])", () => {
    expectBug(check(fromYaml(yaml(', options: { wait_in_job: true }'))), 'wait-in-signalling');
  });
  it('false (default): the job waits before publishing its fence', () => {
    expectSafe(check(fromYaml(yaml(''))));
  });
});
