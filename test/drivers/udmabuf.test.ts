/**
 * udmabuf over a modelled memfd ([I2], [C1], [C2]): create checks the seals
 * (F_SEAL_SHRINK wanted, F_SEAL_WRITE refused) and pins one reference per
 * folio; page i's PFN is folio_pfn + offset (huge folios included); the
 * memfd's truncate and close drop the page cache's references, and the pins
 * keep the pages; F_SEAL_WRITE cannot be added while pinned; without pins
 * the close frees mapped pages; the legacy struct-page fault takes its
 * reference on the folio and its mapcount on the sub-page; the fault bound.
 */
import { describe, expect, it } from 'vitest';
import { KasanArray } from '../../src/checkers/kasan.ts';
import type { ExportedBuffer, ImporterInstance } from '../../src/drivers/driver.ts';
import { type Udmabuf, type UdmabufState, udmabuf } from '../../src/drivers/exporters/udmabuf.ts';
import { cpuMmap } from '../../src/drivers/importers/cpu-mmap.ts';
import { enumerateTraces } from '../../src/explorer/mazurkiewicz.ts';
import { EBADF, EBUSY, EINVAL, EPERM, isErr } from '../../src/kernel/errno.ts';
import { F_SEAL_SHRINK, type Memfd } from '../../src/kernel/memfd.ts';
import type { Vma } from '../../src/kernel/memory.ts';
import type { Frame } from '../../src/kernel/page-alloc.ts';
import type { KGen, Task } from '../../src/kernel/sched.ts';
import { compile, scenarioHash } from '../../src/scenario/compile.ts';
import { check, codes, expectBug, expectSafe, first, fromYaml } from '../helpers.ts';
import { solo } from '../kernel/harness.ts';

interface Ctx {
  readonly exported: ExportedBuffer;
  readonly imp: ImporterInstance;
  readonly vma: Vma;
  readonly u: UdmabufState;
  readonly memfd: Memfd | null;
}

/** Exports a udmabuf with `options` and mmaps it, in one task; the ops read what they need from `c`. */
function run(options: Record<string, string | number | boolean>, pages: number, body: (t: Task, c: Ctx) => KGen<void>) {
  return solo(function* (t, k) {
    const r = yield* udmabuf.export(t, { k, name: 'fb', pages, options });
    if (isErr(r)) throw new Error(`export failed: ${r}`);
    const exported = r as ExportedBuffer;
    const imp = cpuMmap.create({
      k,
      name: 'app',
      buffer: exported.buf,
      pages,
      options: {},
      buffers: new Map([['fb', exported.buf]]),
    });
    expect(yield* imp.attach(t)).toBe(0);
    const vma = (imp as unknown as { vma: Vma }).vma;
    const u = (exported.buf.priv as Udmabuf).state;
    if (!u) throw new Error('no udmabuf state');
    const memfd = (k.objects.find((o) => o.type === 'memfd') as Memfd | undefined) ?? null;
    yield* body(t, { exported, imp, vma, u, memfd });
  });
}

const bufOp = (c: Ctx, name: string) => {
  const f = c.exported.ops[name];
  if (!f) throw new Error(`no op ${name}`);
  return f;
};
const impOp = (c: Ctx, name: string) => {
  const f = c.imp.ops[name];
  if (!f) throw new Error(`no op ${name}`);
  return f;
};

describe('udmabuf_create', () => {
  it('check_memfd_seals: F_SEAL_SHRINK wanted, F_SEAL_WRITE refused (-EINVAL); check_seals: false takes any memfd', () => {
    const exportWith = (options: Record<string, string | boolean>) =>
      solo(function* (t, k) {
        return yield* udmabuf.export(t, { k, name: 'fb', pages: 1, options });
      }).result;
    expect(exportWith({ seals: 'none' })).toBe(-EINVAL);
    expect(exportWith({ seals: 'shrink+write' })).toBe(-EINVAL);
    expect(isErr(exportWith({}))).toBe(false);
    expect(isErr(exportWith({ seals: 'none', check_seals: false }))).toBe(false);
  });

  it('pins one reference per folio and records per page the folio and the offset: PFN = folio_pfn + offset', () => {
    run({ memfd: 'open', folio_order: 1, memfd_offset: 1 }, 2, function* (_t, c) {
      const [p0, p1] = c.u.frames as [Frame, Frame];
      const [f0, f1] = c.u.pinned as [Frame, Frame];
      expect(c.u.pinned.length).toBe(2);
      // Page 0 is the second page of folio 0, page 1 the first page of folio 1.
      expect(p0.head).toBe(f0);
      expect(p0.pfn).toBe(f0.pfn + 1);
      expect(p1).toBe(f1);
      expect(c.u.offsets).toEqual([1, 0]);
      expect(f1.pfn - f0.pfn).toBe(2);
      // Page cache + pin, on the folio; none on the tail page.
      expect([f0.refcount, f0.pincount, p0.refcount]).toEqual([2, 1, 0]);
      expect(f0.order).toBe(1);
    });
  });
});

