/**
 * The `ib-umem-dmabuf` importer (an RDMA MR on a dma-buf): what registration,
 * the invalidate callback, page faults, dereg and the pinned-revocable revoke
 * do to the MR's MTT and the umem ([LT7], [LT9], [L10], [V4], [V6]), and the
 * finding each bug option leads to.
 */
import { describe, expect, it } from 'vitest';
import type { DriverDef, ExportedBuffer, OptionValues } from '../../src/drivers/driver.ts';
import { ttm } from '../../src/drivers/exporters/ttm.ts';
import { vfioPci } from '../../src/drivers/exporters/vfio-pci.ts';
import { type IbUmemDmabufImporter, ibUmemDmabuf } from '../../src/drivers/importers/ib-umem-dmabuf.ts';
import {
  defineImporter,
  device_dma_table,
  dma_resv_unlock,
  EBUSY,
  EOPNOTSUPP,
  type IbUmemDmabuf,
  type ImporterEnv,
  type ImporterInstance,
  IommuDomain,
  ib_umem_dmabuf_get_pinned_revocable_and_lock,
  ib_umem_dmabuf_release,
  ib_umem_dmabuf_set_revoke_locked,
  iommu_map,
  iommu_unmap,
  isErr,
  Kernel,
  type KGen,
  kfn,
  type OpArgs,
  PAGE_ARG,
  type Task,
} from '../../src/index.ts';
import { check, codes, expectBug, expectSafe, first, fromYaml } from '../helpers.ts';
import { solo } from '../kernel/harness.ts';

/** Exports a buffer and makes the importer on it, in one task; `body` then drives both. */
function withMr<R>(
  exporter: DriverDef & { kind: 'exporter' },
  options: OptionValues,
  body: (t: Task, imp: IbUmemDmabufImporter, exp: ExportedBuffer) => KGen<R>,
): { result: R; k: Kernel } {
  const k = new Kernel();
  const { result } = solo(function* (t) {
    const exp = yield* exporter.export(t, { k, name: 'bo', pages: 1, options: {} });
    if (isErr(exp)) throw new Error('export failed');
    const imp = ibUmemDmabuf.create({
      k,
      name: 'nic',
      buffer: exp.buf,
      pages: 1,
      options,
      buffers: new Map([['bo', exp.buf]]),
    }) as IbUmemDmabufImporter;
    return yield* body(t, imp, exp);
  }, k);
  return { result, k };
}

const umemOf = (imp: IbUmemDmabufImporter) => imp.mr.umem as IbUmemDmabuf;

