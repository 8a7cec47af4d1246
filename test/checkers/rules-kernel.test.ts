/**
 * Tests for the rules docs/rules.md lists under GAPS as "implemented or
 * checked, but no test", where the check is best seen by calling kernel code
 * directly (no scenario, no explorer): one task with `solo`, or several tasks
 * of one kernel stepped by hand with `Runner`. Each test is named after the
 * rule id(s) it covers; a "trips" test is paired with a near-identical one
 * that does not. The scenario-level tests are in rules.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { mapFrames, unmapFrames } from '../../src/drivers/exporters/common.ts';
import {
  alloc_pages,
  DMA_RESV_USAGE_KERNEL,
  type DmaBuf,
  type DmaBufAttachment,
  type DmaBufOps,
  type DmaFenceCb,
  dma_buf_attach,
  dma_buf_attach_revocable,
  dma_buf_detach,
  dma_buf_dynamic_attach,
  dma_buf_export,
  dma_buf_invalidate_mappings,
  dma_buf_map_attachment,
  dma_buf_mmap,
  dma_buf_move_notify,
  dma_buf_unmap_attachment,
  dma_fence_add_callback,
  dma_fence_init,
  dma_fence_is_later,
  dma_fence_set_error,
  dma_fence_signal,
  dma_resv_add_fence,
  dma_resv_fini,
  dma_resv_init,
  dma_resv_lock,
  dma_resv_reserve_fences,
  dma_resv_unlock,
  EINVAL,
  EIO,
  ERESTARTSYS,
  type Frame,
  free_pages,
  isErr,
  Kernel,
  type KGen,
  MmStruct,
  type SgTable,
  type Step,
  type Task,
  Vma,
  WwMutex,
  write_lock,
  write_unlock,
  ww_acquire_fini,
  ww_acquire_init,
  ww_mutex_lock,
  ww_mutex_unlock,
} from '../../src/index.ts';
import { Kvm, kvm_mmu_invalidate_begin, kvm_mmu_invalidate_end } from '../../src/kernel/kvm/kvm-main.ts';
import { solo } from '../kernel/harness.ts';

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/** One task's generator, stepped by hand: runs until the task blocks or finishes. */
class Runner<R> {
  private r: IteratorResult<Step, R> | null = null;

  constructor(
    readonly t: Task,
    private readonly gen: KGen<R>,
  ) {}

  /** Runs until the task blocks (false) or finishes (true). A blocked step is not run. */
  run(): boolean {
    if (this.r === null) this.r = this.gen.next();
    while (!this.r.done) {
      const s = this.t.pending;
      if (s.blocker && !s.blocker.ready(this.t, s)) return false;
      this.t.k.step++;
      this.r = this.gen.next();
    }
    return true;
  }

  get value(): R {
    if (!this.r?.done) throw new Error(`${this.t.name} has not finished`);
    return this.r.value;
  }
}

/** Runs `gen` in `t` to completion (it must not block) and returns its value. */
function finish<R>(t: Task, gen: KGen<R>): R {
  const r = new Runner(t, gen);
  if (!r.run()) throw new Error(`${t.name} blocked in ${t.pending.fn}`);
  return r.value;
}

/** Counts of exporter op calls. */
interface Calls {
  map: number;
  unmap: number;
  pin: number;
  unpin: number;
  mmap: number;
}

/** Ops to add to (a function) or remove from (`undefined`) the base exporter's. */
type OpsPatch = { [K in keyof DmaBufOps]?: DmaBufOps[K] | undefined };

/**
 * The ops of a system-page exporter: map, unmap, release, plus `extra`
 * (given as `undefined` to remove an op). `calls` counts them.
 */
function opsOf(frames: readonly Frame[], calls: Calls, extra: OpsPatch = {}): DmaBufOps {
  const ops: Partial<DmaBufOps> = {
    *map_dma_buf(t, attach, dir) {
      calls.map++;
      return yield* mapFrames(t, 'rules_map_dma_buf', attach, frames, dir);
    },
    *unmap_dma_buf(t, _attach, sgt) {
      calls.unmap++;
      yield* unmapFrames(t, 'rules_unmap_dma_buf', sgt);
    },
    *release(t) {
      yield* free_pages(t, frames);
    },
  };
  for (const [op, fn] of Object.entries(extra) as [keyof DmaBufOps, DmaBufOps[keyof DmaBufOps] | undefined][]) {
    if (fn === undefined) delete ops[op];
    else Object.assign(ops, { [op]: fn });
  }
  return ops as DmaBufOps;
}

