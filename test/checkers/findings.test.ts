/**
 * Every finding code, each with a scenario that trips it and a nearly
 * identical one that does not (verdict `safe`). Built-in drivers never break
 * the kernel API themselves, so the lock, fence, lifetime and misuse findings
 * come from two small driver definitions written here: a `probe` importer
 * whose ops each make one (correct or incorrect) sequence of kernel calls, and
 * a `probe` exporter with switches for the exporter-side rules.
 */
import { describe, expect, it } from 'vitest';
import type { CheckResult } from '../../src/check.ts';
import { mapFrames, unmapFrames } from '../../src/drivers/exporters/common.ts';
import {
  alloc_pages,
  DMA_RESV_USAGE_BOOKKEEP,
  type DmaBufAttachment,
  type DmaBufAttachOps,
  type DmaBufOps,
  type DmaResv,
  type DriverDef,
  defineExporter,
  defineImporter,
  dma_buf_attach,
  dma_buf_detach,
  dma_buf_dynamic_attach,
  dma_buf_export,
  dma_buf_invalidate_mappings,
  dma_buf_map_attachment,
  dma_buf_map_attachment_unlocked,
  dma_buf_pin,
  dma_buf_put,
  dma_buf_unmap_attachment,
  dma_buf_unpin,
  dma_fence_begin_signalling,
  dma_fence_end_signalling,
  dma_fence_init,
  dma_fence_signal,
  dma_fence_wait,
  dma_resv_assert_held,
  dma_resv_init,
  dma_resv_lock,
  dma_resv_unlock,
  dma_resv_wait_timeout,
  down_read,
  EINVAL,
  free_pages,
  get_dma_buf,
  type ImporterEnv,
  type ImporterInstance,
  isErr,
  type KGen,
  kfn,
  Lock,
  MmStruct,
  mutex_lock,
  mutex_unlock,
  pfnRef,
  type SgTable,
  type Task,
  up_read,
  ww_acquire_fini,
  ww_acquire_init,
} from '../../src/index.ts';
import { check, codes, expectBug, expectSafe, first, fromYaml } from '../helpers.ts';

// ---------------------------------------------------------------------------
// The probe importer: one op per kernel-call sequence under test.
// ---------------------------------------------------------------------------

class ProbeImporter implements ImporterInstance {
  readonly attachCall: string;
  att: DmaBufAttachment | null = null;
  sgt: SgTable | null = null;
  /** The last table unmapped, to unmap it again. */
  oldSgt: SgTable | null = null;
  readonly a: Lock;
  readonly b: Lock;
  readonly mm: MmStruct;
  /** A second reservation object of the same lock class as the buffer's. */
  readonly other: DmaResv;
  readonly dynamic: boolean;
  readonly takeRef: boolean;
  readonly attachOps: DmaBufAttachOps;

  constructor(readonly env: ImporterEnv) {
    this.dynamic = env.options.attach_mode !== 'static';
    this.takeRef = env.options.take_ref !== false;
    this.attachCall = this.dynamic ? 'dma_buf_dynamic_attach' : 'dma_buf_attach';
    this.a = new Lock(env.k, `${env.name}->a`, 'probe->a', 'mutex');
    this.b = new Lock(env.k, `${env.name}->b`, 'probe->b', 'mutex');
    this.mm = new MmStruct(env.k, `${env.name}:mm`);
    this.other = dma_resv_init(env.k, `${env.name}:other->resv`);
    const self = this;
    this.attachOps = {
      allow_peer2peer: true,
      // A well-behaved dynamic importer: drop the mapping under the exporter's resv hold ([L10]).
      invalidate_mappings: kfn('probe_invalidate', function* (t: Task, a: DmaBufAttachment): KGen {
        if (!self.sgt) return;
        yield* dma_buf_unmap_attachment(t, a, self.sgt, 'DMA_BIDIRECTIONAL');
        self.sgt = null;
      }),
    };
  }

  *attach(t: Task): KGen<number> {
    const buf = this.env.buffer;
    if (this.takeRef) yield* get_dma_buf(t, buf);
    const a = this.dynamic
      ? yield* dma_buf_dynamic_attach(t, buf, this.env.name, this.attachOps, this, this.env.name)
      : yield* dma_buf_attach(t, buf, this.env.name, this.env.name);
    if (isErr(a)) {
      if (this.takeRef) yield* dma_buf_put(t, buf);
      return a;
    }
    this.att = a;
    return 0;
  }

  /** Detach and put; unmaps nothing (a mapping left is the importer's leak). */
  *detach(t: Task): KGen {
    const a = this.att;
    this.att = null;
    if (!a) return;
    yield* dma_buf_detach(t, this.env.buffer, a);
    if (this.takeRef) yield* dma_buf_put(t, this.env.buffer);
  }

  *teardown(t: Task): KGen {
    yield* this.detach(t);
  }

  private get attachment(): DmaBufAttachment {
    if (!this.att) throw new Error('probe: not attached');
    return this.att;
  }

  private get resv(): DmaResv {
    return this.env.buffer.resv;
  }

  private *unmapLocked(t: Task): KGen {
    if (!this.sgt) return;
    yield* dma_buf_unmap_attachment(t, this.attachment, this.sgt, 'DMA_BIDIRECTIONAL');
    this.oldSgt = this.sgt;
    this.sgt = null;
  }

  private keep(r: SgTable | number): void {
    if (!isErr(r)) this.sgt = r;
  }