describe('ib-umem-dmabuf, mode odp (mlx5)', () => {
  it('reg attaches dynamically, maps the buffer and programs the MTT with a first page fault', () => {
    const { result, k } = withMr(ttm, {}, function* (t, imp, exp) {
      expect(yield* imp.attach(t)).toBe(0);
      const umem = umemOf(imp);
      const frame = umem.sgt?.entries[0]?.frame;
      return { mtt: imp.mr.entries[0], frame, attach: umem.attach, priv: umem.private, bo: exp.buf };
    });
    expect(result.attach?.importer_ops?.invalidate_mappings).toBeDefined();
    expect(result.attach?.sgts.length).toBe(1);
    expect(result.mtt?.frame).toBe(result.frame);
    expect(result.mtt?.importer).toBe('nic:mtt');
    expect(result.priv).not.toBeNull();
    expect(k.findings).toEqual([]);
  });

  it('a move zaps the MTT and unmaps in the callback; the next access faults and maps the new placement', () => {
    const { result, k } = withMr(ttm, {}, function* (t, imp, exp) {
      yield* imp.attach(t);
      const before = imp.mr.entries[0]?.frame;
      yield* exp.ops.move?.(t, {}) as KGen<unknown>;
      const afterMove = { mtt: imp.mr.entries[0], sgt: umemOf(imp).sgt, mappings: umemOf(imp).attach?.sgts.length };
      yield* imp.ops.dma(t, { page: 0 });
      return { before, afterMove, refilled: imp.mr.entries[0]?.frame, sgt: umemOf(imp).sgt };
    });
    expect(result.afterMove).toEqual({ mtt: null, sgt: null, mappings: 0 });
    expect(result.refilled).toBeDefined();
    expect(result.refilled).not.toBe(result.before);
    expect(result.sgt?.entries[0]?.frame).toBe(result.refilled);
    expect(k.findings).toEqual([]);
  });

  it('dereg revokes the mkey under resv, clears private, then releases the umem (unmap, detach, put)', () => {
    const { result, k } = withMr(ttm, {}, function* (t, imp, exp) {
      yield* imp.attach(t);
      const refs = exp.buf.refcount;
      yield* imp.ops.dereg_mr(t);
      const umem = umemOf(imp);
      return { refs, after: exp.buf.refcount, umem, mr: imp.mr };
    });
    expect(result.after).toBe(result.refs - 1);
    expect(result.mr.released).not.toBeNull();
    expect(result.mr.entries[0]).toBeNull();
    expect(result.umem.private).toBeNull();
    expect(result.umem.revoked).toBe(true);
    expect(result.umem.sgt).toBeNull();
    expect(result.umem.attach?.detached).not.toBeNull();
    expect(k.findings).toEqual([]);
  });

  it('after dereg an access finds no MTT entry and no mkey to fault on: it fails without a finding', () => {
    const { k } = withMr(ttm, {}, function* (t, imp) {
      yield* imp.attach(t);
      yield* imp.ops.dereg_mr(t);
      yield* imp.ops.dma(t, { page: 0 });
      yield* imp.ops.dereg_mr(t); // once only
    });
    expect(k.findings).toEqual([]);
  });

  it('on vfio-pci a revoke zaps the MTT; later faults get -ENODEV and the access fails, no finding ([V6])', () => {
    expectSafe(
      check(
        fromYaml(`
name: odp-vfio
buffers: { bar: { exporter: vfio-pci } }
importers: { nic: { driver: ib-umem-dmabuf, buffer: bar } }
threads:
  nic: [ { nic.dma: { page: 0 } }, { nic.dma: { page: 0 } } ]
  vmm: [ bar.revoke ]
`),
      ),
    );
  });
});

describe('ib-umem-dmabuf, pinned modes', () => {
  it('pinned: no invalidate callback, so vfio-pci refuses it at reg ([V4])', () => {
    const { result } = withMr(vfioPci, { mode: 'pinned' }, function* (t, imp) {
      return yield* imp.attach(t);
    });
    expect(result).toBe(-EOPNOTSUPP);
  });

  it('pinned: on ttm the buffer is pinned from reg, so a move gets -EBUSY and the MTT stays valid', () => {
    const { result, k } = withMr(ttm, { mode: 'pinned' }, function* (t, imp, exp) {
      yield* imp.attach(t);
      const umem = umemOf(imp);
      const moved = yield* exp.ops.move?.(t, {}) as KGen<unknown>;
      yield* imp.ops.dma(t, { page: 0 });
      return { moved, pins: umem.attach?.pinCount, mtt: imp.mr.entries[0], callback: umem.attach?.importer_ops };
    });
    expect(result.moved).toBe(-EBUSY);
    expect(result.pins).toBe(1);
    expect(result.callback?.invalidate_mappings).toBeUndefined();
    expect(result.mtt?.stale).toBe(false);
    expect(k.findings).toEqual([]);
  });

  it('pinned_revocable: the revoke runs the driver callback (MTT zapped), then unmaps and unpins, once', () => {
    const { result, k } = withMr(vfioPci, { mode: 'pinned_revocable' }, function* (t, imp, exp) {
      expect(yield* imp.attach(t)).toBe(0);
      const umem = umemOf(imp);
      const before = { pins: umem.attach?.pinCount, mtt: imp.mr.entries[0] !== null, cb: umem.pinned_revoke !== null };
      yield* exp.ops.revoke?.(t, {}) as KGen<unknown>;
      const after = { pins: umem.attach?.pinCount, mtt: imp.mr.entries[0], sgt: umem.sgt, revoked: umem.revoked };
      yield* imp.ops.dma(t, { page: 0 });
      yield* imp.ops.dereg_mr(t);
      return { before, after, detached: umem.attach?.detached };
    });
    expect(result.before).toEqual({ pins: 1, mtt: true, cb: true });
    expect(result.after).toEqual({ pins: 0, mtt: null, sgt: null, revoked: true });
    expect(result.detached).not.toBeNull();
    expect(k.findings).toEqual([]);
  });
});

