/**
 * In-kernel CPU access to a dma-buf and the revoke wait for unmap:
 * - the core's dma_buf_vmap / dma_buf_vunmap rules ([C6], [L1], [LT2]) and
 *   dma_buf_begin/end_cpu_access ([C7], [L2], [R1]), called directly;
 * - every option and op of the new `cpu-access` importer and `udmabuf`
 *   exporter, and of the options added to `ttm` and `dma-dynamic`, each as a
 *   pair of scenarios that differ in one value;
 * - vfio-pci's bounded wait for importers to unmap ([V4], [V5] 6): on the
 *   simulated clock it ends as soon as the last mapping goes, or WARNs after
 *   msecs_to_jiffies(1000).
 */
import { describe, expect, it } from 'vitest';
import type { CheckResult } from '../../src/check.ts';
import { udmabuf } from '../../src/drivers/exporters/udmabuf.ts';
import { type ChoiceSource, type ExecState, runExecution } from '../../src/explorer/execution.ts';
import {
  DMA_RESV_USAGE_READ,
  DMA_RESV_USAGE_WRITE,
  type DmaBuf,
  type DmaBufOps,
  type DmaDataDirection,
  type DmaFence,
  type DmaResvUsage,
  type DriverDef,
  defineImporter,
  dma_buf_begin_cpu_access,
  dma_buf_end_cpu_access,
  dma_buf_export,
  dma_buf_put,
  dma_buf_vmap,
  dma_buf_vmap_unlocked,
  dma_buf_vunmap,
  dma_buf_vunmap_unlocked,
  dma_fence_init,
  dma_fence_signal,
  dma_resv_add_fence,
  dma_resv_lock,
  dma_resv_reserve_fences,
  dma_resv_unlock,
  EINVAL,
  IosysMap,
  isErr,
  Kernel,
  type KGen,
  type Task,
} from '../../src/index.ts';
import { msecs_to_jiffies } from '../../src/kernel/kernel.ts';
import { compile } from '../../src/scenario/compile.ts';
import { check, codes, expectBug, expectSafe, first, fromYaml } from '../helpers.ts';
import { runUntilBlocked, solo } from '../kernel/harness.ts';

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const FENCE_OPS = { driverName: 'test', timelineName: 'test' };

/** Calls of a probe exporter's CPU-access ops, in order. */
type Calls = string[];

/** A buffer of one page whose vmap/vunmap/begin/end ops record their calls (vmap may fail). */
function* probeBuffer(t: Task, calls: Calls, opts: { vmap?: boolean; vmapFails?: boolean; begin?: number } = {}) {
  const ops: DmaBufOps = {
    *map_dma_buf() {
      return -EINVAL;
    },
    *unmap_dma_buf() {},
    *release() {},
    *begin_cpu_access(_t, _b, dir) {
      calls.push(`begin ${dir}`);
      return opts.begin ?? 0;
    },
    *end_cpu_access(_t, _b, dir) {
      calls.push(`end ${dir}`);
      return 0;
    },
  };
  if (opts.vmap !== false) {
    ops.vmap = function* (_t, b) {
      calls.push('vmap');
      return opts.vmapFails ? -EINVAL : new IosysMap(b.name, []);
    };
    ops.vunmap = function* () {
      calls.push('vunmap');
    };
  }
  const buf = yield* dma_buf_export(t, 'buf', { exp_name: 'probe', ops, pages: 1, priv: null });
  if (isErr(buf)) throw new Error('export failed');
  return buf;
}

function findingCodes(k: Kernel): string[] {
  return k.findings.map((f) => f.code);
}

/** Adds an unsignalled fence at `usage` to the buffer's resv (one task, to completion). */
function addFence(k: Kernel, buf: DmaBuf, usage: DmaResvUsage) {
  return solo(function* (t) {
    const f = dma_fence_init(t, `f${usage}`, FENCE_OPS, k.fenceContextAlloc(), 1);
    yield* dma_resv_lock(t, buf.resv, null);
    dma_resv_reserve_fences(t, buf.resv, 1);
    yield* dma_resv_add_fence(t, buf.resv, f, usage);
    yield* dma_resv_unlock(t, buf.resv);
    return f;
  }, k).result;
}

/** Whether begin_cpu_access(dir) blocks on a buffer holding one unsignalled fence at `usage`; it must finish after the signal. */
function beginBlocks(usage: DmaResvUsage, dir: DmaDataDirection): boolean {
  const k = new Kernel();
  const calls: Calls = [];
  const buf = solo((t) => probeBuffer(t, calls), k).result;
  const f = addFence(k, buf, usage);
  const t = k.newTask('cpu');
  const gen = dma_buf_begin_cpu_access(t, buf, dir);
  const finished = runUntilBlocked(t, gen);
  if (!finished) {
    expect(t.pending.fn).toMatch(/^dma_fence_wait/);
    solo((t) => dma_fence_signal(t, f), k);
    expect(runUntilBlocked(t, gen)).toBe(true);
  }
  expect(calls).toEqual([`begin ${dir}`]);
  expect(findingCodes(k)).toEqual([]);
  return !finished;
}

