/** vfio-pci: device close ([V3], [LT11], [I26]) and the iommufd private interconnect ([V7]). */
import { describe, expect, it } from 'vitest';
import { vfio_pci_dma_buf_iommufd_map, vfio_pci_dma_buf_move } from '../../src/drivers/exporters/vfio-pci.ts';
import {
  type DmaBufAttachment,
  defineImporter,
  dma_buf_dynamic_attach,
  dma_resv_lock,
  dma_resv_unlock,
  type ImporterEnv,
  type ImporterInstance,
  isErr,
  type KGen,
  type Task,
} from '../../src/index.ts';
import { ENODEV, EOPNOTSUPP } from '../../src/kernel/errno.ts';
import { check, codes, expectSafe, fromYaml } from '../helpers.ts';

describe('vfio-pci device close', () => {
  it('close revokes for good: an unrevoke afterwards does not bring the BAR back ([LT11], [V3])', () => {
    const r = check(
      fromYaml(`
name: close
buffers: { mmio: { exporter: vfio-pci } }
importers: { kvm: { driver: kvm, buffer: mmio, options: { zap_on_invalidate: false } } }
threads:
  t: [ { kvm.access: { page: 0 } }, mmio.close, mmio.unrevoke, { kvm.access: { page: 0 } } ]
`),
    );
    // The SPTE KVM kept (no zap) maps a BAR that close disabled and unrevoke could not re-enable.
    expect(codes(r)).toContain('access-after-revoke');
  });

  it('a revoke then unrevoke (no close) re-enables the BAR: a fresh fault maps it again', () => {
    expectSafe(
      check(
        fromYaml(`
name: reopen
buffers: { mmio: { exporter: vfio-pci } }
importers: { kvm: { driver: kvm, buffer: mmio } }
threads:
  t: [ { kvm.access: { page: 0 } }, mmio.revoke, mmio.unrevoke, { kvm.access: { page: 0 } } ]
`),
      ),
    );
  });

  it('vfio_pci_dma_buf_move without memory_lock held for write is lock-not-held ([I26])', () => {
    const caller = defineImporter({
      name: 'caller',
      summary: 'calls vfio_pci_dma_buf_move without memory_lock',
      options: {},
      ops: { move: { doc: 'move' } },
      create: (env: ImporterEnv): ImporterInstance => ({
        attachCall: 'none',
        *attach(): KGen<number> {
          return 0;
        },
        *detach(): KGen {},
        *teardown(): KGen {},
        ops: {
          move: function* (t: Task): KGen {
            const priv = env.buffer.priv as { vdev: Parameters<typeof vfio_pci_dma_buf_move>[1] };
            yield* vfio_pci_dma_buf_move(t, priv.vdev, () => env.buffer.priv as never, true);
          },
        },
      }),
    });
    const r = check(
      fromYaml(
        'name: nolock\nbuffers: { mmio: { exporter: vfio-pci } }\nimporters: { c: { driver: ./c.ts, buffer: mmio } }\nthreads: { t: [c.move] }\n',
        new Map([['./c.ts', caller]]),
      ),
    );
    expect(codes(r)).toContain('lock-not-held');
    expect(r.findings.find((f) => f.code === 'lock-not-held')?.rules).toContain('I26');
  });
});

describe('vfio_pci_dma_buf_iommufd_map ([V7])', () => {
  const results: Record<string, unknown[]> = {};
  const iommufd = defineImporter({
    name: 'phys',
    summary: 'maps through the private interconnect',
    options: {},
    ops: { map: { doc: 'map' } },
    create: (env: ImporterEnv): ImporterInstance => {
      let att: DmaBufAttachment | null = null;
      return {
        attachCall: 'dma_buf_dynamic_attach',
        *attach(t: Task): KGen<number> {
          const a = yield* dma_buf_dynamic_attach(
            t,
            env.buffer,
            'iommufd',
            { allow_peer2peer: true, *invalidate_mappings() {} },
            null,
            env.name,
          );
          if (isErr(a)) return a;
          att = a;
          return 0;
        },
        *detach(): KGen {},
        *teardown(): KGen {},
        ops: {
          map: function* (t: Task): KGen {
            if (!att) return;
            yield* dma_resv_lock(t, env.buffer.resv, null);
            const r = yield* vfio_pci_dma_buf_iommufd_map(t, att);
            (results[env.buffer.name] ??= []).push(isErr(r) ? r : r.map((p) => p.frame.pfn));
            yield* dma_resv_unlock(t, env.buffer.resv);
          },
        },
      };
    },
  });
  const run = (exporter: string, ops: string) =>
    check(
      fromYaml(
        `name: v7\nbuffers: { buf: { exporter: ${exporter}, pages: 2 } }\nimporters: { io: { driver: ./p.ts, buffer: buf } }\nthreads: { t: [${ops}] }\n`,
        new Map([['./p.ts', iommufd]]),
      ),
    );

  it("returns the buffer's one physical range", () => {
    results.buf = [];
    run('vfio-pci', 'io.map');
    expect(results.buf?.[0]).toEqual([0xf0000, 0xf0001]);
  });

  it('-ENODEV once revoked', () => {
    results.buf = [];
    run('vfio-pci', 'buf.revoke, io.map');
    expect(results.buf?.[0]).toBe(-ENODEV);
  });

  it('-EOPNOTSUPP for a buffer vfio did not export', () => {
    results.buf = [];
    run('ttm', 'io.map');
    expect(results.buf?.[0]).toBe(-EOPNOTSUPP);
  });
});
