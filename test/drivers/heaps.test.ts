/**
 * The CMA heap and mremap ([C1], [C2]): mremap grows a VMA unless the
 * exporter's mmap made it VM_DONTEXPAND / VM_PFNMAP, so a fault handler sees
 * page offsets past the buffer and must bound them itself; the off-by-one
 * bound reads past `buffer->pages` (`out-of-bounds`). A struct-page fault
 * (`mmap: page`) takes a reference and a mapcount that munmap drops; a PFN
 * fault (`mmap: pfnmap`) touches no struct page.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ExportedBuffer, ImporterInstance } from '../../src/drivers/driver.ts';
import { cmaHeap } from '../../src/drivers/exporters/cma-heap.ts';
import { systemHeap } from '../../src/drivers/exporters/system-heap.ts';
import { cpuMmap } from '../../src/drivers/importers/cpu-mmap.ts';
import { enumerateTraces } from '../../src/explorer/mazurkiewicz.ts';
import { EFAULT, isErr } from '../../src/kernel/errno.ts';
import { VM_DONTEXPAND, VM_FAULT_SIGBUS, VM_PFNMAP, type Vma } from '../../src/kernel/memory.ts';
import type { Frame } from '../../src/kernel/page-alloc.ts';
import type { KGen, Task } from '../../src/kernel/sched.ts';
import { compile } from '../../src/scenario/compile.ts';
import { CATALOGUE, check, codes, expectBug, expectSafe, first, fromYaml, loadFile } from '../helpers.ts';
import { solo } from '../kernel/harness.ts';

/** Exports a 2-page buffer and mmaps it with a cpu-mmap importer, in one task. */
function mapped(
  exporter: typeof cmaHeap,
  options: Record<string, string>,
  body: (t: Task, imp: ImporterInstance, vma: Vma, frames: readonly Frame[]) => KGen<void>,
) {
  return solo(function* (t, k) {
    const r = yield* exporter.export(t, { k, name: 'buf', pages: 2, options });
    if (isErr(r)) throw new Error('export failed');
    const exported = r as ExportedBuffer;
    const imp = cpuMmap.create({
      k,
      name: 'app',
      buffer: exported.buf,
      pages: 2,
      options: {},
      buffers: new Map([['buf', exported.buf]]),
    });
    expect(yield* imp.attach(t)).toBe(0);
    const vma = (imp as unknown as { vma: Vma }).vma;
    const frames = exported.buf.backing?.() ?? [];
    yield* body(t, imp, vma, frames);
  });
}

const op = (imp: ImporterInstance, name: string) => {
  const f = imp.ops[name];
  if (!f) throw new Error(`no op ${name}`);
  return f;
};

describe('mremap of a dma-buf mapping', () => {
  it('a VM_DONTEXPAND / VM_PFNMAP VMA cannot grow (-EFAULT) but can shrink; the mainline CMA heap and the system heap set both', () => {
    for (const exporter of [cmaHeap, systemHeap as typeof cmaHeap]) {
      mapped(exporter, {}, function* (t, imp, vma) {
        expect(vma.vm_flags & (VM_DONTEXPAND | VM_PFNMAP)).toBe(VM_DONTEXPAND | VM_PFNMAP);
        expect(yield* op(imp, 'mremap')(t, { pages: 3 })).toBe(-EFAULT);
        expect(vma.pages).toBe(2);
        expect(yield* op(imp, 'mremap')(t, { pages: 1 })).toBe(0);
        expect(vma.pages).toBe(1);
        // Page 1 is now past the VMA: SIGSEGV (reported as SIGBUS by the model), no finding.
        expect(yield* op(imp, 'access')(t, { page: 1 })).toBe(VM_FAULT_SIGBUS);
      });
    }
  });

  it('shrinking zaps the PTEs of the tail', () => {
    mapped(systemHeap as typeof cmaHeap, {}, function* (t, imp, vma) {
      expect(vma.ptes.every((p) => p !== null)).toBe(true);
      yield* op(imp, 'mremap')(t, { pages: 1 });
      expect(vma.ptes[0]).not.toBeNull();
      expect(vma.ptes[1]).toBeNull();
    });
  });

  it('the pre-2024 CMA heap (mmap: page) lets it grow; the fault past the buffer gets SIGBUS with the fixed bound', () => {
    const { k } = mapped(cmaHeap, { mmap: 'page' }, function* (t, imp, vma) {
      expect(vma.vm_flags & (VM_DONTEXPAND | VM_PFNMAP)).toBe(0);
      expect(yield* op(imp, 'mremap')(t, { pages: 3 })).toBe(0);
      expect(vma.pages).toBe(3);
      expect(yield* op(imp, 'access_vma')(t, { page: 2 })).toBe(VM_FAULT_SIGBUS);
      // Past the grown VMA: SIGSEGV.
      expect(yield* op(imp, 'access_vma')(t, { page: 3 })).toBe(VM_FAULT_SIGBUS);
    });
    expect(k.findings).toEqual([]);
  });

  it("the off-by-one bound ('>') reads buffer->pages[pagecount]: out-of-bounds, then SIGBUS", () => {
    const { k } = mapped(cmaHeap, { mmap: 'page', fault_bound: '>' }, function* (t, imp) {
      yield* op(imp, 'mremap')(t, { pages: 4 });
      expect(yield* op(imp, 'access_vma')(t, { page: 2 })).toBe(VM_FAULT_SIGBUS);
      // pgoff 3 > pagecount: refused by the (wrong) bound itself.
      expect(yield* op(imp, 'access_vma')(t, { page: 3 })).toBe(VM_FAULT_SIGBUS);
    });
    expect(k.findings.map((f) => f.code)).toEqual(['out-of-bounds']);
    const f = k.findings[0];
    if (f?.code !== 'out-of-bounds') throw new Error('expected out-of-bounds');
    expect(f.access).toEqual({ how: 'read', object: 'cma_heap_buffer->pages', owner: 'buf', index: 2, size: 2 });
    expect(f.fn).toBe('cma_heap_vm_fault');
    expect(f.rules).toEqual(['C1']);
    expect(f.allocated?.stack).toContain('cma_alloc');
  });
});