function run(yaml: string, modules?: ReadonlyMap<string, DriverDef>): CheckResult {
  return check(fromYaml(yaml, modules));
}

/** One buffer `bo`, importers and threads given as YAML lines. */
function scenario(o: {
  exporter: string;
  bufferOptions?: string | undefined;
  importers: string;
  threads: string;
  expect?: string;
}): string {
  return `
name: t
buffers:
  bo: { exporter: ${o.exporter}${o.bufferOptions ? `, options: { ${o.bufferOptions} }` : ''} }
importers:
${o.importers}
threads:
${o.threads}
${o.expect ? `expect: ${o.expect}` : ''}
`;
}

/** A module importer that adds an unsignalled READ fence (a device still reading, `submit`) and signals it (`complete`). */
const READER: ReadonlyMap<string, DriverDef> = new Map<string, DriverDef>([
  [
    './reader.ts',
    defineImporter({
      name: 'reader',
      summary: 'leaves a READ fence unsignalled until complete',
      options: {},
      ops: { submit: { doc: 'add a READ fence' }, complete: { doc: 'signal it' } },
      create: (env) => {
        let fence: DmaFence | null = null;
        return {
          attachCall: 'none',
          *attach() {
            return 0;
          },
          *detach() {},
          *teardown() {},
          ops: {
            *submit(t: Task) {
              const resv = env.buffer.resv;
              yield* dma_resv_lock(t, resv, null);
              dma_resv_reserve_fences(t, resv, 1);
              fence = dma_fence_init(t, `${env.buffer.name}:reader#1`, FENCE_OPS, t.k.fenceContextAlloc(), 1);
              yield* dma_resv_add_fence(t, resv, fence, DMA_RESV_USAGE_READ);
              yield* dma_resv_unlock(t, resv);
            },
            *complete(t: Task) {
              if (fence) yield* dma_fence_signal(t, fence);
            },
          },
        };
      },
    }),
  ],
]);

const CPU_OPS =
  '[ cpu.vmap, { cpu.begin_cpu_access: { write: false } }, { cpu.access: { page: 0 } }, cpu.end_cpu_access, cpu.vunmap ]';

/** A scheduler that always runs the first runnable thread of `order` (thread indices). */
class Prefer implements ChoiceSource {
  constructor(private readonly order: readonly number[]) {}
  choose(_x: ExecState, enabled: number): number {
    for (const i of this.order) if (enabled & (1 << i)) return i;
    return 31 - Math.clz32(enabled & -enabled);
  }
}

// ===========================================================================
// The core: dma_buf_vmap / dma_buf_vunmap ([C6])
// ===========================================================================