/** Exports a buffer of `pages` system pages; `dynamic` adds pin/unpin. Throws if the export fails. */
function* exportBuf(
  t: Task,
  name: string,
  o: { pages?: number; dynamic?: boolean; extra?: OpsPatch; calls?: Calls } = {},
): KGen<DmaBuf> {
  const pool = t.k.physmem.pools.get('system');
  if (!pool) throw new Error('no system pool');
  const pages = o.pages ?? 2;
  const frames = yield* alloc_pages(t, pool, pages, (i) => `${name} page ${i}`);
  const calls = o.calls ?? newCalls();
  const extra: OpsPatch = { ...(o.extra ?? {}) };
  if (o.dynamic) {
    extra.pin = function* () {
      calls.pin++;
      return 0;
    };
    extra.unpin = function* () {
      calls.unpin++;
    };
  }
  const buf = yield* dma_buf_export(t, name, {
    exp_name: 'rules',
    ops: opsOf(frames, calls, extra),
    pages,
    priv: null,
  });
  if (isErr(buf)) throw new Error(`export of ${name} failed: ${buf}`);
  return buf;
}

function newCalls(): Calls {
  return { map: 0, unmap: 0, pin: 0, unpin: 0, mmap: 0 };
}

const fenceOps = { driverName: 'rules', timelineName: 'rules' };

/** Publishes an unsignalled KERNEL fence in `buf`'s resv (a pending move). */
function* pendingMove(t: Task, buf: DmaBuf) {
  const f = dma_fence_init(t, `${buf.name}:move`, fenceOps, t.k.fenceContextAlloc(), 1);
  yield* dma_resv_lock(t, buf.resv, null);
  dma_resv_reserve_fences(t, buf.resv, 1);
  yield* dma_resv_add_fence(t, buf.resv, f, DMA_RESV_USAGE_KERNEL);
  yield* dma_resv_unlock(t, buf.resv);
  return f;
}

// ---------------------------------------------------------------------------
// [L5] attach and detach change the list under resv
// ---------------------------------------------------------------------------

describe('[L5] dma_buf_attach and dma_buf_detach link and unlink under resv', () => {
  it('[L5] an attach blocks on resv held by another task, and links the attachment only after the unlock', () => {
    const k = new Kernel();
    const exporter = k.newTask('exporter');
    const buf = finish(exporter, exportBuf(exporter, 'bo'));
    const holder = k.newTask('holder');
    const importer = k.newTask('importer');
    finish(holder, dma_resv_lock(holder, buf.resv, null));

    const attach = new Runner(importer, dma_buf_attach(importer, buf, 'dev', 'imp'));
    expect(attach.run()).toBe(false);
    expect(importer.pending.fn).toBe('dma_resv_lock');
    expect(importer.pending.blocker).toBe(buf.resv.lock);
    expect(buf.attachments).toEqual([]);

    finish(holder, dma_resv_unlock(holder, buf.resv));
    expect(attach.run()).toBe(true);
    expect(buf.attachments.map((a) => a.name)).toEqual(['imp']);
    expect(k.findings).toEqual([]);
  });

  it('[L5] a detach blocks on resv held by another task; the attachment stays listed until the unlock', () => {
    const k = new Kernel();
    const exporter = k.newTask('exporter');
    const buf = finish(exporter, exportBuf(exporter, 'bo'));
    const holder = k.newTask('holder');
    const importer = k.newTask('importer');
    const a = finish(importer, dma_buf_attach(importer, buf, 'dev', 'imp')) as DmaBufAttachment;
    finish(holder, dma_resv_lock(holder, buf.resv, null));

    const detach = new Runner(importer, dma_buf_detach(importer, buf, a));
    expect(detach.run()).toBe(false);
    expect(importer.pending.blocker).toBe(buf.resv.lock);
    expect(buf.attachments).toEqual([a]);
    expect(a.detached).toBeNull();

    finish(holder, dma_resv_unlock(holder, buf.resv));
    expect(detach.run()).toBe(true);
    expect(buf.attachments).toEqual([]);
    expect(a.detached).not.toBeNull();
    expect(k.findings).toEqual([]);
  });

  it('[L5] without a holder, attach and detach run through (the same calls, nothing blocks)', () => {
    const { k, result } = solo(function* (t) {
      const buf = yield* exportBuf(t, 'bo');
      const a = (yield* dma_buf_attach(t, buf, 'dev', 'imp')) as DmaBufAttachment;
      const listed = buf.attachments.map((x) => x.name);
      yield* dma_buf_detach(t, buf, a);
      return [listed, buf.attachments.length];
    });
    expect(result).toEqual([['imp'], 0]);
    expect(k.findings).toEqual([]);
  });
});