  readonly ops: Readonly<Record<string, (t: Task) => KGen<unknown>>> = {
    // --- map / unmap ([L1], [L2], [LT5])
    map_locked: kfn('probe_map_locked', (t: Task) => this.mapLocked(t)),
    unmap_locked: kfn('probe_unmap_locked', (t: Task) => this.unmapWithLock(t)),
    map_without_resv: kfn('probe_map_without_resv', (t: Task) => this.mapWithoutResv(t)),
    map_unlocked: kfn('probe_map_unlocked', (t: Task) => this.mapUnlocked(t, false)),
    map_unlocked_holding_resv: kfn('probe_map_unlocked_holding_resv', (t: Task) => this.mapUnlocked(t, true)),
    unmap_again: kfn('probe_unmap_again', (t: Task) => this.unmapAgain(t)),
    // --- put with or without resv ([L2])
    get_put: kfn('probe_get_put', (t: Task) => this.getPut(t, false)),
    get_put_holding_resv: kfn('probe_get_put_holding_resv', (t: Task) => this.getPut(t, true)),
    // --- pin ([LT4], [I10])
    pin: kfn('probe_pin', (t: Task) => this.pin(t, false)),
    pin_unpin: kfn('probe_pin_unpin', (t: Task) => this.pin(t, true)),
    unpin: kfn('probe_unpin', (t: Task) => this.unpin(t)),
    // --- lock order ([I16], [L6], [L8])
    take_ab: kfn('probe_take_ab', (t: Task) => this.nest(t, this.a, this.b)),
    take_ba: kfn('probe_take_ba', (t: Task) => this.nest(t, this.b, this.a)),
    mmap_lock_then_resv: kfn('probe_mmap_lock_then_resv', (t: Task) => this.mmapAndResv(t, true)),
    resv_then_mmap_lock: kfn('probe_resv_then_mmap_lock', (t: Task) => this.mmapAndResv(t, false)),
    two_resv_no_ctx: kfn('probe_two_resv_no_ctx', (t: Task) => this.twoResv(t, false)),
    two_resv_ctx: kfn('probe_two_resv_ctx', (t: Task) => this.twoResv(t, true)),
    // --- fences ([L11], [I21], [I22])
    wait_unsignalled: kfn('probe_wait_unsignalled', (t: Task) => this.waitFence(t, false, false)),
    wait_signalled: kfn('probe_wait_signalled', (t: Task) => this.waitFence(t, true, false)),
    wait_in_signalling: kfn('probe_wait_in_signalling', (t: Task) => this.waitFence(t, true, true)),
    resv_wait_in_signalling: kfn('probe_resv_wait_in_signalling', (t: Task) => this.resvWait(t, true)),
    resv_wait_outside_signalling: kfn('probe_resv_wait_outside_signalling', (t: Task) => this.resvWait(t, false)),
    lock_in_signalling: kfn('probe_lock_in_signalling', (t: Task) => this.lockInSignalling(t, true)),
    lock_after_signalling: kfn('probe_lock_after_signalling', (t: Task) => this.lockInSignalling(t, false)),
    // --- locks and user space ([L14], [I18])
    lock_resv: kfn('probe_lock_resv', (t: Task) => dma_resv_lock(t, this.resv, null)),
    unlock_resv: kfn('probe_unlock_resv', (t: Task) => dma_resv_unlock(t, this.resv)),
  };

  private *mapLocked(t: Task): KGen {
    yield* dma_resv_lock(t, this.resv, null);
    this.keep(yield* dma_buf_map_attachment(t, this.attachment, 'DMA_BIDIRECTIONAL'));
    yield* dma_resv_unlock(t, this.resv);
  }

  private *unmapWithLock(t: Task): KGen {
    yield* dma_resv_lock(t, this.resv, null);
    yield* this.unmapLocked(t);
    yield* dma_resv_unlock(t, this.resv);
  }

  /** [L1] broken: the locked map called without resv. */
  private *mapWithoutResv(t: Task): KGen {
    this.keep(yield* dma_buf_map_attachment(t, this.attachment, 'DMA_BIDIRECTIONAL'));
  }

  /** The `_unlocked` wrapper; `holding` breaks [L2] (and then deadlocks on resv). */
  private *mapUnlocked(t: Task, holding: boolean): KGen {
    if (holding) yield* dma_resv_lock(t, this.resv, null);
    this.keep(yield* dma_buf_map_attachment_unlocked(t, this.attachment, 'DMA_BIDIRECTIONAL'));
    if (holding) yield* dma_resv_unlock(t, this.resv);
  }

  /** Unmaps the table unmapped last time once more ([LT5], [I11]). */
  private *unmapAgain(t: Task): KGen {
    yield* dma_resv_lock(t, this.resv, null);
    if (this.oldSgt) yield* dma_buf_unmap_attachment(t, this.attachment, this.oldSgt, 'DMA_BIDIRECTIONAL');
    yield* dma_resv_unlock(t, this.resv);
  }

  /** Takes and drops a buffer reference; `holding` drops it under resv ([L2]). */
  private *getPut(t: Task, holding: boolean): KGen {
    const buf = this.env.buffer;
    yield* get_dma_buf(t, buf);
    yield* dma_resv_lock(t, this.resv, null);
    if (holding) yield* dma_buf_put(t, buf);
    yield* dma_resv_unlock(t, this.resv);
    if (!holding) yield* dma_buf_put(t, buf);
  }

  private *pin(t: Task, unpin: boolean): KGen {
    yield* dma_resv_lock(t, this.resv, null);
    const r = yield* dma_buf_pin(t, this.attachment);
    if (r === 0 && unpin) yield* dma_buf_unpin(t, this.attachment);
    yield* dma_resv_unlock(t, this.resv);
  }

  private *unpin(t: Task): KGen {
    yield* dma_resv_lock(t, this.resv, null);
    yield* dma_buf_unpin(t, this.attachment);
    yield* dma_resv_unlock(t, this.resv);
  }

  private *nest(t: Task, outer: Lock, inner: Lock): KGen {
    yield* mutex_lock(t, outer);
    yield* mutex_lock(t, inner);
    yield* mutex_unlock(t, inner);
    yield* mutex_unlock(t, outer);
  }

