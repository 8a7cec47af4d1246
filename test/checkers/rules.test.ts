/**
 * Tests for the rules docs/rules.md lists under GAPS as "implemented or
 * checked, but no test", run as scenarios through the explorer. Each test is
 * named after the rule id(s) it covers; a "trips" test is paired with a
 * near-identical one that does not. The driver modules (`rules-exporter`,
 * `rules-probe`) are in rules-drivers.ts; the checks that need no scenario (a
 * kernel function called directly) are in rules-kernel.test.ts.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { EBUSY, EINVAL, ENOENT, ENOMEM, type Gfp } from '../../src/index.ts';
import { codes, expectBug, expectSafe, first } from '../helpers.ts';
import { exploreWith, log, logged, run, runAll, scenario } from './rules-drivers.ts';

beforeEach(() => {
  log.length = 0;
});

// ---------------------------------------------------------------------------
// [L5] the attachment list changes only under resv
// ---------------------------------------------------------------------------

describe('[L5] the attachment list is changed only under resv', () => {
  const racing = (observe: string) =>
    scenario(`  t1: [ p.${observe} ]\n  t2: [ q.attach, q.detach ]`, {
      extra: '  q: { driver: ./rules-probe.ts, buffer: bo, options: { attach: manual } }\n',
    });

  it('[L5] a reader holding resv never sees an attach or detach happen under it, in any interleaving', () => {
    const r = runAll(racing('observe_locked'));
    expectSafe(r);
    const seen = logged('observe');
    expect(seen.length).toBeGreaterThan(1);
    for (const e of seen) expect(e.after).toEqual(e.before);
    // The attach and detach did run around the hold: before it, between them, after both.
    expect(new Set(seen.map((e) => JSON.stringify(e.before)))).toEqual(
      new Set([JSON.stringify(['p']), JSON.stringify(['p', 'q'])]),
    );
  });

  it('[L5] the same reader without resv sees the list change between its two reads', () => {
    const r = runAll(racing('observe_unlocked'));
    expectSafe(r);
    const changed = logged('observe').filter((e) => JSON.stringify(e.after) !== JSON.stringify(e.before));
    expect(changed.length).toBeGreaterThan(0);
  });
});

// ---------------------------------------------------------------------------
// [LT7] the core waits for KERNEL fences after a static importer's map
// ---------------------------------------------------------------------------

describe('[LT7] the KERNEL-fence wait after a static map', () => {
  const racing = (mode: 'static' | 'dynamic') =>
    scenario('  t1: [ p.map_locked, p.unmap_locked ]\n  t2: [ bo.signal_fence ]', {
      bufferOptions: 'kernel_fence: true',
      options: `attach_mode: ${mode}`,
    });

  it('[LT7] static: the map does not return before another thread signals the pending KERNEL fence', () => {
    const r = runAll(racing('static'));
    expectSafe(r);
    const maps = logged('map');
    expect(maps.length).toBeGreaterThan(1);
    for (const m of maps) expect(m).toMatchObject({ ret: 0, after: true, mappings: 1 });
    // Some executions called the map before the signal: it waited for it.
    expect(maps.some((m) => m.before === false)).toBe(true);
  });

  it('[LT7] dynamic: no wait: the map can return with the KERNEL fence still pending', () => {
    const r = runAll(racing('dynamic'));
    expectSafe(r);
    const maps = logged('map');
    for (const m of maps) expect(m).toMatchObject({ ret: 0, mappings: 1 });
    expect(maps.some((m) => m.before === false && m.after === false)).toBe(true);
  });

  it('[LT7] trips: a static map of a buffer whose KERNEL fence nobody signals waits for ever', () => {
    const r = run(
      scenario('  t: [ p.map_locked, p.unmap_locked ]', {
        bufferOptions: 'kernel_fence: true',
        options: 'attach_mode: static',
      }),
    );
    expectBug(r, 'deadlock');
    const f = first(r, 'deadlock');
    expect(f.message).toBe('deadlock: t waits for bo:move');
    expect(f.stack).toContain('dma_buf_map_attachment');
    expect(logged('map')).toEqual([]);
  });

  it('[LT7] does not trip: a dynamic attachment maps past the same unsignalled fence', () => {
    const r = run(
      scenario('  t: [ p.map_locked, p.unmap_locked ]', {
        bufferOptions: 'kernel_fence: true',
        options: 'attach_mode: dynamic',
      }),
    );
    expectSafe(r);
    expect(logged('map')).toEqual([{ op: 'map', before: false, after: false, ret: 0, pins: 0, mappings: 1 }]);
  });

  it('[LT7] [LT6] static on a dynamic exporter: pinned for the map, then the wait; unpinned by the unmap', () => {
    const r = runAll(
      scenario('  t1: [ p.map_locked, p.unmap_locked ]\n  t2: [ bo.signal_fence ]', {
        bufferOptions: 'kernel_fence: true, dynamic: true',
        options: 'attach_mode: static',
      }),
    );
    expectSafe(r);
    for (const m of logged('map')) expect(m).toMatchObject({ ret: 0, after: true, pins: 1, mappings: 1 });
    const unmaps = logged('unmap');
    expect(unmaps.length).toBe(logged('map').length);
    for (const u of unmaps) expect(u).toMatchObject({ pins: 0, mappings: 0 });
  });
});

// ---------------------------------------------------------------------------
// [P2] / [O2] / [O5] export-time validation, NULL dev, map without map_dma_buf
// ---------------------------------------------------------------------------

describe('[P2] [O2] [O5] export validation and the get_pfn-only exporter', () => {
  const refused: readonly (readonly [string, string, string])[] = [
    ['no_release', 'exporter has no release op', 'O2'],
    ['map_without_unmap', 'map_dma_buf and unmap_dma_buf must both be present or both absent', 'P2'],
    ['no_map_no_pfn', 'exporter has neither map_dma_buf nor get_pfn', 'P2'],
    ['pin_without_unpin', 'pin and unpin must both be present or both absent', 'O2'],
  ];
  for (const [variant, reason, rule] of refused) {
    it(`[${rule}] trips at setup: ${variant} — dma_buf_export WARNs and returns -EINVAL`, () => {
      const r = run(scenario('  t: [ p.map_locked, p.unmap_locked ]', { bufferOptions: `ops: ${variant}` }));
      expectBug(r, 'api-misuse');
      expect(r.findings.map((f) => f.message)).toEqual([
        `WARNING: dma_buf_export: ${reason}`,
        'WARNING: dma_buf_export: setup: exporter rules-exporter could not export bo (-EINVAL)',
      ]);
      expect(r.findings[0]?.rules).toEqual(['O2', 'P2']);
      expect(logged('map')).toEqual([]);
    });
  }

  it('[O2] does not trip: the full set of ops exports, maps and unmaps', () => {
    const r = run(scenario('  t: [ p.map_locked, p.unmap_locked ]', { bufferOptions: 'ops: full' }));
    expectSafe(r);
    expect(logged('map')).toEqual([{ op: 'map', before: null, after: null, ret: 0, pins: 0, mappings: 1 }]);
  });

  it('[P2] does not trip: a get_pfn-only exporter (no map_dma_buf, no unmap_dma_buf) exports; get_pfn works', () => {
    const r = run(scenario('  t: [ { p.get_pfn_unlocked: { page: 0 } } ]', { bufferOptions: 'ops: pfn_only' }));
    expectSafe(r);
    expect(logged('get_pfn')).toEqual([expect.objectContaining({ ret: 0, max_order: 0, owner: 'bo (rules) page 0' })]);
  });

  it('[P2] trips: dma_buf_map_attachment on an exporter without map_dma_buf WARNs and returns -EINVAL', () => {
    const r = run(scenario('  t: [ p.map_locked ]', { bufferOptions: 'ops: pfn_only' }));
    expectBug(r, 'api-misuse');
    expect(codes(r)).toEqual(['api-misuse']);
    const f = first(r, 'api-misuse');
    expect(f.message).toBe('WARNING: dma_buf_map_attachment: exporter rules has no map_dma_buf');
    expect(f.rules).toContain('P2');
    expect(logged('map')).toEqual([{ op: 'map', before: null, after: null, ret: -EINVAL, pins: 0, mappings: 0 }]);
  });

  it('[O5] [P2] trips at setup: a NULL dev for an exporter with map_dma_buf', () => {
    const r = run(scenario('  t: [ p.map_locked, p.unmap_locked ]', { options: 'null_dev: true' }));
    expectBug(r, 'api-misuse');
    expect(r.findings.map((f) => f.message)).toEqual([
      'WARNING: dma_buf_dynamic_attach: NULL device for an exporter with map_dma_buf',
      'WARNING: dma_buf_dynamic_attach: setup: rules-exporter refused rules-probe importer p: dma_buf_dynamic_attach returned -EINVAL',
    ]);
    expect(r.findings[0]?.rules).toEqual(['O5', 'P2']);
  });

  it('[O5] [P2] trips at setup: the same for a static attachment (dma_buf_attach)', () => {
    const r = run(
      scenario('  t: [ p.map_locked, p.unmap_locked ]', { options: 'null_dev: true, attach_mode: static' }),
    );
    expectBug(r, 'api-misuse');
    expect(r.findings.map((f) => f.message)).toEqual([
      'WARNING: dma_buf_dynamic_attach: NULL device for an exporter with map_dma_buf',
      'WARNING: dma_buf_attach: setup: rules-exporter refused rules-probe importer p: dma_buf_attach returned -EINVAL',
    ]);
  });

  it('[O5] [P2] does not trip: a NULL dev is accepted when the exporter has no map_dma_buf', () => {
    for (const mode of ['dynamic', 'static']) {
      log.length = 0;
      const r = run(
        scenario('  t: [ { p.get_pfn_unlocked: { page: 0 } } ]', {
          bufferOptions: 'ops: pfn_only',
          options: `null_dev: true, attach_mode: ${mode}`,
        }),
      );
      expectSafe(r);
      expect(logged('get_pfn')).toEqual([expect.objectContaining({ ret: 0, owner: 'bo (rules) page 0' })]);
    }
  });
});

// ---------------------------------------------------------------------------
// [L11] (c) / [I22]: no blocking allocation in a signalling section
// ---------------------------------------------------------------------------

describe('[L11] (c) [I22] allocations inside a fence signalling critical section', () => {
  const alloc = (op: string, gfp: Gfp) => scenario(`  t: [ { p.${op}: { gfp: ${gfp} } } ]`);

  it('[L11] c [I22] trips: alloc_pages with the default GFP_KERNEL inside dma_fence_begin_signalling', () => {
    const r = run(alloc('alloc_in_signalling', 'GFP_KERNEL'));
    expectBug(r, 'wait-in-signalling');
    expect(codes(r)).toEqual(['wait-in-signalling', 'lock-order']);
    const f = first(r, 'wait-in-signalling');
    expect(f.message).toBe(
      'GFP_KERNEL allocation inside a dma_fence signalling critical section (only GFP_ATOMIC/GFP_NOWAIT may be used there)',
    );
    expect(f.rules).toEqual(['L11', 'I22']);
    expect(f.stack).toContain('rules_probe_alloc_in_signalling');
    // might_alloc's fs_reclaim, taken under the section's dma_fence_map, against the primed
    // fs_reclaim → i_mmap_rwsem → mmu_notifier → dma_fence_map chain ([L8]).
    expect(first(r, 'lock-order').message).toBe(
      'possible circular locking dependency detected: fs_reclaim taken while holding dma_fence_map',
    );
  });

  it('[L11] c [I22] trips: GFP_NOFS and GFP_NOIO may block as well', () => {
    for (const gfp of ['GFP_NOFS', 'GFP_NOIO'] as const) {
      const r = run(alloc('alloc_in_signalling', gfp));
      expectBug(r, 'wait-in-signalling');
      expect(first(r, 'wait-in-signalling').message).toBe(
        `${gfp} allocation inside a dma_fence signalling critical section (only GFP_ATOMIC/GFP_NOWAIT may be used there)`,
      );
    }
  });

  it('[L11] c does not trip: GFP_ATOMIC and GFP_NOWAIT inside the section', () => {
    expectSafe(run(alloc('alloc_in_signalling', 'GFP_ATOMIC')));
    expectSafe(run(alloc('alloc_in_signalling', 'GFP_NOWAIT')));
  });

  it('[L11] c does not trip: the same GFP_KERNEL allocation outside any section', () => {
    expectSafe(run(alloc('alloc', 'GFP_KERNEL')));
  });
});

// ---------------------------------------------------------------------------
// [L11] (d): nothing ordered after a fence wait inside a signalling section
// ---------------------------------------------------------------------------

describe('[L11] (d) a lock held around a fence wait and taken inside a signalling section', () => {
  it('[L11] d trips: rules->a held across a wait elsewhere, then taken in a section (lock-order via dma_fence_map)', () => {
    const r = run(scenario('  t: [ p.wait_holding_a, p.lock_a_in_signalling ]'));
    expectBug(r, 'lock-order');
    expect(codes(r)).toEqual(['lock-order']);
    const f = first(r, 'lock-order');
    expect(f.message).toBe('possible circular locking dependency detected: rules->a taken while holding dma_fence_map');
    expect(f.rules).toEqual(['I16', 'L8']);
    if (f.code !== 'lock-order') throw new Error('not lock-order');
    expect(f.kind).toBe('circular');
    expect(f.chain.map((d) => [d.from, d.to])).toEqual([
      ['rules->a', 'dma_fence_map'],
      ['dma_fence_map', 'rules->a'],
    ]);
  });

  it('[L11] d trips in the other order: the section first, then the wait under rules->a', () => {
    const r = run(scenario('  t: [ p.lock_a_in_signalling, p.wait_holding_a ]'));
    expectBug(r, 'lock-order');
    expect(first(r, 'lock-order').message).toBe(
      'possible circular locking dependency detected: dma_fence_map taken while holding rules->a',
    );
  });

  it('[L11] d trips across threads: one waits under rules->a, the other takes it in its section', () => {
    const r = run(scenario('  t1: [ p.wait_holding_a ]\n  t2: [ p.lock_a_in_signalling ]'));
    expectBug(r, 'lock-order');
    expect(first(r, 'lock-order').message).toMatch(
      /^possible circular locking dependency detected: (rules->a taken while holding dma_fence_map|dma_fence_map taken while holding rules->a)$/,
    );
  });

  it('[L11] d does not trip: the wait without rules->a held, and rules->a in the section', () => {
    expectSafe(run(scenario('  t: [ p.wait, p.lock_a_in_signalling ]')));
  });
});

// ---------------------------------------------------------------------------
// [L9]: the primed vfio/KVM orders, inverted
// ---------------------------------------------------------------------------

describe('[L9] the observed vfio and KVM orders are primed: an inversion is reported', () => {
  it('[L9] trips: resv taken under a kvm->mmu_lock-class lock, against the primed resv → mmu_lock', () => {
    const r = run(scenario('  t: [ p.mmu_lock_then_resv ]'));
    expectBug(r, 'lock-order');
    expect(codes(r)).toEqual(['lock-order']);
    const f = first(r, 'lock-order');
    expect(f.message).toBe(
      'possible circular locking dependency detected: reservation_ww_class_mutex taken while holding kvm->mmu_lock',
    );
    if (f.code !== 'lock-order') throw new Error('not lock-order');
    // The existing half of the cycle is the edge primed at boot (no origin).
    expect(f.chain[0]).toMatchObject({ from: 'reservation_ww_class_mutex', to: 'kvm->mmu_lock', seen: null });
  });

  it('[L9] does not trip: mmu_lock taken under resv, as the invalidate callback does', () => {
    expectSafe(run(scenario('  t: [ p.resv_then_mmu_lock ]')));
  });

  it('[L9] trips: vdev->memory_lock taken under resv, against the primed memory_lock → resv', () => {
    const r = run(scenario('  t: [ p.resv_then_memory_lock ]'));
    expectBug(r, 'lock-order');
    const f = first(r, 'lock-order');
    expect(f.message).toBe(
      'possible circular locking dependency detected: vdev->memory_lock taken while holding reservation_ww_class_mutex',
    );
    if (f.code !== 'lock-order') throw new Error('not lock-order');
    expect(f.chain[0]).toMatchObject({ from: 'vdev->memory_lock', to: 'reservation_ww_class_mutex', seen: null });
  });

  it('[L9] does not trip: memory_lock, then resv, as vfio revoke does', () => {
    expectSafe(run(scenario('  t: [ p.memory_lock_then_resv ]')));
  });

  it('[L9] trips: mmap_lock taken under memory_lock, against the primed mmap_lock → memory_lock', () => {
    const r = run(scenario('  t: [ p.memory_lock_then_mmap_lock ]'));
    expectBug(r, 'lock-order');
    expect(first(r, 'lock-order').message).toBe(
      'possible circular locking dependency detected: mmap_lock taken while holding vdev->memory_lock',
    );
  });

  it('[L9] does not trip: memory_lock under mmap_lock, as the vfio fault does', () => {
    expectSafe(run(scenario('  t: [ p.mmap_lock_then_memory_lock ]')));
  });
});

// ---------------------------------------------------------------------------
// [O6]: the legacy move_notify name
// ---------------------------------------------------------------------------

describe('[O6] move_notify, the pre-2026 name of invalidate_mappings', () => {
  it('[O6] dma_buf_move_notify and dma_buf_invalidate_mappings both call a move_notify-only importer', () => {
    const r = run(
      scenario('  t: [ p.map_locked, bo.move_notify, p.map_locked, bo.invalidate, p.unmap_locked ]', {
        options: 'callback: move_notify',
      }),
    );
    expectSafe(r);
    expect(logged('callback')).toEqual([
      { op: 'callback', importer: 'p', via: 'move_notify' },
      { op: 'callback', importer: 'p', via: 'move_notify' },
    ]);
  });

  it('[O6] [L4] an attachment with neither callback is skipped', () => {
    const r = run(
      scenario('  t: [ p.map_locked, bo.move_notify, bo.invalidate, p.unmap_locked ]', { options: 'callback: none' }),
    );
    expectSafe(r);
    expect(logged('callback')).toEqual([]);
  });

  it('[O6] [V4] vfio-pci accepts a move_notify-only importer as revocable, and its revoke calls it', () => {
    const r = run(
      scenario('  t: [ p.map_locked, mmio.revoke ]', {
        buffer: 'mmio',
        exporter: 'vfio-pci',
        options: 'callback: move_notify',
      }),
    );
    expectSafe(r);
    expect(logged('callback')).toEqual([{ op: 'callback', importer: 'p', via: 'move_notify' }]);
  });

  it('[O6] [V4] vfio-pci refuses the same importer without a callback under either name', () => {
    const r = run(
      scenario('  t: [ p.map_locked ]', { buffer: 'mmio', exporter: 'vfio-pci', options: 'callback: none' }),
    );
    expectBug(r, 'api-misuse');
    expect(first(r, 'api-misuse').message).toBe(
      'WARNING: dma_buf_dynamic_attach: setup: vfio-pci refused rules-probe importer p: dma_buf_dynamic_attach returned -EOPNOTSUPP',
    );
  });
});

// ---------------------------------------------------------------------------
// [P3]: -ENOENT without CONFIG_DMABUF_MOVE_NOTIFY
// ---------------------------------------------------------------------------

describe('[P3] dma_buf_get_pfn_unlocked and KernelConfig.moveNotify', () => {
  const getPfn = (exporter: string) => scenario('  t: [ { p.get_pfn_unlocked: { page: 0 } } ]', { exporter });
  const getPfnOn = (bufferOptions: string) =>
    scenario('  t: [ { p.get_pfn_unlocked: { page: 0 } } ]', { bufferOptions });

  it('[P3] a dynamic exporter (ttm) with moveNotify off: -ENOENT', () => {
    const r = exploreWith(getPfn('ttm'), { moveNotify: false });
    expect(r.verdict).toBe('safe');
    expect(logged('get_pfn')).toEqual([{ op: 'get_pfn', ret: -ENOENT }]);
  });

  it('[P3] the same exporter with moveNotify on (the default): the PFN', () => {
    const r = exploreWith(getPfn('ttm'));
    expect(r.verdict).toBe('safe');
    expect(logged('get_pfn')).toEqual([expect.objectContaining({ ret: 0, max_order: 0 })]);
  });

  it('[P3] a static exporter (system-heap) with moveNotify off: the PFN (nothing to pin)', () => {
    const r = exploreWith(getPfn('system-heap'), { moveNotify: false });
    expect(r.verdict).toBe('safe');
    expect(logged('get_pfn')).toEqual([expect.objectContaining({ ret: 0, max_order: 0 })]);
  });

  it('[P3] the probe dynamic exporter with moveNotify off: -ENOENT; the same exporter static: the PFN', () => {
    const off = { moveNotify: false };
    for (const dynamic of [true, false]) {
      const r = exploreWith(getPfnOn(`dynamic: ${dynamic}`), off);
      expect(r.verdict).toBe('safe');
    }
    expect(logged('get_pfn')).toEqual([
      { op: 'get_pfn', ret: -ENOENT },
      expect.objectContaining({ ret: 0, owner: 'bo (rules) page 0' }),
    ]);
  });
});

// ---------------------------------------------------------------------------
// [LT6]: a static importer's pin failing with -EBUSY
// ---------------------------------------------------------------------------

describe('[LT6] the pin a static map makes on a dynamic exporter', () => {
  const staticMap = (pin: string) =>
    scenario('  t: [ p.map_locked, p.unmap_locked ]', {
      bufferOptions: `dynamic: true, pin_result: ${pin}`,
      options: 'attach_mode: static',
    });

  it('[LT6] trips: the pin fails with -EBUSY: WARN, the map returns -EBUSY, nothing is mapped or pinned', () => {
    const r = run(staticMap('EBUSY'));
    expectBug(r, 'api-misuse');
    expect(codes(r)).toEqual(['api-misuse']);
    const f = first(r, 'api-misuse');
    expect(f.message).toBe('WARNING: dma_buf_map_attachment: pin for a static importer failed with -EBUSY');
    expect(f.rules).toEqual(['LT6']);
    expect(logged('map')).toEqual([{ op: 'map', before: null, after: null, ret: -EBUSY, pins: 0, mappings: 0 }]);
  });

  it('[LT6] does not trip: another pin error (-ENOMEM) is returned without a WARN', () => {
    const r = run(staticMap('ENOMEM'));
    expectSafe(r);
    expect(logged('map')).toEqual([{ op: 'map', before: null, after: null, ret: -ENOMEM, pins: 0, mappings: 0 }]);
  });

  it('[LT6] does not trip: the pin succeeds; the map holds one pin until the unmap', () => {
    const r = run(staticMap('ok'));
    expectSafe(r);
    expect(logged('map')).toEqual([{ op: 'map', before: null, after: null, ret: 0, pins: 1, mappings: 1 }]);
    expect(logged('unmap')).toEqual([{ op: 'unmap', pins: 0, mappings: 0 }]);
  });
});