// ---------------------------------------------------------------------------
// [LT7] the static map's KERNEL-fence wait
// ---------------------------------------------------------------------------

describe('[LT7] the KERNEL-fence wait of a static map', () => {
  function setup(dynamicImporter: boolean) {
    const k = new Kernel();
    const calls = newCalls();
    const exporter = k.newTask('exporter');
    const buf = finish(exporter, exportBuf(exporter, 'bo', { dynamic: true, calls }));
    const fence = finish(exporter, pendingMove(exporter, buf));
    const t = k.newTask('importer');
    const a = finish(
      t,
      dynamicImporter
        ? dma_buf_dynamic_attach(t, buf, 'dev', { allow_peer2peer: true, *invalidate_mappings() {} }, null, 'imp')
        : dma_buf_attach(t, buf, 'dev', 'imp'),
    ) as DmaBufAttachment;
    return { k, calls, buf, fence, t, a, exporter };
  }

  it('[LT7] static: the map blocks on the pending KERNEL fence under resv, and returns the table once it signals', () => {
    const { k, calls, buf, fence, t, a, exporter } = setup(false);
    finish(t, dma_resv_lock(t, buf.resv, null));
    const map = new Runner(t, dma_buf_map_attachment(t, a, 'DMA_BIDIRECTIONAL'));
    expect(map.run()).toBe(false);
    expect(t.pending.blocker).toBe(fence);
    // Pinned ([LT6]) and mapped before the wait.
    expect([calls.pin, calls.map, a.pinCount, a.sgts.length]).toEqual([1, 1, 1, 1]);
    finish(exporter, dma_fence_signal(exporter, fence));
    expect(map.run()).toBe(true);
    expect(isErr(map.value)).toBe(false);
    finish(t, dma_resv_unlock(t, buf.resv));
    expect(k.findings).toEqual([]);
  });

  it('[LT7] dynamic: the same map returns at once, the fence still pending (the importer waits itself)', () => {
    const { k, calls, buf, fence, t, a } = setup(true);
    finish(t, dma_resv_lock(t, buf.resv, null));
    const sgt = finish(t, dma_buf_map_attachment(t, a, 'DMA_BIDIRECTIONAL'));
    expect(isErr(sgt)).toBe(false);
    expect(fence.signaled).toBe(false);
    expect([calls.pin, calls.map, a.pinCount]).toEqual([0, 1, 0]);
    finish(t, dma_resv_unlock(t, buf.resv));
    expect(k.findings).toEqual([]);
  });

  // The kernel's dma_buf_map_attachment: `if (ret < 0) goto error_unmap;` (unmap, unpin, return the error).
  it('[LT7] static: a signal interrupting the wait makes the map unmap, unpin and return -ERESTARTSYS', () => {
    const { calls, buf, t, a } = setup(false);
    t.sigpending = true;
    finish(t, dma_resv_lock(t, buf.resv, null));
    const r = finish(t, dma_buf_map_attachment(t, a, 'DMA_BIDIRECTIONAL'));
    finish(t, dma_resv_unlock(t, buf.resv));
    expect(r).toBe(-ERESTARTSYS);
    expect([a.sgts.length, a.pinCount]).toEqual([0, 0]);
    expect([calls.map, calls.unmap, calls.pin, calls.unpin]).toEqual([1, 1, 1, 1]);
  });

  it('[LT7] dynamic: a pending signal does not fail the map (no wait to interrupt)', () => {
    const { k, buf, t, a } = setup(true);
    t.sigpending = true;
    finish(t, dma_resv_lock(t, buf.resv, null));
    const r = finish(t, dma_buf_map_attachment(t, a, 'DMA_BIDIRECTIONAL'));
    finish(t, dma_resv_unlock(t, buf.resv));
    expect(isErr(r)).toBe(false);
    expect(a.sgts.length).toBe(1);
    expect(k.findings).toEqual([]);
  });
});