  /** mmap_lock → resv is the primed order ([L8] a); resv → mmap_lock inverts it ([L8] b). */
  private *mmapAndResv(t: Task, mmapFirst: boolean): KGen {
    const mmap = this.mm.mmap_lock;
    if (mmapFirst) {
      yield* down_read(t, mmap);
      yield* dma_resv_lock(t, this.resv, null);
      yield* dma_resv_unlock(t, this.resv);
      yield* up_read(t, mmap);
    } else {
      yield* dma_resv_lock(t, this.resv, null);
      yield* down_read(t, mmap);
      yield* up_read(t, mmap);
      yield* dma_resv_unlock(t, this.resv);
    }
  }

  /** Two reservation objects, with NULL contexts ([L6]) or one shared ww_acquire_ctx ([L7]). */
  private *twoResv(t: Task, withCtx: boolean): KGen {
    const ctx = withCtx ? yield* ww_acquire_init(t) : null;
    yield* dma_resv_lock(t, this.resv, ctx);
    yield* dma_resv_lock(t, this.other, ctx);
    yield* dma_resv_unlock(t, this.other);
    yield* dma_resv_unlock(t, this.resv);
    if (ctx) ww_acquire_fini(t, ctx);
  }

  private newFence(t: Task) {
    const n = ++t.created;
    return dma_fence_init(
      t,
      `${t.name}:probe#${n}`,
      { driverName: 'probe', timelineName: 'probe' },
      t.k.fenceContextAlloc(),
      n,
    );
  }

  /** Waits for a fence: signalled first or never; inside a signalling section or not. */
  private *waitFence(t: Task, signal: boolean, inSection: boolean): KGen {
    const f = this.newFence(t);
    if (signal) yield* dma_fence_signal(t, f);
    const cookie = inSection ? dma_fence_begin_signalling(t) : false;
    yield* dma_fence_wait(t, f, false);
    dma_fence_end_signalling(t, cookie);
  }

  private *resvWait(t: Task, inSection: boolean): KGen {
    const cookie = inSection ? dma_fence_begin_signalling(t) : false;
    yield* dma_resv_wait_timeout(t, this.resv, DMA_RESV_USAGE_BOOKKEEP, false);
    dma_fence_end_signalling(t, cookie);
  }

  /** resv taken inside a signalling section ([L11] b, [I22]), or after it ended. */
  private *lockInSignalling(t: Task, inSection: boolean): KGen {
    const cookie = dma_fence_begin_signalling(t);
    if (!inSection) dma_fence_end_signalling(t, cookie);
    yield* dma_resv_lock(t, this.resv, null);
    yield* dma_resv_unlock(t, this.resv);
    if (inSection) dma_fence_end_signalling(t, cookie);
  }
}

const probeImporter = defineImporter({
  name: 'probe',
  summary: 'an importer whose ops each make one sequence of kernel calls',
  options: {
    attach_mode: { type: 'enum', values: ['dynamic', 'static'], default: 'dynamic', doc: 'dma_buf_attach when static' },
    take_ref: { type: 'boolean', default: true, doc: 'false: attach without taking a buffer reference ([LT2])' },
  },
  ops: Object.fromEntries(
    [
      'map_locked',
      'unmap_locked',
      'map_without_resv',
      'map_unlocked',
      'map_unlocked_holding_resv',
      'unmap_again',
      'get_put',
      'get_put_holding_resv',
      'pin',
      'pin_unpin',
      'unpin',
      'take_ab',
      'take_ba',
      'mmap_lock_then_resv',
      'resv_then_mmap_lock',
      'two_resv_no_ctx',
      'two_resv_ctx',
      'wait_unsignalled',
      'wait_signalled',
      'wait_in_signalling',
      'resv_wait_in_signalling',
      'resv_wait_outside_signalling',
      'lock_in_signalling',
      'lock_after_signalling',
      'lock_resv',
      'unlock_resv',
    ].map((op) => [op, { doc: op }]),
  ),
  create: (env) => new ProbeImporter(env),
});

// ---------------------------------------------------------------------------
// The probe exporter: system RAM, never moved, with switches for [O2], [L3], [L4].
// ---------------------------------------------------------------------------

const probeExporter = defineExporter({
  name: 'probe-exporter',
  summary: 'system pages; switches for exporter-side rules',
  options: {
    pin_without_unpin: { type: 'boolean', default: false, doc: 'ops.pin without ops.unpin ([O2])' },
    map_takes_resv: { type: 'boolean', default: false, doc: 'map_dma_buf locks resv itself ([L3])' },
  },
  ops: {
    invalidate: { doc: 'dma_buf_invalidate_mappings under resv ([L4])' },
    invalidate_without_resv: { doc: 'dma_buf_invalidate_mappings without resv' },
  },
  *export(t, env) {
    const pool = env.k.physmem.pools.get('system');
    if (!pool) throw new Error('no system pool');
    const frames = yield* alloc_pages(t, pool, env.pages, (i) => `${env.name} (probe) page ${i}`);
    const ops: DmaBufOps = {
      *map_dma_buf(t, attach, dir) {
        const resv = attach.dmabuf.resv;
        if (env.options.map_takes_resv) yield* dma_resv_lock(t, resv, null);
        const sgt = yield* mapFrames(t, 'probe_map_dma_buf', attach, frames, dir);
        if (env.options.map_takes_resv) yield* dma_resv_unlock(t, resv);
        return sgt;
      },
      *unmap_dma_buf(t, _attach, sgt) {
        yield* unmapFrames(t, 'probe_unmap_dma_buf', sgt);
      },
      *release(t) {
        yield* free_pages(t, frames);
      },
      *get_pfn(t, attach, pgoff) {
        dma_resv_assert_held(t, attach.dmabuf.resv, 'probe_get_pfn', ['P1', 'L3']);
        const f = frames[pgoff];
        return f ? { pfn: pfnRef(f), max_order: 0 } : -EINVAL;
      },
    };
    if (env.options.pin_without_unpin) {
      ops.pin = function* () {
        return 0;
      };
    }
    const buf = yield* dma_buf_export(t, env.name, { exp_name: 'probe', ops, pages: env.pages, priv: frames });
    if (isErr(buf)) return buf;
    const invalidate = kfn('probe_invalidate_all', function* (t: Task): KGen {
      yield* dma_resv_lock(t, buf.resv, null);
      yield* dma_buf_invalidate_mappings(t, buf);
      yield* dma_resv_unlock(t, buf.resv);
    });
    const invalidateWithoutResv = kfn('probe_invalidate_without_resv', function* (t: Task): KGen {
      yield* dma_buf_invalidate_mappings(t, buf);
    });
    return { buf, pool, ops: { invalidate, invalidate_without_resv: invalidateWithoutResv } };
  },
});