describe('the memfd behind a udmabuf', () => {
  it('F_SEAL_SHRINK refuses the truncate; the close drops the page cache, the pins keep the pages', () => {
    const { k } = run({ memfd: 'open' }, 2, function* (t, c) {
      expect(c.memfd?.inode.seals).toBe(F_SEAL_SHRINK);
      expect(yield* bufOp(c, 'memfd_truncate')(t, { pages: 0 })).toBe(-EPERM);
      const [p0] = c.u.frames as [Frame];
      expect(p0.refcount).toBe(2);
      expect(yield* bufOp(c, 'memfd_close')(t, {})).toBe(0);
      expect([p0.refcount, p0.state]).toEqual([1, 'allocated']);
      expect(yield* bufOp(c, 'memfd_close')(t, {})).toBe(-EBADF);
      expect(yield* impOp(c, 'access')(t, { page: 0 })).toBe(0);
    });
    expect(k.findings).toEqual([]);
  });

  it('without the seal the truncate succeeds, and still the pins keep the pages', () => {
    const { k } = run({ memfd: 'open', seals: 'none', check_seals: false }, 2, function* (t, c) {
      expect(yield* bufOp(c, 'memfd_truncate')(t, { pages: 1 })).toBe(0);
      expect(c.memfd?.inode.i_pages.map((p) => p !== null)).toEqual([true, false]);
      const [, p1] = c.u.frames as [Frame, Frame];
      expect([p1.refcount, p1.state]).toEqual([1, 'allocated']);
    });
    expect(k.findings).toEqual([]);
  });

  it('F_SEAL_WRITE cannot be added while the udmabuf pins the pages (-EBUSY); F_SEAL_GROW can', () => {
    run({ memfd: 'open' }, 1, function* (t, c) {
      expect(yield* bufOp(c, 'memfd_add_seals')(t, { seal: 'write' })).toBe(-EBUSY);
      expect(yield* bufOp(c, 'memfd_add_seals')(t, { seal: 'grow' })).toBe(0);
      expect(yield* bufOp(c, 'memfd_truncate')(t, { pages: 2 })).toBe(-EPERM);
    });
    run({ memfd: 'open', pin_folios: false }, 1, function* (t, c) {
      expect(yield* bufOp(c, 'memfd_add_seals')(t, { seal: 'write' })).toBe(0);
    });
  });

  it('a hugetlbfs memfd is truncated in whole folios only (-EINVAL)', () => {
    run({ memfd: 'open', folio_order: 1, seals: 'none', check_seals: false }, 2, function* (t, c) {
      expect(yield* bufOp(c, 'memfd_truncate')(t, { pages: 1 })).toBe(-EINVAL);
      expect(yield* bufOp(c, 'memfd_truncate')(t, { pages: 0 })).toBe(0);
    });
  });

  it('with memfd: closed (the default) the memfd ops find no file (-EBADF), and the pins are the only references', () => {
    run({}, 1, function* (t, c) {
      expect(c.memfd).toBeNull();
      expect(yield* bufOp(c, 'memfd_close')(t, {})).toBe(-EBADF);
      expect((c.u.frames[0] as Frame).refcount).toBe(1);
    });
  });

  it('without pins, the close frees the mapped page: stale-mapping, then use-after-free', () => {
    const { k } = run({ memfd: 'open', pin_folios: false }, 1, function* (t, c) {
      yield* impOp(c, 'access')(t, { page: 0 });
      yield* bufOp(c, 'memfd_close')(t, {});
      expect((c.u.frames[0] as Frame).state).toBe('free');
      yield* impOp(c, 'access')(t, { page: 0 });
    });
    expect(k.findings.map((f) => f.code)).toEqual(['stale-mapping', 'use-after-free']);
  });
});