// ---------------------------------------------------------------------------
// [O2] / [P2] dma_buf_export's op checks: the return value
// ---------------------------------------------------------------------------

describe('[O2] [P2] dma_buf_export validates the ops', () => {
  const noop = function* () {};
  const cases: readonly (readonly [string, OpsPatch, string])[] = [
    ['no release', { release: undefined }, 'exporter has no release op'],
    [
      'map_dma_buf without unmap_dma_buf',
      { unmap_dma_buf: undefined },
      'map_dma_buf and unmap_dma_buf must both be present or both absent',
    ],
    [
      'unmap_dma_buf without map_dma_buf',
      { map_dma_buf: undefined },
      'map_dma_buf and unmap_dma_buf must both be present or both absent',
    ],
    [
      'neither map_dma_buf nor get_pfn',
      { map_dma_buf: undefined, unmap_dma_buf: undefined },
      'exporter has neither map_dma_buf nor get_pfn',
    ],
    [
      'pin without unpin',
      {
        *pin() {
          return 0;
        },
      },
      'pin and unpin must both be present or both absent',
    ],
    ['unpin without pin', { unpin: noop }, 'pin and unpin must both be present or both absent'],
  ];

  for (const [what, extra, reason] of cases) {
    it(`[O2] [P2] ${what}: WARN and -EINVAL`, () => {
      const { k, result } = solo(function* (t) {
        return yield* dma_buf_export(t, 'bo', {
          exp_name: 'rules',
          ops: opsOf([], newCalls(), extra),
          pages: 1,
          priv: null,
        });
      });
      expect(result).toBe(-EINVAL);
      expect(k.findings.map((f) => [f.code, f.message, f.rules])).toEqual([
        ['api-misuse', `WARNING: dma_buf_export: ${reason}`, ['O2', 'P2']],
      ]);
    });
  }

  it('[O2] does not trip: map, unmap and release: one buffer holding one reference, with an embedded resv', () => {
    const { k, result } = solo(function* (t) {
      return yield* dma_buf_export(t, 'bo', { exp_name: 'rules', ops: opsOf([], newCalls()), pages: 1, priv: null });
    });
    expect(isErr(result)).toBe(false);
    const buf = result as DmaBuf;
    expect([buf.refcount, buf.resv.name]).toEqual([1, 'bo->resv']);
    expect(k.findings).toEqual([]);
  });

  it('[P2] does not trip: get_pfn with neither map_dma_buf nor unmap_dma_buf (the RFC relaxation)', () => {
    const { k, result } = solo(function* (t) {
      const ops = opsOf([], newCalls(), {
        map_dma_buf: undefined,
        unmap_dma_buf: undefined,
        *get_pfn() {
          return -EINVAL;
        },
      });
      return yield* dma_buf_export(t, 'bo', { exp_name: 'rules', ops, pages: 1, priv: null });
    });
    expect(isErr(result)).toBe(false);
    expect(k.findings).toEqual([]);
  });
});

// ---------------------------------------------------------------------------
// [O6] the move_notify alias
// ---------------------------------------------------------------------------