const MODULES: ReadonlyMap<string, DriverDef> = new Map<string, DriverDef>([
  ['./probe.ts', probeImporter],
  ['./probe-exporter.ts', probeExporter],
]);

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

function run(yaml: string): CheckResult {
  return check(fromYaml(yaml, MODULES));
}

/** A scenario with one buffer, one probe importer and the given threads (YAML lines). */
function probe(threads: string, opts: { exporter?: string; options?: string; bufferOptions?: string } = {}): string {
  return `
name: probe
buffers:
  bo: { exporter: ${opts.exporter ?? 'ttm'}${opts.bufferOptions ? `, options: { ${opts.bufferOptions} }` : ''} }
importers:
  p: { driver: ./probe.ts, buffer: bo${opts.options ? `, options: { ${opts.options} }` : ''} }
threads:
${threads}
`;
}

// ---------------------------------------------------------------------------
// use-after-free
// ---------------------------------------------------------------------------

describe('use-after-free', () => {
  const kvmVsMove = (retry: boolean) => `
name: kvm-vs-move
buffers:
  bo: { exporter: ttm }
importers:
  kvm: { driver: kvm, buffer: bo, options: { invalidate_retry: ${retry} } }
threads:
  vcpu0: [ { kvm.access: { page: 0 } } ]
  evictor: [ bo.move ]
`;

  it('trips: kvm with the unlocked get_pfn and no seq re-check touches a frame the move freed ([K6] i, [I2])', () => {
    const r = run(kvmVsMove(false));
    expectBug(r, 'use-after-free');
    const f = first(r, 'use-after-free');
    expect(f.message).toMatch(/^BUG: KASAN: use-after-free in /);
    expect(f.message).toContain("through kvm's spte for bo page 0");
    expect(f.thread).toBe('vcpu0');
    expect(f.rules).toContain('I2');
  });

  it('does not trip: the same kvm with the mmu_invalidate_seq re-check ([K4], [K5])', () => {
    expectSafe(run(kvmVsMove(true)));
  });

  it('trips: a dynamic importer that ignores invalidate DMAs through its old sg_table ([LT10])', () => {
    const r = run(`
name: dyn
buffers: { bo: { exporter: ttm } }
importers: { gpu: { driver: dma-dynamic, buffer: bo, options: { respect_invalidate: false } } }
threads:
  t: [ gpu.map, bo.move, { gpu.dma: { page: 0 } }, gpu.unmap ]
`);
    expectBug(r, 'use-after-free');
    const f = first(r, 'use-after-free');
    expect(f.message).toContain('dma access');
  });

  it('does not trip: the same sequence when the importer re-maps after invalidate ([LT9])', () => {
    expectSafe(
      run(`
name: dyn
buffers: { bo: { exporter: ttm } }
importers: { gpu: { driver: dma-dynamic, buffer: bo, options: { respect_invalidate: true } } }
threads:
  t: [ gpu.map, bo.move, { gpu.dma: { page: 0 } }, gpu.unmap ]
`),
    );
  });
});

// ---------------------------------------------------------------------------
// stale-mapping
// ---------------------------------------------------------------------------