describe('ib-umem-dmabuf bug options', () => {
  const ttmMove = (options: string, nic: string) => `
name: o
buffers: { bo: { exporter: ttm } }
importers: { nic: { driver: ib-umem-dmabuf, buffer: bo${options ? `, options: { ${options} }` : ''} } }
threads:
  nic: [ ${nic} ]
  evictor: [ bo.move ]
`;

  it('mtt_lock: umem_mutex programs the MTT with pages the move freed; resv (default) does not ([LT9])', () => {
    const nic = '{ nic.page_fault: { page: 0 } }, { nic.dma: { page: 0 } }';
    expectSafe(check(fromYaml(ttmMove('', nic))));
    const r = check(fromYaml(ttmMove('mtt_lock: umem_mutex', nic)));
    expectBug(r, 'stale-mapping');
    expect(codes(r)).toContain('use-after-free');
    expect(first(r, 'stale-mapping').message).toMatch(
      /nic installs a dma for pfn 0x[0-9a-f]+, which no longer backs bo/,
    );
    expect(first(r, 'stale-mapping').stack).toContain('mlx5r_umr_update_mr_pas');
    expect(first(r, 'use-after-free').message).toContain("through nic:mtt's dma for bo page 0");
  });

  it("dereg_takes_resv: false lets a move's callback post a UMR on the released mkey ([I7]); the default does not", () => {
    expectSafe(check(fromYaml(ttmMove('', 'nic.dereg_mr'))));
    const r = check(fromYaml(ttmMove('dereg_takes_resv: false', 'nic.dereg_mr')));
    expect(codes(r)).toEqual(['api-misuse']);
    const f = first(r, 'api-misuse');
    expect(f.message).toMatch(
      /^WARNING: mlx5r_umr_post_send_wait: mlx5r_umr_update_mr_pas: UMR on the mkey of nic:mr, which mlx5_revoke_mr already released \(/,
    );
    expect(f.rules).toContain('I7');
    expect(f.stack).toContain('mlx5_ib_dmabuf_invalidate_cb');
  });

  it('wait_kernel_fence: false lets the NIC read a page a pipelined move has not copied ([LT7])', () => {
    const y = (opt: string) => `
name: fence
buffers: { bo: { exporter: ttm, options: { async_move: true } } }
importers: { nic: { driver: ib-umem-dmabuf, buffer: bo${opt} } }
threads:
  nic: [ { nic.dma: { page: 0 } } ]
  evictor: [ bo.move ]
  engine: [ bo.copy ]
`;
    expectSafe(check(fromYaml(y(''))));
    const r = check(fromYaml(y(', options: { wait_kernel_fence: false }')));
    expect(codes(r)).toEqual(['api-misuse']);
    const f = first(r, 'api-misuse');
    expect(f.message).toMatch(/before KERNEL fence bo:ttm-move#1 signalled/);
    expect(f.rules).toContain('LT7');
  });

  it('set_revoke_before_unlock: false lets a revoke miss the MTT the driver then programs ([V4], [I25])', () => {
    const y = (opt: string) => `
name: prv
buffers: { bar: { exporter: vfio-pci } }
importers: { nic: { driver: ib-umem-dmabuf, buffer: bar, options: { mode: pinned_revocable, attach: manual${opt} } } }
threads:
  nic: [ nic.attach, { nic.dma: { page: 0 } } ]
  vmm: [ bar.revoke ]
`;
    expectSafe(check(fromYaml(y(''))));
    const r = check(fromYaml(y(', set_revoke_before_unlock: false')));
    expectBug(r, 'stale-mapping');
    expect(first(r, 'stale-mapping').message).toContain("nic:mtt's dma for bar page 0 still maps it");
  });

  it('rejects mode-specific options with the other modes', () => {
    const y = (opts: string) => `
name: bad
buffers: { bo: { exporter: ttm } }
importers: { nic: { driver: ib-umem-dmabuf, buffer: bo, options: { ${opts} } } }
threads: { t: [ nic.dereg_mr ] }
`;
    expect(() => fromYaml(y('mode: pinned, mtt_lock: umem_mutex'))).toThrow(/mtt_lock only applies to mode: odp/);
    expect(() => fromYaml(y('mode: pinned_revocable, dereg_takes_resv: false'))).toThrow(/dereg_takes_resv/);
    expect(() => fromYaml(y('mode: pinned, wait_kernel_fence: false'))).toThrow(/wait_kernel_fence/);
    expect(() => fromYaml(y('set_revoke_before_unlock: false'))).toThrow(/set_revoke_before_unlock/);
    expect(() => fromYaml(y('mode: pinned_revocable, set_revoke_before_unlock: false'))).not.toThrow();
  });
});

/**
 * The TS example of docs/scenario-format.md: a driver module (a NIC that
 * cannot fault) built only from what `dmabuf-check` exports — the umem_dmabuf
 * layer, and an IO page table as the NIC's translation table.
 */
class RevocableNic implements ImporterInstance {
  readonly attachCall = 'ib_umem_dmabuf_get_pinned_revocable_and_lock';
  readonly table: IommuDomain;
  umem: IbUmemDmabuf | null = null;

  constructor(readonly env: ImporterEnv) {
    this.table = new IommuDomain(env.k, `${env.name}:mtt`, env.pages);
  }

  *attach(t: Task): KGen<number> {
    const env = this.env;
    const u = yield* ib_umem_dmabuf_get_pinned_revocable_and_lock(t, env.name, env.buffer, env.name);
    if (isErr(u)) return u;
    this.umem = u;
    // resv is held: program the table, install the revoke callback, then unlock ([V4]).
    yield* iommu_map(t, this.table, `${env.name}:mtt`, env.buffer.name, u.sgt?.entries ?? []);
    if (env.options.install_revoke !== false) ib_umem_dmabuf_set_revoke_locked(t, u, nic_revoke, this.table);
    yield* dma_resv_unlock(t, env.buffer.resv);
    return 0;
  }

  *detach(t: Task): KGen {
    if (this.umem) yield* ib_umem_dmabuf_release(t, this.umem);
    this.umem = null;
  }

  *teardown(t: Task): KGen {
    yield* this.detach(t);
  }

  readonly ops = { dma: (t: Task, args: OpArgs) => nic_dma(t, this.table, Number(args.page)) };
}

/** The revoke callback (resv held): no access may remain when it returns. */
const nic_revoke = kfn('nic_revoke', function* (t: Task, table: unknown): KGen {
  yield* iommu_unmap(t, table as IommuDomain);
});
const nic_dma = kfn('nic_dma', function* (t: Task, table: IommuDomain, page: number): KGen {
  yield* device_dma_table(t, table, page);
});

const revocableNic = defineImporter({
  name: 'revocable-nic',
  summary: 'a pinned revocable NIC written as a module',
  options: { install_revoke: { type: 'boolean', default: true, doc: 'install the revoke callback' } },
  ops: { dma: { doc: 'the NIC accesses a page', args: PAGE_ARG } },
  create: (env) => new RevocableNic(env),
});

describe('a driver module on the exported RDMA and IOMMU kernel objects', () => {
  const y = (opt: string) => `
name: module
buffers: { bar: { exporter: vfio-pci } }
importers: { nic: { driver: ./nic.ts, buffer: bar${opt} } }
threads:
  nic: [ { nic.dma: { page: 0 } } ]
  vmm: [ bar.revoke ]
`;
  const modules = new Map<string, DriverDef>([['./nic.ts', revocableNic]]);

  it('with its revoke callback installed under resv, a revoke leaves nothing mapped', () => {
    expectSafe(check(fromYaml(y(''), modules)));
  });

  it('without one, the revoke unmaps the umem but the table keeps the BAR mapped', () => {
    const r = check(fromYaml(y(', options: { install_revoke: false }'), modules));
    expectBug(r, 'stale-mapping');
  });
});