describe('[O6] move_notify, the pre-2026 name of invalidate_mappings', () => {
  function* attachWith(t: Task, buf: DmaBuf, name: string, ops: Parameters<typeof dma_buf_dynamic_attach>[3]) {
    return (yield* dma_buf_dynamic_attach(t, buf, 'dev', ops, null, name)) as DmaBufAttachment;
  }

  it('[O6] dma_buf_attach_revocable: true for either name, false for neither', () => {
    const { k, result } = solo(function* (t) {
      const buf = yield* exportBuf(t, 'bo');
      const legacy = yield* attachWith(t, buf, 'legacy', { allow_peer2peer: true, *move_notify() {} });
      const current = yield* attachWith(t, buf, 'current', { allow_peer2peer: true, *invalidate_mappings() {} });
      const none = yield* attachWith(t, buf, 'none', { allow_peer2peer: true });
      const fixed = (yield* dma_buf_attach(t, buf, 'dev', 'static')) as DmaBufAttachment;
      return [legacy, current, none, fixed].map((a) => dma_buf_attach_revocable(a));
    });
    expect(result).toEqual([true, true, false, false]);
    expect(k.findings).toEqual([]);
  });

  it('[O6] dma_buf_move_notify and dma_buf_invalidate_mappings call move_notify, in list order, under resv', () => {
    const { k, result } = solo(function* (t) {
      const buf = yield* exportBuf(t, 'bo');
      const order: string[] = [];
      for (const name of ['first', 'second']) {
        yield* attachWith(t, buf, name, {
          allow_peer2peer: true,
          *move_notify(_t: Task, a: DmaBufAttachment) {
            order.push(a.name);
          },
        });
      }
      yield* dma_resv_lock(t, buf.resv, null);
      yield* dma_buf_move_notify(t, buf);
      yield* dma_buf_invalidate_mappings(t, buf);
      yield* dma_resv_unlock(t, buf.resv);
      return order;
    });
    expect(result).toEqual(['first', 'second', 'first', 'second']);
    expect(k.findings).toEqual([]);
  });

  it('[O6] [L4] trips: dma_buf_move_notify without resv is lock-not-held, as the new name is', () => {
    const { k } = solo(function* (t) {
      const buf = yield* exportBuf(t, 'bo');
      yield* dma_buf_move_notify(t, buf);
    });
    expect(k.findings.map((f) => [f.code, f.message])).toEqual([
      ['lock-not-held', 'dma_buf_move_notify called without holding bo->resv'],
    ]);
    expect(k.findings[0]?.rules).toEqual(['L4', 'I13']);
  });
});

// ---------------------------------------------------------------------------
// [L7] ww_acquire_fini with locks held
// ---------------------------------------------------------------------------

describe('[L7] ww_acquire_fini', () => {
  const CLS = 'reservation_ww_class_mutex';

  it('[L7] trips: ww_acquire_fini while the context still holds a lock', () => {
    const { k } = solo(function* (t, k) {
      const a = new WwMutex(k, 'a', CLS);
      const ctx = yield* ww_acquire_init(t);
      yield* ww_mutex_lock(t, a, ctx);
      ww_acquire_fini(t, ctx);
      yield* ww_mutex_unlock(t, a);
    });
    expect(k.findings.map((f) => [f.code, f.message, f.rules])).toEqual([
      ['api-misuse', 'WARNING: ww_acquire_fini: acquire context still holds 1 lock(s)', ['L7']],
    ]);
  });

  it('[L7] does not trip: unlock first, then ww_acquire_fini', () => {
    const { k } = solo(function* (t, k) {
      const a = new WwMutex(k, 'a', CLS);
      const b = new WwMutex(k, 'b', CLS);
      const ctx = yield* ww_acquire_init(t);
      yield* ww_mutex_lock(t, a, ctx);
      yield* ww_mutex_lock(t, b, ctx);
      yield* ww_mutex_unlock(t, b);
      yield* ww_mutex_unlock(t, a);
      ww_acquire_fini(t, ctx);
    });
    expect(k.findings).toEqual([]);
  });
});

// ---------------------------------------------------------------------------
// [LT3] detach with another buffer; [LT5] [I11] unmap with another direction
// ---------------------------------------------------------------------------