describe('stale-mapping', () => {
  const kvmThenMove = (zap: boolean) => `
name: kvm-zap
buffers: { bo: { exporter: ttm } }
importers: { kvm: { driver: kvm, buffer: bo, options: { zap_on_invalidate: ${zap} } } }
threads:
  t: [ { kvm.fault: { page: 0 } }, bo.move ]
`;

  it('trips on free: the move frees a frame an SPTE the invalidate did not zap still maps ([I1], [LT8])', () => {
    const r = run(kvmThenMove(false));
    expectBug(r, 'stale-mapping');
    // Only the fault, no guest access: the frame is never touched.
    expect(codes(r)).not.toContain('use-after-free');
    const f = first(r, 'stale-mapping');
    expect(f.message).toMatch(/frees pfn 0x[0-9a-f]+ while kvm's spte for bo page 0 still maps it/);
    expect(f.rules).toContain('I1');
  });

  it('does not trip: the invalidate callback zaps the SPTE before the free ([K2])', () => {
    expectSafe(run(kvmThenMove(true)));
  });

  it('trips on install: without the re-check an SPTE is installed for a PFN the move already freed ([K4], [I5])', () => {
    const r = run(`
name: kvm-install
buffers: { bo: { exporter: ttm } }
importers: { kvm: { driver: kvm, buffer: bo, options: { invalidate_retry: false } } }
threads:
  vcpu0: [ { kvm.fault: { page: 0 } } ]
  evictor: [ bo.move ]
`);
    expectBug(r, 'stale-mapping');
    expect(first(r, 'stale-mapping').message).toMatch(/installs a spte for pfn 0x[0-9a-f]+, which no longer backs bo/);
  });

  it('does not trip: the same race with the seq re-check: the stale PFN is never installed ([K5])', () => {
    expectSafe(
      run(`
name: kvm-install
buffers: { bo: { exporter: ttm } }
importers: { kvm: { driver: kvm, buffer: bo, options: { invalidate_retry: true } } }
threads:
  vcpu0: [ { kvm.fault: { page: 0 } } ]
  evictor: [ bo.move ]
`),
    );
  });

  it('trips on revoke: vfio revokes a BAR page an SPTE still maps ([I25], [V5])', () => {
    const r = run(`
name: kvm-revoke
buffers: { mmio: { exporter: vfio-pci } }
importers: { kvm: { driver: kvm, buffer: mmio, options: { zap_on_invalidate: false } } }
threads:
  t: [ { kvm.fault: { page: 0 } }, mmio.revoke ]
`);
    expectBug(r, 'stale-mapping');
    const f = first(r, 'stale-mapping');
    expect(f.message).toMatch(/revokes pfn 0x[0-9a-f]+ while kvm's spte for mmio page 0 still maps it/);
    expect(f.rules).toContain('I25');
  });

  it('does not trip: the same revoke when the invalidate callback zaps ([V6])', () => {
    expectSafe(
      run(`
name: kvm-revoke
buffers: { mmio: { exporter: vfio-pci } }
importers: { kvm: { driver: kvm, buffer: mmio, options: { zap_on_invalidate: true } } }
threads:
  t: [ { kvm.fault: { page: 0 } }, mmio.revoke ]
`),
    );
  });
});

// ---------------------------------------------------------------------------
// access-after-revoke
// ---------------------------------------------------------------------------

describe('access-after-revoke', () => {
  const guestAfterRevoke = (zap: boolean) => `
name: aar
buffers: { mmio: { exporter: vfio-pci } }
importers: { kvm: { driver: kvm, buffer: mmio, options: { zap_on_invalidate: ${zap} } } }
threads:
  t: [ { kvm.access: { page: 0 } }, mmio.revoke, { kvm.access: { page: 0 } } ]
`;

  it('trips: the guest touches MMIO through an SPTE that survived the revoke ([I25], [V6])', () => {
    const r = run(guestAfterRevoke(false));
    expectBug(r, 'access-after-revoke');
    const f = first(r, 'access-after-revoke');
    expect(f.message).toMatch(/^BUG: access after revoke in .*: guest access to MMIO pfn 0x[0-9a-f]+ of mmio/);
    expect(f.rules).toContain('I25');
  });

  it('does not trip: with the zap, the second access faults, get_pfn says -ENODEV, KVM returns -EIO ([V6])', () => {
    expectSafe(run(guestAfterRevoke(true)));
  });

  it('trips concurrently as well: a vCPU racing the revoke ([V5])', () => {
    const r = run(`
name: aar2
buffers: { mmio: { exporter: vfio-pci } }
importers: { kvm: { driver: kvm, buffer: mmio, options: { zap_on_invalidate: false } } }
threads:
  vcpu0: [ { kvm.access: { page: 0 } }, { kvm.access: { page: 0 } } ]
  vmm: [ mmio.revoke ]
expect: { verdict: bug, finding: access-after-revoke }
`);
    expectBug(r, 'access-after-revoke');
    expect(r.met).toBe(true);
  });

  it('does not trip: the same race when the invalidate callback zaps ([V5], [V6])', () => {
    expectSafe(
      run(`
name: aar2
buffers: { mmio: { exporter: vfio-pci } }
importers: { kvm: { driver: kvm, buffer: mmio, options: { zap_on_invalidate: true } } }
threads:
  vcpu0: [ { kvm.access: { page: 0 } }, { kvm.access: { page: 0 } } ]
  vmm: [ mmio.revoke ]
`),
    );
  });
});

// ---------------------------------------------------------------------------
// lock-not-held
// ---------------------------------------------------------------------------

describe('lock-not-held', () => {
  it('trips: dma_buf_map_attachment called without dma_resv_lock ([L1], [I14])', () => {
    const r = run(probe('  t: [ p.map_without_resv, p.unmap_locked ]'));
    expectBug(r, 'lock-not-held');
    // The core's assert first, then the exporter's own assert in map_dma_buf ([L3]).
    expect(r.findings.map((f) => f.message)).toEqual([
      'dma_buf_map_attachment called without holding bo->resv',
      'amdgpu_dma_buf_map called without holding bo->resv',
    ]);
    expect(first(r, 'lock-not-held').rules).toContain('L1');
  });

  it('does not trip: the same map with resv held', () => {
    expectSafe(run(probe('  t: [ p.map_locked, p.unmap_locked ]')));
  });

  it('trips: the exporter calls dma_buf_invalidate_mappings without resv ([L4], [I13])', () => {
    const r = run(
      probe('  t: [ p.map_locked, bo.invalidate_without_resv, p.unmap_locked ]', {
        exporter: './probe-exporter.ts',
      }),
    );
    expectBug(r, 'lock-not-held');
    const f = first(r, 'lock-not-held');
    expect(f.message).toBe('dma_buf_invalidate_mappings called without holding bo->resv');
    expect(f.rules).toContain('L4');
  });

  it('does not trip: the exporter invalidates under resv', () => {
    expectSafe(run(probe('  t: [ p.map_locked, bo.invalidate, p.unmap_locked ]', { exporter: './probe-exporter.ts' })));
  });

  it('trips: unlocking a resv the thread does not hold is a bad unlock balance', () => {
    const r = run(probe('  t: [ p.unlock_resv ]'));
    expectBug(r, 'lock-not-held');
    expect(first(r, 'lock-not-held').message).toMatch(/^bad unlock balance detected: dma_resv_unlock of bo->resv/);
  });

  it('does not trip: lock, then unlock', () => {
    expectSafe(run(probe('  t: [ p.lock_resv, p.unlock_resv ]')));
  });
});

// ---------------------------------------------------------------------------
// lock-held
// ---------------------------------------------------------------------------

describe('lock-held', () => {
  it('trips: dma_buf_put with resv held ([L2])', () => {
    const r = run(probe('  t: [ p.get_put_holding_resv ]'));
    expectBug(r, 'lock-held');
    expect(codes(r)).toEqual(['lock-held']);
    const f = first(r, 'lock-held');
    expect(f.message).toBe('dma_buf_put called with bo->resv held');
    expect(f.rules).toContain('L2');
  });

  it('does not trip: the put after the unlock', () => {
    expectSafe(run(probe('  t: [ p.get_put ]')));
  });

  it('trips: dma_buf_map_attachment_unlocked called with resv held (then self-deadlocks) ([L2], [I14])', () => {
    const r = run(probe('  t: [ p.map_unlocked_holding_resv, p.unmap_locked ]'));
    expect(r.verdict).toBe('bug');
    expect(r.findings[0]?.code).toBe('lock-held');
    expect(r.findings[0]?.message).toBe('dma_buf_map_attachment_unlocked called with bo->resv held');
    expect(codes(r)).toContain('deadlock');
  });

  it('does not trip: dma_buf_map_attachment_unlocked without resv held', () => {
    expectSafe(run(probe('  t: [ p.map_unlocked, p.unmap_locked ]')));
  });
});

// ---------------------------------------------------------------------------
// lock-held-on-return
// ---------------------------------------------------------------------------

describe('lock-held-on-return', () => {
  const rogue = (hold: boolean) => `
name: rogue
buffers: { bo: { exporter: ttm } }
importers: { app: { driver: rogue-mmap, buffer: bo, options: { hold_resv_while_mapped: ${hold} } } }
threads:
  user: [ { app.access: { page: 0 } } ]
`;

  it('trips: a fault handler returns still holding resv ([L14], [I18])', () => {
    const r = run(rogue(true));
    expectBug(r, 'lock-held-on-return');
    const f = first(r, 'lock-held-on-return');
    expect(f.message).toBe('rogue_vm_fault returned to the page-fault path with bo->resv still held');
    expect(f.rules).toEqual(expect.arrayContaining(['L14', 'I18']));
  });

  it('does not trip: the same fault handler dropping resv before it returns', () => {
    expectSafe(run(rogue(false)));
  });

  it('trips: a thread returns to user space holding resv', () => {
    const r = run(probe('  t: [ p.lock_resv ]'));
    expectBug(r, 'lock-held-on-return');
    expect(first(r, 'lock-held-on-return').message).toBe(
      'lock held when returning to user space: t exits holding bo->resv',
    );
  });

  it('does not trip: the thread unlocks before it ends', () => {
    expectSafe(run(probe('  t: [ p.lock_resv, p.unlock_resv ]')));
  });
});

// ---------------------------------------------------------------------------
// lock-order
// ---------------------------------------------------------------------------

describe('lock-order', () => {
  it('trips: two locks taken in both orders ([I16])', () => {
    const r = run(probe('  t: [ p.take_ab, p.take_ba ]'));
    expectBug(r, 'lock-order');
    const f = first(r, 'lock-order');
    expect(f.message).toBe('possible circular locking dependency detected: probe->a taken while holding probe->b');
  });

  it('does not trip: the same two locks always taken in one order', () => {
    expectSafe(run(probe('  t: [ p.take_ab, p.take_ab ]')));
  });

  it('trips: mmap_lock taken under resv, against the order primed at boot ([L8] b)', () => {
    const r = run(probe('  t: [ p.resv_then_mmap_lock ]'));
    expectBug(r, 'lock-order');
    const f = first(r, 'lock-order');
    expect(f.message).toBe(
      'possible circular locking dependency detected: mmap_lock taken while holding reservation_ww_class_mutex',
    );
    expect(f.rules).toContain('L8');
  });

  it('does not trip: resv taken under mmap_lock, the primed order ([L8] a)', () => {
    expectSafe(run(probe('  t: [ p.mmap_lock_then_resv ]')));
  });

  it('trips: two dma_resv locks held with NULL contexts ([L6])', () => {
    const r = run(probe('  t: [ p.two_resv_no_ctx ]'));
    expectBug(r, 'lock-order');
    expect(first(r, 'lock-order').message).toMatch(
      /^possible recursive locking detected: p:other->resv taken while holding bo->resv of the same class without a shared ww_acquire_ctx/,
    );
  });

  it('does not trip: the same two locks under one ww_acquire_ctx ([L7])', () => {
    expectSafe(run(probe('  t: [ p.two_resv_ctx ]')));
  });
});

// ---------------------------------------------------------------------------
// deadlock
// ---------------------------------------------------------------------------

describe('deadlock', () => {
  const kvmMove = (takesResv: boolean) => `
name: kvm-takes-resv
buffers: { bo: { exporter: ttm } }
importers: { kvm: { driver: kvm, buffer: bo, options: { invalidate_takes_resv: ${takesResv} } } }
threads:
  vcpu0: [ { kvm.access: { page: 0 } } ]
  evictor: [ bo.move ]
`;

  it('trips: an invalidate callback re-locks the resv the exporter holds ([L10], [I15])', () => {
    const r = run(kvmMove(true));
    expectBug(r, 'deadlock');
    const f = first(r, 'deadlock');
    expect(f.message).toMatch(/^possible recursive locking detected: evictor takes bo->resv again in dma_resv_lock/);
    expect(f.rules).toContain('I15');
  });

  it('does not trip: the callback relies on the resv the exporter already holds', () => {
    expectSafe(run(kvmMove(false)));
  });

  it('trips: an exporter map_dma_buf that locks resv itself ([L3])', () => {
    const r = run(
      probe('  t: [ p.map_locked, p.unmap_locked ]', {
        exporter: './probe-exporter.ts',
        bufferOptions: 'map_takes_resv: true',
      }),
    );
    expectBug(r, 'deadlock');
    expect(r.findings[0]?.message).toBe('possible recursive locking detected: t takes bo->resv again in dma_resv_lock');
  });

  it('does not trip: the same exporter when map_dma_buf relies on the caller holding resv', () => {
    expectSafe(
      run(
        probe('  t: [ p.map_locked, p.unmap_locked ]', {
          exporter: './probe-exporter.ts',
          bufferOptions: 'map_takes_resv: false',
        }),
      ),
    );
  });

  it('trips: a wait on a fence nobody will signal blocks every thread', () => {
    const r = run(probe('  t: [ p.wait_unsignalled ]'));
    expectBug(r, 'deadlock');
    const f = first(r, 'deadlock');
    expect(f.message).toMatch(/^deadlock: t waits for t:probe#1/);
  });

  it('does not trip: waiting on a fence that was signalled', () => {
    expectSafe(run(probe('  t: [ p.wait_signalled ]')));
  });

  it('trips: two threads taking two locks in opposite orders (ABBA) can block each other', () => {
    const r = run(`${probe('  t1: [ p.take_ab ]\n  t2: [ p.take_ba ]')}expect: { verdict: bug, finding: deadlock }\n`);
    expectBug(r, 'deadlock');
    expect(r.met).toBe(true);
    expect(first(r, 'deadlock').message).toMatch(
      /t\d waits for p->[ab] held by t\d; t\d waits for p->[ab] held by t\d/,
    );
  });

  it('does not trip: two threads taking the two locks in the same order', () => {
    expectSafe(run(probe('  t1: [ p.take_ab ]\n  t2: [ p.take_ab ]')));
  });
});

// ---------------------------------------------------------------------------
// wait-in-signalling
// ---------------------------------------------------------------------------

describe('wait-in-signalling', () => {
  it('trips: dma_fence_wait inside dma_fence_begin_signalling ([L11] a, [I21])', () => {
    const r = run(probe('  t: [ p.wait_in_signalling ]'));
    expectBug(r, 'wait-in-signalling');
    expect(codes(r)).toEqual(['wait-in-signalling']);
    const f = first(r, 'wait-in-signalling');
    expect(f.message).toBe('dma_fence_wait on t:probe#1 inside a dma_fence signalling critical section');
    expect(f.rules).toContain('I21');
  });

  it('does not trip: the same wait outside the section', () => {
    expectSafe(run(probe('  t: [ p.wait_signalled ]')));
  });

  it('trips: dma_resv_wait_timeout inside a signalling section ([I21])', () => {
    const r = run(probe('  t: [ p.resv_wait_in_signalling ]'));
    expectBug(r, 'wait-in-signalling');
    expect(first(r, 'wait-in-signalling').message).toBe(
      'dma_resv_wait_timeout on bo->resv inside a dma_fence signalling critical section',
    );
  });

  it('does not trip: dma_resv_wait_timeout outside it', () => {
    expectSafe(run(probe('  t: [ p.resv_wait_outside_signalling ]')));
  });

  it('trips: a resv lock taken inside a signalling section ([L11] b, [I22])', () => {
    const r = run(probe('  t: [ p.lock_in_signalling ]'));
    expectBug(r, 'wait-in-signalling');
    const f = first(r, 'wait-in-signalling');
    expect(f.message).toBe('bo->resv taken inside a dma_fence signalling critical section');
    expect(f.rules).toContain('I22');
  });

  it('does not trip: the resv lock taken after the section ended', () => {
    expectSafe(run(probe('  t: [ p.lock_after_signalling ]')));
  });
});

// ---------------------------------------------------------------------------
// leak
// ---------------------------------------------------------------------------

describe('leak', () => {
  it('trips: a buffer reference taken with get and never put ([LT1], [LT2])', () => {
    const r = run(probe('  t: [ bo.get ]'));
    expectBug(r, 'leak');
    const f = first(r, 'leak');
    expect(f.message).toBe('1 reference(s) to bo never dropped: the buffer is never released');
    expect(f.thread).toBe('teardown');
  });

  it('does not trip: get, then put', () => {
    expectSafe(run(probe('  t: [ bo.get, bo.put ]')));
  });

  it('trips: a mapping never unmapped is found at detach ([LT3], [LT5], [I9])', () => {
    const r = run(probe('  t: [ p.map_locked ]'));
    expectBug(r, 'leak');
    expect(first(r, 'leak').message).toBe('p detached with 1 mapping(s) not unmapped');
  });

  it('does not trip: map, then unmap', () => {
    expectSafe(run(probe('  t: [ p.map_locked, p.unmap_locked ]')));
  });

  it('trips: a dynamic pin never undone is found at detach ([LT4], [I10])', () => {
    const r = run(probe('  t: [ p.pin ]'));
    expectBug(r, 'leak');
    expect(first(r, 'leak').message).toBe('p detached with 1 pin(s) not undone');
  });

  it('does not trip: pin, then unpin', () => {
    expectSafe(run(probe('  t: [ p.pin_unpin ]')));
  });

  it('trips: the last put releases a buffer that still has an attachment ([LT2], [I8])', () => {
    const r = run(probe('  t: [ bo.put ]', { options: 'take_ref: false' }));
    expectBug(r, 'leak');
    expect(first(r, 'leak').message).toBe('bo released with 1 attachment(s) still attached (p)');
  });

  it('does not trip: an importer holding its own reference keeps the buffer alive until it detaches', () => {
    expectSafe(run(probe('  t: [ bo.put ]', { options: 'take_ref: true' })));
  });

  it('trips: a static importer mapping a ttm buffer and never unmapping it', () => {
    const r = run(`
name: static-leak
buffers: { bo: { exporter: ttm } }
importers: { dev: { driver: dma-static, buffer: bo } }
threads:
  t: [ dev.map, { dev.dma: { page: 0 } } ]
`);
    expectBug(r, 'leak');
    expect(first(r, 'leak').message).toBe('dev detached with 1 mapping(s) not unmapped');
  });

  it('does not trip: the static importer unmaps before it is detached ([LT6])', () => {
    expectSafe(
      run(`
name: static-leak
buffers: { bo: { exporter: ttm } }
importers: { dev: { driver: dma-static, buffer: bo } }
threads:
  t: [ dev.map, { dev.dma: { page: 0 } }, dev.unmap ]
`),
    );
  });
});

// ---------------------------------------------------------------------------
// refcount
// ---------------------------------------------------------------------------

describe('refcount', () => {
  const bufferOnly = (ops: string) => `
name: refs
buffers: { bo: { exporter: system-heap } }
threads:
  t: [ ${ops} ]
`;

  it('trips: the initial reference put twice underflows ([LT1], [I7])', () => {
    const r = run(bufferOnly('bo.put, bo.put'));
    expectBug(r, 'refcount');
    expect(codes(r)).toEqual(['refcount']);
    const f = first(r, 'refcount');
    expect(f.message).toBe('dma_buf_put on bo with no reference left');
    expect(f.thread).toBe('t');
    expect(f.rules).toContain('I7');
  });

  it('does not trip: the initial reference put once (teardown does not put it again)', () => {
    expectSafe(run(bufferOnly('bo.put')));
  });

  it('trips: get on a buffer the last put released ([I7])', () => {
    const r = run(bufferOnly('bo.put, bo.get'));
    expectBug(r, 'refcount');
    expect(r.findings[0]?.message).toBe('get_dma_buf on bo after its release');
  });

  it('does not trip: get before the put, then put again', () => {
    expectSafe(run(bufferOnly('bo.get, bo.put, bo.put')));
  });

  it('trips: a map on a buffer already released, by an importer that took no reference ([LT2], [I7])', () => {
    const r = run(probe('  t: [ bo.put, p.map_locked ]', { options: 'take_ref: false' }));
    expectBug(r, 'refcount');
    expect(r.findings.map((f) => f.message)).toContain('dma_buf_map_attachment on bo after its release');
  });

  it('does not trip: the same ops when the importer holds its own reference', () => {
    expectSafe(run(probe('  t: [ bo.put, p.map_locked, p.unmap_locked ]', { options: 'take_ref: true' })));
  });
});

// ---------------------------------------------------------------------------
// api-misuse
// ---------------------------------------------------------------------------

describe('api-misuse', () => {
  it('trips: dma_buf_pin on a static attachment ([LT4], [I10])', () => {
    const r = run(probe('  t: [ p.pin_unpin ]', { options: 'attach_mode: static' }));
    expectBug(r, 'api-misuse');
    expect(codes(r)).toEqual(['api-misuse']);
    const f = first(r, 'api-misuse');
    expect(f.message).toBe('WARNING: dma_buf_pin: pin on static attachment p');
    expect(f.rules).toContain('LT4');
  });

  it('does not trip: the same pin and unpin on a dynamic attachment', () => {
    expectSafe(run(probe('  t: [ p.pin_unpin ]', { options: 'attach_mode: dynamic' })));
  });

  it('trips: dma_buf_unpin without a matching pin ([LT4])', () => {
    const r = run(probe('  t: [ p.unpin ]'));
    expectBug(r, 'api-misuse');
    expect(first(r, 'api-misuse').message).toBe('WARNING: dma_buf_unpin: unpin of p without a matching pin');
  });

  it('does not trip: dma_buf_unpin after a pin', () => {
    expectSafe(run(probe('  t: [ p.pin, p.unpin ]')));
  });

  it('trips: an sg_table unmapped twice ([LT5], [I11])', () => {
    const r = run(probe('  t: [ p.map_locked, p.unmap_locked, p.unmap_again ]'));
    expectBug(r, 'api-misuse');
    expect(first(r, 'api-misuse').message).toBe(
      'WARNING: dma_buf_unmap_attachment: sg_table was not mapped on p (or is already unmapped)',
    );
  });

  it('does not trip: map, unmap, map, unmap', () => {
    expectSafe(run(probe('  t: [ p.map_locked, p.unmap_locked, p.map_locked, p.unmap_locked ]')));
  });

  it('trips at setup: an exporter with pin but no unpin cannot export ([O2])', () => {
    const r = run(
      probe('  t: [ p.map_locked, p.unmap_locked ]', {
        exporter: './probe-exporter.ts',
        bufferOptions: 'pin_without_unpin: true',
      }),
    );
    expectBug(r, 'api-misuse');
    expect(r.findings.map((f) => f.message)).toEqual([
      'WARNING: dma_buf_export: pin and unpin must both be present or both absent',
      'WARNING: dma_buf_export: setup: exporter probe-exporter could not export bo (-EINVAL)',
    ]);
  });

  it('does not trip: the same exporter without the stray pin', () => {
    expectSafe(
      run(
        probe('  t: [ p.map_locked, p.unmap_locked ]', {
          exporter: './probe-exporter.ts',
          bufferOptions: 'pin_without_unpin: false',
        }),
      ),
    );
  });

  it('trips at setup: vfio-pci refuses a static importer ([V2], [V4])', () => {
    const r = run(`
name: vfio-static
buffers: { mmio: { exporter: vfio-pci } }
importers: { dev: { driver: dma-static, buffer: mmio } }
threads:
  t: [ dev.map, dev.unmap ]
`);
    expectBug(r, 'api-misuse');
    expect(first(r, 'api-misuse').message).toBe(
      'WARNING: dma_buf_attach: setup: vfio-pci refused dma-static importer dev: dma_buf_attach returned -EOPNOTSUPP',
    );
  });

  it('does not trip: vfio-pci accepts a revocable dynamic importer for the same ops', () => {
    expectSafe(
      run(`
name: vfio-dynamic
buffers: { mmio: { exporter: vfio-pci } }
importers: { dev: { driver: dma-dynamic, buffer: mmio } }
threads:
  t: [ dev.map, dev.unmap ]
`),
    );
  });
});