describe('dma_buf_vmap / dma_buf_vunmap ([C6])', () => {
  it('need resv held: without it lock-not-held ([L1], [I14]); with it nothing', () => {
    const bad = solo(function* (t) {
      const buf = yield* probeBuffer(t, []);
      const map = yield* dma_buf_vmap(t, buf);
      yield* dma_buf_vunmap(t, buf, isErr(map) ? null : map);
    });
    expect(findingCodes(bad.k)).toEqual(['lock-not-held', 'lock-not-held']);
    expect(bad.k.findings.map((f) => f.message)).toEqual([
      'dma_buf_vmap called without holding buf->resv',
      'dma_buf_vunmap called without holding buf->resv',
    ]);
    const good = solo(function* (t) {
      const buf = yield* probeBuffer(t, []);
      yield* dma_resv_lock(t, buf.resv, null);
      const map = yield* dma_buf_vmap(t, buf);
      yield* dma_buf_vunmap(t, buf, isErr(map) ? null : map);
      yield* dma_resv_unlock(t, buf.resv);
    });
    expect(findingCodes(good.k)).toEqual([]);
  });

  it('the first vmap calls the exporter and caches the pointer; later ones only count; the last vunmap calls the exporter', () => {
    const calls: Calls = [];
    const { result } = solo(function* (t) {
      const buf = yield* probeBuffer(t, calls);
      const a = yield* dma_buf_vmap_unlocked(t, buf);
      const b = yield* dma_buf_vmap_unlocked(t, buf);
      const afterTwo = { counter: buf.vmapping_counter, same: a === b && a === buf.vmap_ptr, calls: calls.slice() };
      yield* dma_buf_vunmap_unlocked(t, buf, isErr(a) ? null : a);
      const afterOne = { counter: buf.vmapping_counter, cached: buf.vmap_ptr !== null, calls: calls.slice() };
      yield* dma_buf_vunmap_unlocked(t, buf, isErr(b) ? null : b);
      return { afterTwo, afterOne, end: { counter: buf.vmapping_counter, cached: buf.vmap_ptr !== null } };
    });
    expect(result.afterTwo).toEqual({ counter: 2, same: true, calls: ['vmap'] });
    expect(result.afterOne).toEqual({ counter: 1, cached: true, calls: ['vmap'] });
    expect(result.end).toEqual({ counter: 0, cached: false });
    expect(calls).toEqual(['vmap', 'vunmap']);
  });

  it('an exporter without vmap: -EINVAL, no warning', () => {
    const { result, k } = solo(function* (t) {
      const buf = yield* probeBuffer(t, [], { vmap: false });
      return yield* dma_buf_vmap_unlocked(t, buf);
    });
    expect(result).toBe(-EINVAL);
    expect(findingCodes(k)).toEqual([]);
  });

  it('a failing exporter vmap is WARNed about and returned; nothing is cached', () => {
    const { result, k } = solo(function* (t) {
      const buf = yield* probeBuffer(t, [], { vmapFails: true });
      const r = yield* dma_buf_vmap_unlocked(t, buf);
      return { r, counter: buf.vmapping_counter };
    });
    expect(result).toEqual({ r: -EINVAL, counter: 0 });
    expect(k.findings.map((f) => f.message)).toEqual(["WARNING: dma_buf_vmap: exporter probe's vmap failed (-EINVAL)"]);
  });

  const vunmapMisuse = (body: (t: Task, buf: DmaBuf) => KGen) => {
    const calls: Calls = [];
    const { k } = solo(function* (t) {
      const buf = yield* probeBuffer(t, calls);
      yield* dma_resv_lock(t, buf.resv, null);
      yield* body(t, buf);
      yield* dma_resv_unlock(t, buf.resv);
    });
    return { k, calls };
  };

  it('vunmap of a buffer that is not vmapped is what the kernel BUGs on: api-misuse, and nothing happens', () => {
    const { k, calls } = vunmapMisuse(function* (t, buf) {
      yield* dma_buf_vunmap(t, buf, new IosysMap(buf.name, []));
    });
    expect(findingCodes(k)).toEqual(['api-misuse']);
    expect(k.findings[0]?.message).toMatch(/buf is not vmapped/);
    expect(calls).toEqual([]);
  });

  it('vunmap of a NULL map is api-misuse', () => {
    const { k } = vunmapMisuse(function* (t, buf) {
      yield* dma_buf_vmap(t, buf);
      yield* dma_buf_vunmap(t, buf, null);
    });
    expect(k.findings.map((f) => f.message)).toEqual(['WARNING: dma_buf_vunmap: vunmap of a NULL iosys_map']);
  });

  it('vunmap of a different pointer is api-misuse; the counter is untouched', () => {
    const { k, calls } = vunmapMisuse(function* (t, buf) {
      yield* dma_buf_vmap(t, buf);
      yield* dma_buf_vunmap(t, buf, new IosysMap(buf.name, []));
      expect(buf.vmapping_counter).toBe(1);
    });
    expect(k.findings[0]?.message).toMatch(/not the one dma_buf_vmap returned/);
    expect(calls).toEqual(['vmap']);
  });

  it('vunmap with the counter already 0 while a pointer is cached is api-misuse', () => {
    const { k } = vunmapMisuse(function* (t, buf) {
      const map = yield* dma_buf_vmap(t, buf);
      buf.vmapping_counter = 0;
      yield* dma_buf_vunmap(t, buf, isErr(map) ? null : map);
    });
    expect(k.findings[0]?.message).toMatch(/vmapping_counter is 0/);
  });

  it('the last put of a vmapped buffer is a leak (vmap) ([LT2], [I8])', () => {
    const { k } = solo(function* (t) {
      const buf = yield* probeBuffer(t, []);
      yield* dma_buf_vmap_unlocked(t, buf);
      yield* dma_buf_put(t, buf);
    });
    expect(k.findings.map((f) => [f.code, f.message])).toEqual([['leak', 'buf released while vmapped']]);
  });
});

// ===========================================================================
// The core: dma_buf_begin_cpu_access / dma_buf_end_cpu_access ([C7])
// ===========================================================================