describe('[LT3] [LT5] detach and unmap arguments', () => {
  it('[LT3] trips: dma_buf_detach with a buffer the attachment does not belong to: WARN, nothing detached', () => {
    const { k, result } = solo(function* (t) {
      const bo = yield* exportBuf(t, 'bo');
      const other = yield* exportBuf(t, 'other');
      const a = (yield* dma_buf_attach(t, bo, 'dev', 'imp')) as DmaBufAttachment;
      yield* dma_buf_detach(t, other, a);
      return [bo.attachments.map((x) => x.name), a.detached];
    });
    expect(result).toEqual([['imp'], null]);
    expect(k.findings.map((f) => [f.code, f.message, f.rules])).toEqual([
      ['api-misuse', 'WARNING: dma_buf_detach: imp does not belong to other', ['LT3']],
    ]);
  });

  it('[LT3] does not trip: dma_buf_detach with its own buffer', () => {
    const { k, result } = solo(function* (t) {
      const bo = yield* exportBuf(t, 'bo');
      yield* exportBuf(t, 'other');
      const a = (yield* dma_buf_attach(t, bo, 'dev', 'imp')) as DmaBufAttachment;
      yield* dma_buf_detach(t, bo, a);
      return bo.attachments.length;
    });
    expect(result).toBe(0);
    expect(k.findings).toEqual([]);
  });

  function* mapThenUnmap(t: Task, unmapDir: 'DMA_BIDIRECTIONAL' | 'DMA_TO_DEVICE') {
    const bo = yield* exportBuf(t, 'bo');
    const a = (yield* dma_buf_attach(t, bo, 'dev', 'imp')) as DmaBufAttachment;
    yield* dma_resv_lock(t, bo.resv, null);
    const sgt = (yield* dma_buf_map_attachment(t, a, 'DMA_BIDIRECTIONAL')) as SgTable;
    yield* dma_buf_unmap_attachment(t, a, sgt, unmapDir);
    yield* dma_resv_unlock(t, bo.resv);
    return [a.sgts.length, sgt.unmapped];
  }

  it('[LT5] [I11] trips: an unmap with another direction than the map WARNs (the table is still unmapped)', () => {
    const { k, result } = solo((t) => mapThenUnmap(t, 'DMA_TO_DEVICE'));
    expect(result).toEqual([0, true]);
    expect(k.findings.map((f) => [f.code, f.message, f.rules])).toEqual([
      [
        'api-misuse',
        "WARNING: dma_buf_unmap_attachment: direction DMA_TO_DEVICE differs from the map's DMA_BIDIRECTIONAL",
        ['LT5', 'I11'],
      ],
    ]);
  });

  it('[LT5] [I11] does not trip: the unmap with the map’s direction', () => {
    const { k, result } = solo((t) => mapThenUnmap(t, 'DMA_BIDIRECTIONAL'));
    expect(result).toEqual([0, true]);
    expect(k.findings).toEqual([]);
  });
});

// ---------------------------------------------------------------------------
// [R12] dma_resv_fini while locked
// ---------------------------------------------------------------------------

describe('[R12] dma_resv_fini', () => {
  it('[R12] trips: dma_resv_fini on a locked reservation object', () => {
    const { k } = solo(function* (t, k) {
      const obj = dma_resv_init(k, 'obj');
      yield* dma_resv_lock(t, obj, null);
      yield* dma_resv_fini(t, obj);
      yield* dma_resv_unlock(t, obj);
    });
    expect(k.findings.map((f) => [f.code, f.message, f.rules])).toEqual([
      ['api-misuse', 'WARNING: dma_resv_fini: obj is still locked', ['R12']],
    ]);
  });

  it('[R12] does not trip: dma_resv_fini after the unlock puts the fences', () => {
    const { k, result } = solo(function* (t, k) {
      const obj = dma_resv_init(k, 'obj');
      const f = dma_fence_init(t, 'f', fenceOps, k.fenceContextAlloc(), 1);
      yield* dma_resv_lock(t, obj, null);
      dma_resv_reserve_fences(t, obj, 1);
      yield* dma_resv_add_fence(t, obj, f, DMA_RESV_USAGE_KERNEL);
      yield* dma_resv_unlock(t, obj);
      const held = f.refcount;
      yield* dma_resv_fini(t, obj);
      return [held, f.refcount, obj.fences.entries.length];
    });
    expect(result).toEqual([2, 1, 0]);
    expect(k.findings).toEqual([]);
  });
});

// ---------------------------------------------------------------------------
// [K3] kvm_mmu_invalidate_begin/end
// ---------------------------------------------------------------------------