describe('the fault handler', () => {
  it('mmap: pfnmap maps folio_pfn + offset with no reference; mmap: page takes the reference on the folio, the mapcount on the sub-page', () => {
    run({ memfd: 'open', folio_order: 1, memfd_offset: 1 }, 2, function* (t, c) {
      yield* impOp(c, 'access')(t, { page: 0 });
      const p0 = c.u.frames[0] as Frame;
      expect(c.vma.ptes[0]?.frame).toBe(p0);
      expect(c.vma.ptes[0]?.refd).toBe(false);
      expect([p0.head.refcount, p0.mapcount]).toEqual([2, 0]);
    });
    run({ memfd: 'open', folio_order: 1, memfd_offset: 1, mmap: 'page' }, 2, function* (t, c) {
      yield* impOp(c, 'access')(t, { page: 0 });
      const p0 = c.u.frames[0] as Frame;
      expect(c.vma.ptes[0]?.frame).toBe(p0);
      expect(c.vma.ptes[0]?.refd).toBe(true);
      expect([p0.head.refcount, p0.mapcount, p0.head.mapcount]).toEqual([3, 1, 0]);
      // The memfd and the pin go; the PTE's reference alone keeps the folio.
      yield* bufOp(c, 'memfd_close')(t, {});
      expect(p0.head.refcount).toBe(2);
      yield* impOp(c, 'munmap')(t, {});
      expect([p0.head.refcount, p0.mapcount]).toEqual([1, 0]);
    });
  });

  it('fault_bound: none reads ubuf->pages past the array once mremap grew the VMA (mmap: page only)', () => {
    const { k } = run({ mmap: 'page', fault_bound: 'none' }, 2, function* (t, c) {
      expect(yield* impOp(c, 'mremap')(t, { pages: 3 })).toBe(0);
      yield* impOp(c, 'access_vma')(t, { page: 2 });
    });
    const f = k.findings[0];
    if (f?.code !== 'out-of-bounds') throw new Error('expected out-of-bounds');
    expect(f.access).toEqual({ how: 'read', object: 'udmabuf->pages', owner: 'fb', index: 2, size: 2 });
    const { k: k2 } = run({ fault_bound: 'none' }, 2, function* (t, c) {
      expect(yield* impOp(c, 'mremap')(t, { pages: 3 })).toBeLessThan(0);
    });
    expect(k2.findings).toEqual([]);
  });

  it('KasanArray.at: in bounds no finding, past the end out-of-bounds', () => {
    const { k } = solo(function* (t) {
      yield t.at('x', 'read', t.k.clock);
      const a = new KasanArray(t, 'x->pages', 'b', [1, 2]);
      expect(a.at(t, 1)).toBe(2);
      expect(a.at(t, 2)).toBeUndefined();
    });
    expect(k.findings.map((f) => f.code)).toEqual(['out-of-bounds']);
  });
});

const yaml = (options: string, threads: string) => `name: t
buffers:
  fb: { exporter: udmabuf, pages: 2, options: { ${options} } }
importers:
  app: { driver: cpu-mmap, buffer: fb }
threads:
${threads}
`;

describe('udmabuf scenarios', () => {
  it('the memfd close races the accesses: safe with pins, a use-after-free without', () => {
    const threads = '  user: [{ app.access: { page: 0 } }, { app.access: { page: 0 } }]\n  qemu: [fb.memfd_close]';
    expectSafe(check(fromYaml(yaml('memfd: open', threads))));
    const bug = check(
      fromYaml(`${yaml('memfd: open, pin_folios: false', threads)}expect: { verdict: bug, finding: use-after-free }\n`),
    );
    expectBug(bug, 'use-after-free');
    expect(first(bug, 'stale-mapping').message).toMatch(/frees pfn 0x[0-9a-f]+ while app's pte for fb page 0/);
  });

  it('a setup that fails the seal check is reported at setup (api-misuse, [O2])', () => {
    const r = check(fromYaml(yaml('seals: none', '  user: [{ app.access: { page: 0 } }]')));
    expect(codes(r)).toContain('api-misuse');
  });

  it('the new options are late: a scenario that does not set them keeps its hash', () => {
    const plain = fromYaml(yaml('', '  user: [{ app.access: { page: 0 } }]'));
    expect(Object.keys(plain.buffers[0]?.options ?? {})).toEqual([]);
    const set = fromYaml(yaml('memfd: open', '  user: [{ app.access: { page: 0 } }]'));
    expect(scenarioHash(plain)).not.toBe(scenarioHash(set));
  });

  it('memfd ops, pins, unpins and faults: the declared dependence is sound', () => {
    const spec = fromYaml(
      yaml(
        'memfd: open, folio_order: 1, memfd_offset: 1, mmap: page',
        '  user: [{ app.access: { page: 0 } }, app.munmap]\n  qemu: [{ fb.memfd_add_seals: { seal: write } }, fb.memfd_close]\n  other: [fb.put]',
      ),
    );
    const bf = enumerateTraces(compile(spec), { maxExecutions: 20_000 });
    expect(bf.complete).toBe(true);
    expect(bf.violations).toEqual([]);
    expect(bf.traces.size).toBeGreaterThan(1);
  });
});