describe('dma_buf_begin_cpu_access / dma_buf_end_cpu_access ([C7])', () => {
  it('must be called without resv: lock-held from its might_lock ([L2], [I14]); without resv nothing', () => {
    const held = solo(function* (t) {
      const buf = yield* probeBuffer(t, []);
      yield* dma_resv_lock(t, buf.resv, null);
      yield* dma_buf_begin_cpu_access(t, buf, 'DMA_FROM_DEVICE');
      yield* dma_buf_end_cpu_access(t, buf, 'DMA_FROM_DEVICE');
      yield* dma_resv_unlock(t, buf.resv);
    });
    expect(held.k.findings.map((f) => f.message)).toEqual([
      'dma_buf_begin_cpu_access called with buf->resv held',
      'dma_buf_end_cpu_access called with buf->resv held',
    ]);
    const free = solo(function* (t) {
      const buf = yield* probeBuffer(t, []);
      yield* dma_buf_begin_cpu_access(t, buf, 'DMA_FROM_DEVICE');
      yield* dma_buf_end_cpu_access(t, buf, 'DMA_FROM_DEVICE');
    });
    expect(findingCodes(free.k)).toEqual([]);
  });

  it('a WRITE fence blocks a CPU read until it signals ([R1]: a reader waits for writers)', () => {
    expect(beginBlocks(DMA_RESV_USAGE_WRITE, 'DMA_FROM_DEVICE')).toBe(true);
  });

  it('a READ fence does not block a CPU read', () => {
    expect(beginBlocks(DMA_RESV_USAGE_READ, 'DMA_FROM_DEVICE')).toBe(false);
  });

  it('a CPU write (DMA_TO_DEVICE, DMA_BIDIRECTIONAL) waits for READ fences too ([R1]: a writer waits for readers)', () => {
    expect(beginBlocks(DMA_RESV_USAGE_READ, 'DMA_TO_DEVICE')).toBe(true);
    expect(beginBlocks(DMA_RESV_USAGE_READ, 'DMA_BIDIRECTIONAL')).toBe(true);
    expect(beginBlocks(DMA_RESV_USAGE_WRITE, 'DMA_BIDIRECTIONAL')).toBe(true);
  });

  it('the exporter op runs first; a non-zero return skips the fence wait and is returned', () => {
    const k = new Kernel();
    const calls: Calls = [];
    const buf = solo((t) => probeBuffer(t, calls, { begin: -EINVAL }), k).result;
    addFence(k, buf, DMA_RESV_USAGE_WRITE);
    const { result } = solo((t) => dma_buf_begin_cpu_access(t, buf, 'DMA_FROM_DEVICE'), k);
    expect(result).toBe(-EINVAL);
    expect(calls).toEqual(['begin DMA_FROM_DEVICE']);
  });

  it('end_cpu_access only calls the exporter: it never waits for fences', () => {
    const k = new Kernel();
    const calls: Calls = [];
    const buf = solo((t) => probeBuffer(t, calls), k).result;
    addFence(k, buf, DMA_RESV_USAGE_WRITE);
    const { result } = solo((t) => dma_buf_end_cpu_access(t, buf, 'DMA_BIDIRECTIONAL'), k);
    expect(result).toBe(0);
    expect(calls).toEqual(['end DMA_BIDIRECTIONAL']);
  });
});

// ===========================================================================
// Importer cpu-access
// ===========================================================================