describe('[K3] kvm_mmu_invalidate_begin/end', () => {
  it('[K3] trips: begin and end without mmu_lock are lock-not-held', () => {
    const { k, result } = solo(function* (t, k) {
      const kvm = new Kvm(k, 'vm', 1);
      yield* kvm_mmu_invalidate_begin(t, kvm);
      const during = kvm.mmu.inProgress;
      yield* kvm_mmu_invalidate_end(t, kvm);
      return [during, kvm.mmu.inProgress, kvm.mmu.seq];
    });
    expect(result).toEqual([1, 0, 1]);
    expect(k.findings.map((f) => [f.code, f.message, f.rules])).toEqual([
      ['lock-not-held', 'kvm_mmu_invalidate_begin called without holding vm->mmu_lock', ['K3']],
      ['lock-not-held', 'kvm_mmu_invalidate_end called without holding vm->mmu_lock', ['K3']],
    ]);
  });

  it('[K3] does not trip: begin and end with mmu_lock held for write', () => {
    const { k, result } = solo(function* (t, k) {
      const kvm = new Kvm(k, 'vm', 1);
      yield* write_lock(t, kvm.mmu_lock);
      yield* kvm_mmu_invalidate_begin(t, kvm);
      const during = kvm.mmu.inProgress;
      yield* kvm_mmu_invalidate_end(t, kvm);
      yield* write_unlock(t, kvm.mmu_lock);
      return [during, kvm.mmu.inProgress, kvm.mmu.seq];
    });
    expect(result).toEqual([1, 0, 1]);
    expect(k.findings).toEqual([]);
  });

  it('[K3] trips: an end without a begin takes mmu_invalidate_in_progress below zero', () => {
    const { k, result } = solo(function* (t, k) {
      const kvm = new Kvm(k, 'vm', 1);
      yield* write_lock(t, kvm.mmu_lock);
      yield* kvm_mmu_invalidate_end(t, kvm);
      yield* write_unlock(t, kvm.mmu_lock);
      return [kvm.mmu.inProgress, kvm.mmu.seq];
    });
    expect(result).toEqual([0, 1]);
    expect(k.findings.map((f) => [f.code, f.message, f.rules])).toEqual([
      ['api-misuse', 'WARNING: kvm_mmu_invalidate_end: mmu_invalidate_in_progress went negative', ['K3']],
    ]);
  });
});

// ---------------------------------------------------------------------------
// [F1] is_later across contexts; [F3] set_error values; [F6] a NULL callback
// ---------------------------------------------------------------------------

describe('[F1] [F3] [F6] dma_fence argument checks', () => {
  it('[F1] trips: dma_fence_is_later on fences of two contexts WARNs and returns false', () => {
    const { k, result } = solo(function* (t, k) {
      const a = dma_fence_init(t, 'a', fenceOps, k.fenceContextAlloc(), 2);
      const b = dma_fence_init(t, 'b', fenceOps, k.fenceContextAlloc(), 1);
      return dma_fence_is_later(t, a, b);
    });
    expect(result).toBe(false);
    expect(k.findings.map((f) => [f.code, f.message, f.rules])).toEqual([
      ['api-misuse', 'WARNING: dma_fence_is_later: a and b are on different contexts', ['F1']],
    ]);
  });

  it('[F1] does not trip: the same seqnos on one context: true one way, false the other', () => {
    const { k, result } = solo(function* (t, k) {
      const ctx = k.fenceContextAlloc();
      const a = dma_fence_init(t, 'a', fenceOps, ctx, 2);
      const b = dma_fence_init(t, 'b', fenceOps, ctx, 1);
      return [dma_fence_is_later(t, a, b), dma_fence_is_later(t, b, a)];
    });
    expect(result).toEqual([true, false]);
    expect(k.findings).toEqual([]);
  });

  it('[F3] trips: dma_fence_set_error with 0, a positive value or one below -MAX_ERRNO', () => {
    for (const err of [0, EIO, -4096]) {
      const { k } = solo(function* (t, k) {
        const f = dma_fence_init(t, 'f', fenceOps, k.fenceContextAlloc(), 1);
        yield* dma_fence_set_error(t, f, err);
      });
      expect(k.findings.map((f) => [f.code, f.message, f.rules])).toEqual([
        ['api-misuse', `WARNING: dma_fence_set_error: ${err} is not a negative errno`, ['F3', 'I19']],
      ]);
    }
  });

  it('[F3] does not trip: a negative errno before the signal, reported by get_status after it', () => {
    const { k, result } = solo(function* (t, k) {
      const f = dma_fence_init(t, 'f', fenceOps, k.fenceContextAlloc(), 1);
      yield* dma_fence_set_error(t, f, -4095);
      yield* dma_fence_signal(t, f);
      return f.error;
    });
    expect(result).toBe(-4095);
    expect(k.findings).toEqual([]);
  });

  it('[F6] trips: dma_fence_add_callback with a NULL function WARNs and returns -EINVAL; nothing is queued', () => {
    const { k, result } = solo(function* (t, k) {
      const f = dma_fence_init(t, 'f', fenceOps, k.fenceContextAlloc(), 1);
      const cb: DmaFenceCb = { func: null, queued: false };
      const r = yield* dma_fence_add_callback(t, f, cb, null as unknown as (t: Task) => void);
      return [r, f.cbs.length, cb.queued, f.enableSignal];
    });
    expect(result).toEqual([-EINVAL, 0, false, false]);
    expect(k.findings.map((f) => [f.code, f.message, f.rules])).toEqual([
      ['api-misuse', 'WARNING: dma_fence_add_callback: NULL callback function', ['F6']],
    ]);
  });

  it('[F6] does not trip: a callback function: queued, and run once by the signal', () => {
    const { k, result } = solo(function* (t, k) {
      const f = dma_fence_init(t, 'f', fenceOps, k.fenceContextAlloc(), 1);
      const cb: DmaFenceCb = { func: null, queued: false };
      let ran = 0;
      const r = yield* dma_fence_add_callback(t, f, cb, () => ran++);
      const queued = f.cbs.length;
      yield* dma_fence_signal(t, f);
      return [r, queued, ran];
    });
    expect(result).toEqual([0, 1, 1]);
    expect(k.findings).toEqual([]);
  });
});