describe('struct-page vs PFN faults', () => {
  it('mmap: page — the PTE holds a reference on the page and a mapcount; munmap drops both', () => {
    mapped(cmaHeap, { mmap: 'page' }, function* (t, imp, vma, frames) {
      const f = frames[1] as Frame;
      expect([f.refcount, f.mapcount]).toEqual([1, 0]);
      yield* op(imp, 'access')(t, { page: 1 });
      expect(vma.ptes[1]?.refd).toBe(true);
      expect([f.refcount, f.mapcount]).toEqual([2, 1]);
      // A second access goes through the PTE: nothing more.
      yield* op(imp, 'access')(t, { page: 1 });
      expect([f.refcount, f.mapcount]).toEqual([2, 1]);
      yield* op(imp, 'munmap')(t, {});
      expect([f.refcount, f.mapcount, f.state]).toEqual([1, 0, 'allocated']);
    });
  });

  it('mmap: pfnmap — vmf_insert_pfn touches no struct page', () => {
    mapped(cmaHeap, {}, function* (t, imp, vma, frames) {
      yield* op(imp, 'access')(t, { page: 0 });
      const f = frames[0] as Frame;
      expect(vma.ptes[0]?.refd).toBe(false);
      expect([f.refcount, f.mapcount]).toEqual([1, 0]);
    });
  });

  it('the CMA range is physically contiguous and released whole at the last put', () => {
    const { k } = mapped(cmaHeap, {}, function* (_t, _imp, _vma, frames) {
      expect((frames[1] as Frame).pfn - (frames[0] as Frame).pfn).toBe(1);
      expect(frames[0]?.pool.name).toBe('cma');
    });
    expect(k.findings).toEqual([]);
  });
});

const yaml = (options: string, ops: string) => `name: t
buffers:
  buf: { exporter: cma-heap, pages: 2, options: { ${options} } }
importers:
  app: { driver: cpu-mmap, buffer: buf }
threads:
  user: [${ops}]
`;

describe('cma-heap scenarios', () => {
  it('the off-by-one needs both the old mmap (no VM_DONTEXPAND) and the old bound', () => {
    const ops = '{ app.mremap: { pages: 3 } }, { app.access_vma: { page: 2 } }';
    const bug = check(fromYaml(yaml("mmap: page, fault_bound: '>'", ops)));
    expectBug(bug, 'out-of-bounds');
    expect(first(bug, 'out-of-bounds').message).toMatch(
      /slab-out-of-bounds in cma_heap_vm_fault: read of cma_heap_buffer->pages\[2\] of buf, an array of 2/,
    );
    expectSafe(check(fromYaml(yaml('mmap: page', ops))));
    expectSafe(check(fromYaml(yaml("fault_bound: '>'", ops))));
  });

  it('access_vma validates its page against the largest VMA, not the buffer', () => {
    expect(() => fromYaml(yaml('mmap: page', '{ app.access_vma: { page: 16 } }'))).toThrow(/page/);
    expect(codes(check(fromYaml(yaml('mmap: page', '{ app.access_vma: { page: 5 } }'))))).toEqual([]);
  });

  it('a concurrent mremap and faults: the declared dependence is sound (every equivalent interleaving ends alike)', () => {
    const spec = fromYaml(`name: t
buffers:
  buf: { exporter: cma-heap, pages: 2, options: { mmap: page } }
importers:
  app: { driver: cpu-mmap, buffer: buf }
threads:
  a: [{ app.mremap: { pages: 3 } }, { app.mremap: { pages: 1 } }]
  b: [{ app.access: { page: 1 } }, { app.access_vma: { page: 2 } }]
`);
    const bf = enumerateTraces(compile(spec), { maxExecutions: 5000 });
    expect(bf.complete).toBe(true);
    expect(bf.violations).toEqual([]);
    expect(bf.traces.size).toBeGreaterThan(1);
  });
});

describe('the catalogue scenarios of heaps and udmabuf', () => {
  const names = [
    'cma-heap-mremap-dontexpand',
    'cma-heap-mremap-fault-bound',
    'cma-heap-mremap-fault-off-by-one',
    'udmabuf-huge-folio-subpages',
    'udmabuf-memfd-close-pinned',
    'udmabuf-memfd-close-unpinned',
    'udmabuf-memfd-shrink-unsealed',
    'udmabuf-mremap-no-fault-bound',
  ];
  for (const name of names) {
    it(`${name}: the brute force finds the declared dependence sound`, () => {
      const bf = enumerateTraces(compile(loadFile(path.join(CATALOGUE, `${name}.yaml`))), { maxExecutions: 5000 });
      expect(bf.complete).toBe(true);
      expect(bf.violations).toEqual([]);
    });
  }
});