describe('importer cpu-access', () => {
  const cpu = (o: { exporter?: string; bufferOptions?: string; options?: string; threads: string }) =>
    run(
      scenario({
        exporter: o.exporter ?? 'system-heap',
        bufferOptions: o.bufferOptions,
        importers: `  cpu: { driver: cpu-access, buffer: bo${o.options ? `, options: { ${o.options} }` : ''} }`,
        threads: o.threads,
      }),
    );

  it('vmap, begin, access, end, vunmap is safe on system-heap, ttm and udmabuf', () => {
    for (const exporter of ['system-heap', 'ttm', 'udmabuf']) expectSafe(cpu({ exporter, threads: `  t: ${CPU_OPS}` }));
  });

  it('vmap_without_resv: true calls dma_buf_vmap/vunmap without resv: lock-not-held ([L1], [C6]); false is safe', () => {
    const r = cpu({ options: 'vmap_without_resv: true', threads: `  t: ${CPU_OPS}` });
    expectBug(r, 'lock-not-held');
    expect(r.findings.map((f) => f.message)).toContain('dma_buf_vmap called without holding bo->resv');
    expect(r.findings.map((f) => f.message)).toContain('dma_buf_vunmap called without holding bo->resv');
    expectSafe(cpu({ options: 'vmap_without_resv: false', threads: `  t: ${CPU_OPS}` }));
  });

  it('begin_cpu_access_with_resv: true on system-heap is lock-held only (its begin takes no resv) ([L2], [C7])', () => {
    const r = cpu({ options: 'begin_cpu_access_with_resv: true', threads: `  t: ${CPU_OPS}` });
    expect(codes(r)).toEqual(['lock-held', 'lock-held']);
    expect(r.findings.map((f) => f.message)).toEqual([
      'dma_buf_begin_cpu_access called with bo->resv held',
      'dma_buf_end_cpu_access called with bo->resv held',
    ]);
  });

  it('begin_cpu_access_with_resv: true on ttm also deadlocks: amdgpu_dma_buf_begin_cpu_access reserves the BO', () => {
    const r = cpu({ exporter: 'ttm', options: 'begin_cpu_access_with_resv: true', threads: `  t: ${CPU_OPS}` });
    expect(codes(r).slice(0, 2)).toEqual(['lock-held', 'deadlock']);
    expect(first(r, 'deadlock').message).toBe(
      'possible recursive locking detected: t takes bo->resv again in dma_resv_lock_interruptible',
    );
  });

  it('begin_cpu_access {write}: a CPU read does not wait for a READ fence; a read-modify-write does', () => {
    // A module importer that leaves an unsignalled READ fence (a device still reading) until `complete`.
    const threads = (write: boolean) =>
      `  t: [ rd.submit, { cpu.begin_cpu_access: { write: ${write} } }, cpu.end_cpu_access, rd.complete ]`;
    const yaml = (write: boolean) =>
      scenario({
        exporter: 'system-heap',
        importers: '  cpu: { driver: cpu-access, buffer: bo }\n  rd: { driver: ./reader.ts, buffer: bo }',
        threads: threads(write),
      });
    expectSafe(run(yaml(false), READER));
    const r = run(yaml(true), READER);
    expectBug(r, 'deadlock');
    expect(first(r, 'deadlock').message).toMatch(/t waits for bo:reader#1/);
  });

  it('access without a vmap dereferences a NULL iosys_map: api-misuse', () => {
    const r = cpu({ threads: '  t: [ { cpu.access: { page: 0 } } ]' });
    expect(r.findings.map((f) => f.message)).toEqual([
      'WARNING: cpu_access_read: CPU access to page 0 of bo through a NULL iosys_map (no vmap)',
    ]);
  });

  it('access after the vunmap goes through torn-down kernel PTEs: api-misuse', () => {
    const r = cpu({ threads: '  t: [ cpu.vmap, cpu.vunmap, { cpu.access: { page: 0 } } ]' });
    expectBug(r, 'api-misuse');
  });

  it('vunmap without a vmap hands NULL to the core, which BUGs: api-misuse', () => {
    const r = cpu({ threads: '  t: [ cpu.vunmap ]' });
    expect(r.findings.map((f) => f.message)).toEqual(['WARNING: dma_buf_vunmap: vunmap of a NULL iosys_map']);
  });

  it('two vmaps share the cached mapping; one vunmap keeps it; without the second the release finds it: leak', () => {
    expectSafe(cpu({ threads: '  t: [ cpu.vmap, cpu.vmap, cpu.vunmap, { cpu.access: { page: 0 } }, cpu.vunmap ]' }));
    const r = cpu({ threads: '  t: [ cpu.vmap, cpu.vmap, cpu.vunmap, { cpu.access: { page: 0 } } ]' });
    expectBug(r, 'leak');
    expect(first(r, 'leak').message).toBe('bo released while vmapped');
  });

  it('is refused by vfio-pci at setup (a static GEM import, no vmap there anyway)', () => {
    const r = cpu({ exporter: 'vfio-pci', threads: '  t: [ cpu.vmap ]' });
    expect(first(r, 'api-misuse').message).toContain('vfio-pci refused cpu-access importer cpu');
  });
});

// ===========================================================================
// Exporter ttm: vmap_pin, cpu_access_migrate
// ===========================================================================

describe('exporter ttm: CPU access options', () => {
  const ttmCpu = (bufferOptions: string, threads: string, expect?: string) =>
    run(
      scenario({
        exporter: 'ttm',
        bufferOptions,
        importers: '  cpu: { driver: cpu-access, buffer: bo }',
        threads,
        ...(expect ? { expect } : {}),
      }),
    );
  const VS_MOVE = `  damage: ${CPU_OPS}\n  evictor: [ bo.move ]`;

  it('vmap_pin: true (default) pins while vmapped: a concurrent move fails with -EBUSY, the access is safe ([C6])', () => {
    expectSafe(ttmCpu('vmap_pin: true, cpu_access_migrate: false', VS_MOVE));
  });

  it('vmap_pin: false (before the 2025 amdgpu fix): a concurrent move frees the pages under the vmap', () => {
    const r = ttmCpu(
      'vmap_pin: false, cpu_access_migrate: false',
      VS_MOVE,
      '{ verdict: bug, finding: use-after-free }',
    );
    expect(r.met).toBe(true);
    expectBug(r, 'use-after-free');
    expect(codes(r)).toContain('stale-mapping');
    expect(first(r, 'use-after-free').message).toBe(
      "BUG: KASAN: use-after-free in iosys_map_memcpy_from: cpu access to pfn 0x800000 through bo:vmap's pte for bo page 0",
    );
  });

  it('cpu_access_migrate: true moves an unpinned BO out of VRAM on a CPU read — under an unpinned vmap that is a use-after-free', () => {
    const single = `  t: ${CPU_OPS}`;
    expectBug(ttmCpu('vmap_pin: false, cpu_access_migrate: true', single), 'use-after-free');
    expectSafe(ttmCpu('vmap_pin: false, cpu_access_migrate: false', single));
  });

  it('cpu_access_migrate: true migrates the BO on a CPU read (a full move: importers are invalidated); false leaves it', () => {
    // kvm without the zap keeps a stale SPTE across the migration, so the migration shows as a use-after-free.
    const yaml = (migrate: boolean) =>
      scenario({
        exporter: 'ttm',
        bufferOptions: `cpu_access_migrate: ${migrate}`,
        importers:
          '  vm: { driver: kvm, buffer: bo, options: { zap_on_invalidate: false } }\n  cpu: { driver: cpu-access, buffer: bo }',
        threads:
          '  t: [ { vm.access: { page: 0 } }, { cpu.begin_cpu_access: { write: false } }, cpu.end_cpu_access, { vm.access: { page: 0 } } ]',
      });
    expectBug(run(yaml(true)), 'use-after-free');
    expectSafe(run(yaml(false)));
  });
});

// ===========================================================================
// Exporter udmabuf
// ===========================================================================

describe('exporter udmabuf', () => {
  const udma = (importers: string, threads: string) => run(scenario({ exporter: 'udmabuf', importers, threads }));

  it('is registered and has no move op (its pages never move)', () => {
    expect(() => fromYaml(scenario({ exporter: 'udmabuf', importers: '', threads: '  t: [ bo.move ]' }))).toThrow(
      /buffer "bo" has no op "move"/,
    );
  });

  it('map_dma_buf, mmap faults and vmap all map the memfd pages and stay valid while the owner drops its reference', () => {
    expectSafe(
      udma(
        '  dev: { driver: dma-static, buffer: bo }\n  app: { driver: cpu-mmap, buffer: bo }',
        '  t: [ dev.map, { dev.dma: { page: 0 } }, { app.access: { page: 0 } }, bo.put, { app.access: { page: 0 } }, { dev.dma: { page: 0 } }, dev.unmap ]',
      ),
    );
  });

  it('export: memfd pages from the system pool; a static exporter (no pin/unpin) whose own ops act on the memfd', () => {
    const { result } = solo(function* (t, k) {
      const r = yield* udmabuf.export(t, { k, name: 'fb', pages: 2, options: {} });
      if (isErr(r)) throw new Error('export');
      return { dynamic: r.buf.ops.pin !== undefined, pool: r.pool.name, ops: Object.keys(r.ops) };
    });
    expect(result).toEqual({
      dynamic: false,
      pool: 'system',
      ops: ['memfd_close', 'memfd_truncate', 'memfd_add_seals'],
    });
  });

  it('end_cpu_access before any begin_cpu_access is -EINVAL (no ubuf->sg yet); after a begin it is 0', () => {
    const { result, k } = solo(function* (t, k) {
      const r = yield* udmabuf.export(t, { k, name: 'fb', pages: 1, options: {} });
      if (isErr(r)) throw new Error('export');
      const early = yield* dma_buf_end_cpu_access(t, r.buf, 'DMA_FROM_DEVICE');
      const begin = yield* dma_buf_begin_cpu_access(t, r.buf, 'DMA_FROM_DEVICE');
      const late = yield* dma_buf_end_cpu_access(t, r.buf, 'DMA_FROM_DEVICE');
      // release puts ubuf->sg before freeing the pages: no stale mapping.
      yield* dma_buf_put(t, r.buf);
      return { early, begin, late };
    });
    expect(result).toEqual({ early: -EINVAL, begin: 0, late: 0 });
    expect(findingCodes(k)).toEqual([]);
  });

  it('vmap_udmabuf asserts resv itself: a vmap without resv is reported by the core and the exporter', () => {
    const r = udma(
      '  cpu: { driver: cpu-access, buffer: bo, options: { vmap_without_resv: true } }',
      `  t: ${CPU_OPS}`,
    );
    expect(r.findings.map((f) => f.message)).toContain('vmap_udmabuf called without holding bo->resv');
  });

  it('a vmap left at unbind: leak at release, then the memfd pages are freed under the kernel PTEs', () => {
    const r = udma('  cpu: { driver: cpu-access, buffer: bo }', '  t: [ cpu.vmap ]');
    expect(codes(r)).toEqual(['leak', 'stale-mapping']);
  });

  it('kvm on udmabuf: udmabuf has no get_pfn (none in the kernel), so the fault path WARNs', () => {
    const r = udma('  vm: { driver: kvm, buffer: bo }', '  vcpu: [ { vm.access: { page: 0 } } ]');
    expect(first(r, 'api-misuse').message).toBe('WARNING: dma_buf_get_pfn_unlocked: exporter udmabuf has no get_pfn');
  });
});

// ===========================================================================
// Importer dma-dynamic: invalidate_unmap, revocable, unmap_work; vfio's bounded wait
// ===========================================================================

describe('dma-dynamic invalidate_unmap / revocable and vfio-pci’s bounded wait for unmap ([V4], [V5])', () => {
  const vfio = (options: string, threads: string) =>
    scenario({
      exporter: 'vfio-pci',
      importers: `  nic: { driver: dma-dynamic, buffer: bo${options ? `, options: { ${options} }` : ''} }`,
      threads,
    });
  const DEV = '  dev: [ nic.map, { nic.dma: { page: 0 } } ]';
  const DEV_UNMAP = '  dev: [ nic.map, { nic.dma: { page: 0 } }, nic.unmap ]';
  const VMM = '  vmm: [ bo.revoke ]';
  const KWORKER = '  kworker: [ nic.unmap_work ]';

  /** One execution: dev first (maps), then the revoke, then the rest; returns the kernel. */
  const once = (yaml: string) => {
    const spec = fromYaml(yaml);
    return runExecution(compile(spec), new Prefer([0, 1, 2]));
  };

  it('callback (default): unmapped inside the callback; the wait ends at once: safe', () => {
    expectSafe(check(fromYaml(vfio('', `${DEV_UNMAP}\n${VMM}`))));
  });

  it('worker: the callback queues the unmap, a kworker does it within the bound: safe, and no time passes', () => {
    const yaml = vfio('invalidate_unmap: worker', `${DEV}\n${VMM}\n${KWORKER}`);
    expectSafe(check(fromYaml(yaml)));
    const r = once(yaml);
    expect(r.status).toBe('complete');
    expect(r.findings).toEqual([]);
    expect(r.kernel.jiffies).toBe(0);
  });

  it('worker without a kworker to run it: the wait times out after msecs_to_jiffies(1000) and WARNs', () => {
    const yaml = vfio('invalidate_unmap: worker', `${DEV}\n${VMM}`);
    const r = once(yaml);
    expect(r.kernel.jiffies).toBe(msecs_to_jiffies(1000));
    expect(r.findings.map((f) => f.message)).toContain(
      'WARNING: vfio_pci_dma_buf_move: timed out waiting for importers to unmap bo: 1 mapping(s) left after invalidate',
    );
    expectBug(check(fromYaml(yaml)), 'api-misuse');
  });

  it('none: the mapping is set aside and never unmapped: timeout WARN, then a leak at unbind — but no stale-mapping, the importer stopped using it ([LT9] ii)', () => {
    const r = check(fromYaml(vfio('invalidate_unmap: none', `${DEV}\n${VMM}`)));
    expect(codes(r)).toEqual(['api-misuse', 'leak']);
    expect(first(r, 'api-misuse').message).toMatch(/timed out waiting for importers to unmap bo/);
  });

  it('none with the unmap op (userspace unmaps, like iommufd): the unmap comes before the second is up: safe', () => {
    expectSafe(check(fromYaml(vfio('invalidate_unmap: none', `${DEV_UNMAP}\n${VMM}`))));
  });

  it('respect_invalidate: false (the mapping stays in use) times out too, and the BAR goes away under a live mapping', () => {
    const r = check(fromYaml(vfio('respect_invalidate: false', `${DEV}\n${VMM}`)));
    expect(codes(r)).toContain('api-misuse');
    expect(codes(r)).toContain('stale-mapping');
  });

  it('unmap_work returns at once unless invalidate_unmap is worker (nothing is ever queued)', () => {
    expectSafe(check(fromYaml(vfio('', `${DEV_UNMAP}\n${VMM}\n${KWORKER}`))));
    expectSafe(check(fromYaml(vfio('invalidate_unmap: none', `${DEV_UNMAP}\n${VMM}\n${KWORKER}`))));
  });

  it('worker: a kworker whose work is never queued sleeps for ever (deadlock once the rest is done)', () => {
    const yaml = scenario({
      exporter: 'ttm',
      importers: '  gpu: { driver: dma-dynamic, buffer: bo, options: { invalidate_unmap: worker } }',
      threads: '  t: [ gpu.map, gpu.unmap ]\n  kworker: [ gpu.unmap_work ]',
    });
    const r = check(fromYaml(yaml));
    expect(codes(r)).toEqual(['deadlock']);
    expect(first(r, 'deadlock').message).toBe('deadlock: kworker waits for gpu:unmap_work');
  });

  it('worker on a ttm move: the set-aside mapping is invalidated, so the move frees the old pages without a stale-mapping', () => {
    const yaml = scenario({
      exporter: 'ttm',
      importers: '  gpu: { driver: dma-dynamic, buffer: bo, options: { invalidate_unmap: worker } }',
      threads:
        '  drv: [ gpu.map, { gpu.dma: { page: 0 } }, { gpu.dma: { page: 0 } }, gpu.unmap ]\n  evictor: [ bo.move ]\n  kworker: [ gpu.unmap_work ]',
    });
    expectSafe(check(fromYaml(yaml)));
  });

  it('worker: detaching with the unmap work still pending leaks the mapping, and the late work uses a freed attachment', () => {
    const yaml = (finding: string) =>
      scenario({
        exporter: 'ttm',
        importers: '  gpu: { driver: dma-dynamic, buffer: bo, options: { invalidate_unmap: worker } }',
        threads: '  t: [ gpu.map, bo.move, gpu.detach ]\n  kworker: [ gpu.unmap_work ]',
        expect: `{ verdict: bug, finding: ${finding} }`,
      });
    const leak = check(fromYaml(yaml('leak')));
    expect(leak.met).toBe(true);
    expect(first(leak, 'leak').message).toBe('gpu detached with 1 mapping(s) not unmapped');
    const late = check(fromYaml(yaml('refcount')));
    expect(late.met).toBe(true);
    expect(first(late, 'refcount').message).toBe('dma_buf_unmap_attachment on gpu after dma_buf_detach freed it');
  });

  it('revocable: false has no invalidate callback: vfio-pci refuses it at attach; revocable: true is accepted', () => {
    const r = check(fromYaml(vfio('revocable: false', `${DEV_UNMAP}\n${VMM}`)));
    expect(r.findings.map((f) => f.message)).toEqual([
      'WARNING: dma_buf_dynamic_attach: setup: vfio-pci refused dma-dynamic importer nic: dma_buf_dynamic_attach returned -EOPNOTSUPP',
    ]);
    expectSafe(check(fromYaml(vfio('revocable: true', `${DEV_UNMAP}\n${VMM}`))));
  });

  it('revocable: false pins while mapped: a ttm move in between fails, while the revocable importer is moved and re-maps', () => {
    const ttm = (revocable: boolean) =>
      scenario({
        exporter: 'ttm',
        importers: `  gpu: { driver: dma-dynamic, buffer: bo, options: { revocable: ${revocable} } }\n  vm: { driver: kvm, buffer: bo, options: { zap_on_invalidate: false } }`,
        threads: '  t: [ { vm.access: { page: 0 } }, gpu.map, bo.move, gpu.unmap, { vm.access: { page: 0 } } ]',
      });
    // The move happens only for the revocable importer; kvm's stale SPTE shows it.
    expectSafe(check(fromYaml(ttm(false))));
    expectBug(check(fromYaml(ttm(true))), 'use-after-free');
  });

  it('a pin held at detach is a leak (revocable: false, map without unmap)', () => {
    const r = check(
      fromYaml(
        scenario({
          exporter: 'ttm',
          importers: '  gpu: { driver: dma-dynamic, buffer: bo, options: { revocable: false } }',
          threads: '  t: [ gpu.map ]',
        }),
      ),
    );
    const messages = r.findings.map((f) => f.message);
    expect(messages).toContain('gpu detached with 1 mapping(s) not unmapped');
    expect(messages).toContain('gpu detached with 1 pin(s) not undone');
  });

  it('option combinations without a callback to act on are bad input', () => {
    expect(() => fromYaml(vfio('revocable: false, invalidate_unmap: worker', DEV))).toThrow(
      /options\.revocable: revocable: false attaches without an invalidate callback/,
    );
    expect(() => fromYaml(vfio('respect_invalidate: false, invalidate_unmap: none', DEV))).toThrow(
      /options\.invalidate_unmap: respect_invalidate: false ignores the callback/,
    );
  });
});