// ---------------------------------------------------------------------------
// [C1] dma_buf_mmap's checks
// ---------------------------------------------------------------------------

describe('[C1] dma_buf_mmap', () => {
  /** A 2-page buffer with (or without) an exporter mmap; maps `vmaPages` at `pgoff`. */
  function mmap(o: { withMmap: boolean; vmaPages: number; pgoff: number }) {
    const calls = newCalls();
    const { k, result } = solo(function* (t, k) {
      const extra: OpsPatch = o.withMmap
        ? {
            *mmap() {
              calls.mmap++;
              return 0;
            },
          }
        : {};
      const buf = yield* exportBuf(t, 'bo', { pages: 2, extra, calls });
      const vma = new Vma(k, new MmStruct(k, 'user:mm'), 'user', o.vmaPages);
      const r = yield* dma_buf_mmap(t, buf, vma, o.pgoff);
      return { r, refcount: buf.refcount, file: vma.vm_file, pgoff: vma.vm_pgoff };
    });
    return { k, calls, ...result };
  }

  it('[C1] trips: pgoff + the VMA’s pages beyond the buffer: -EINVAL, no reference, exporter not called', () => {
    for (const [vmaPages, pgoff] of [
      [3, 0],
      [2, 1],
      [1, 2],
    ] as const) {
      const r = mmap({ withMmap: true, vmaPages, pgoff });
      expect([r.r, r.refcount, r.file, r.calls.mmap]).toEqual([-EINVAL, 1, null, 0]);
      expect(r.k.findings).toEqual([]);
    }
  });

  it('[C1] trips: an exporter without mmap: -EINVAL', () => {
    const r = mmap({ withMmap: false, vmaPages: 1, pgoff: 0 });
    expect([r.r, r.refcount, r.file]).toEqual([-EINVAL, 1, null]);
  });

  it('[C1] does not trip: a range that ends exactly at the buffer’s end: the file reference, vm_pgoff, the exporter’s mmap', () => {
    for (const [vmaPages, pgoff] of [
      [2, 0],
      [1, 1],
    ] as const) {
      const r = mmap({ withMmap: true, vmaPages, pgoff });
      expect([r.r, r.refcount, r.file, r.pgoff, r.calls.mmap]).toEqual([0, 2, 'bo', pgoff, 1]);
      expect(r.k.findings).toEqual([]);
    }
  });
});
