/**
 * The driver modules of rules.test.ts: `rules-exporter` (system pages, with
 * switches for the export-time op checks, a dynamic exporter's pin result and
 * a pending KERNEL fence) and `rules-probe` (an importer whose ops each make
 * one sequence of kernel calls). The probe records what it observed in `log`,
 * one entry per op per execution, so a test can assert return values over
 * every interleaving explored; the test file empties it before each test.
 */
import type { CheckOptions, CheckResult } from '../../src/check.ts';
import { LOCK_CLASS } from '../../src/checkers/lockdep.ts';
import { mapFrames, unmapFrames } from '../../src/drivers/exporters/common.ts';
import {
  alloc_pages,
  compile,
  DMA_RESV_USAGE_KERNEL,
  type DmaBufAttachment,
  type DmaBufAttachOps,
  type DmaBufOps,
  type DmaFence,
  type DriverDef,
  defineExporter,
  defineImporter,
  dma_buf_attach,
  dma_buf_detach,
  dma_buf_dynamic_attach,
  dma_buf_export,
  dma_buf_get_pfn_unlocked,
  dma_buf_invalidate_mappings,
  dma_buf_map_attachment,
  dma_buf_move_notify,
  dma_buf_put,
  dma_buf_unmap_attachment,
  dma_fence_begin_signalling,
  dma_fence_end_signalling,
  dma_fence_init,
  dma_fence_signal,
  dma_fence_wait,
  dma_resv_add_fence,
  dma_resv_assert_held,
  dma_resv_lock,
  dma_resv_reserve_fences,
  dma_resv_unlock,
  down_read,
  down_write,
  EBUSY,
  EINVAL,
  ENOMEM,
  type ExploreResult,
  explore,
  type Frame,
  free_pages,
  type Gfp,
  get_dma_buf,
  type ImporterEnv,
  type ImporterInstance,
  isErr,
  type KernelConfig,
  type KGen,
  kfn,
  Lock,
  MmStruct,
  mutex_lock,
  mutex_unlock,
  type OpArgs,
  PAGE_ARG,
  pfnRef,
  type SgTable,
  type Task,
  up_read,
  up_write,
  write_lock,
  write_unlock,
} from '../../src/index.ts';
import { check, fromYaml } from '../helpers.ts';

// ---------------------------------------------------------------------------
// What the probe observed, over every execution of the last check.
// ---------------------------------------------------------------------------

export interface Entry {
  readonly op: string;
  readonly [key: string]: unknown;
}

export const log: Entry[] = [];

export function logged(op: string): Entry[] {
  return log.filter((e) => e.op === op);
}

// ---------------------------------------------------------------------------
// rules-exporter: system pages, never moved.
// ---------------------------------------------------------------------------

/** The exporter's priv: its frames and the pending KERNEL fence, if any. */
class RulesPriv {
  fence: DmaFence | null = null;
  constructor(readonly frames: readonly Frame[]) {}
}

const PIN_RESULT: Readonly<Record<string, number>> = { ok: 0, EBUSY: -EBUSY, ENOMEM: -ENOMEM };

const rulesExporter = defineExporter({
  name: 'rules-exporter',
  summary: 'system pages; switches for the export checks, pin and a pending KERNEL fence',
  options: {
    ops: {
      type: 'enum',
      values: ['full', 'pfn_only', 'no_release', 'map_without_unmap', 'no_map_no_pfn', 'pin_without_unpin'],
      default: 'full',
      doc: 'which ops the exporter passes to dma_buf_export ([O2], [P2])',
    },
    dynamic: { type: 'boolean', default: false, doc: 'pin and unpin: a dynamic exporter ([O10])' },
    pin_result: { type: 'enum', values: ['ok', 'EBUSY', 'ENOMEM'], default: 'ok', doc: 'what ops.pin returns' },
    kernel_fence: {
      type: 'boolean',
      default: false,
      doc: 'publish an unsignalled KERNEL fence at export: a pending move ([LT7])',
    },
  },
  ops: {
    signal_fence: { doc: 'signal the KERNEL fence published at export' },
    invalidate: { doc: 'dma_buf_invalidate_mappings under resv' },
    move_notify: { doc: 'dma_buf_move_notify (the pre-2026 name) under resv' },
  },
  *export(t, env) {
    const pool = env.k.physmem.pools.get('system');
    if (!pool) throw new Error('no system pool');
    const frames = yield* alloc_pages(t, pool, env.pages, (i) => `${env.name} (rules) page ${i}`);
    const priv = new RulesPriv(frames);
    const ops: Partial<DmaBufOps> = {
      *map_dma_buf(t, attach, dir) {
        return yield* mapFrames(t, 'rules_map_dma_buf', attach, frames, dir);
      },
      *unmap_dma_buf(t, _attach, sgt) {
        yield* unmapFrames(t, 'rules_unmap_dma_buf', sgt);
      },
      *release(t) {
        yield* free_pages(t, frames);
      },
      *get_pfn(t, attach, pgoff) {
        dma_resv_assert_held(t, attach.dmabuf.resv, 'rules_get_pfn', ['P1', 'L3']);
        const f = frames[pgoff];
        return f ? { pfn: pfnRef(f), max_order: 0 } : -EINVAL;
      },
    };
    if (env.options.dynamic || env.options.ops === 'pin_without_unpin') {
      const result = PIN_RESULT[String(env.options.pin_result)] ?? 0;
      ops.pin = function* () {
        return result;
      };
      if (env.options.ops !== 'pin_without_unpin') ops.unpin = function* () {};
    }
    switch (env.options.ops) {
      case 'pfn_only':
        delete ops.map_dma_buf;
        delete ops.unmap_dma_buf;
        break;
      case 'no_release':
        delete ops.release;
        break;
      case 'map_without_unmap':
        delete ops.unmap_dma_buf;
        break;
      case 'no_map_no_pfn':
        delete ops.map_dma_buf;
        delete ops.unmap_dma_buf;
        delete ops.get_pfn;
        break;
    }
    const buf = yield* dma_buf_export(t, env.name, {
      exp_name: 'rules',
      ops: ops as DmaBufOps,
      pages: env.pages,
      priv,
    });
    if (isErr(buf)) return buf;
    if (env.options.kernel_fence) {
      // A move the exporter has queued but not finished: a KERNEL fence in resv.
      const fence = dma_fence_init(
        t,
        `${env.name}:move`,
        { driverName: 'rules', timelineName: 'move' },
        t.k.fenceContextAlloc(),
        1,
      );
      yield* dma_resv_lock(t, buf.resv, null);
      dma_resv_reserve_fences(t, buf.resv, 1);
      yield* dma_resv_add_fence(t, buf.resv, fence, DMA_RESV_USAGE_KERNEL);
      yield* dma_resv_unlock(t, buf.resv);
      priv.fence = fence;
    }
    return {
      buf,
      pool,
      ops: {
        signal_fence: kfn('rules_signal_fence', function* (t: Task): KGen {
          if (priv.fence) yield* dma_fence_signal(t, priv.fence);
        }),
        invalidate: kfn('rules_invalidate', function* (t: Task): KGen {
          yield* dma_resv_lock(t, buf.resv, null);
          yield* dma_buf_invalidate_mappings(t, buf);
          yield* dma_resv_unlock(t, buf.resv);
        }),
        move_notify: kfn('rules_move_notify', function* (t: Task): KGen {
          yield* dma_resv_lock(t, buf.resv, null);
          yield* dma_buf_move_notify(t, buf);
          yield* dma_resv_unlock(t, buf.resv);
        }),
      },
    };
  },
});

// ---------------------------------------------------------------------------
// rules-probe: one op per kernel-call sequence under test.
// ---------------------------------------------------------------------------

class RulesProbe implements ImporterInstance {
  readonly attachCall: string;
  att: DmaBufAttachment | null = null;
  sgt: SgTable | null = null;
  /** A private mutex (class `rules->a`). */
  readonly a: Lock;
  /** A lock of KVM's `mmu_lock` class, as an importer's invalidate would take ([L9]). */
  readonly mmuLock: Lock;
  /** A lock of vfio's `memory_lock` class ([L9]). */
  readonly memoryLock: Lock;
  readonly mm: MmStruct;
  readonly attachOps: DmaBufAttachOps | null;

  constructor(readonly env: ImporterEnv) {
    const dynamic = env.options.attach_mode !== 'static';
    this.attachCall = dynamic ? 'dma_buf_dynamic_attach' : 'dma_buf_attach';
    this.a = new Lock(env.k, `${env.name}->a`, 'rules->a', 'mutex');
    this.mmuLock = new Lock(env.k, `${env.name}:kvm->mmu_lock`, LOCK_CLASS.mmu_lock, 'rwlock');
    this.memoryLock = new Lock(env.k, `${env.name}:vdev->memory_lock`, LOCK_CLASS.memory_lock, 'rwsem');
    this.mm = new MmStruct(env.k, `${env.name}:mm`);
    const self = this;
    const via = String(env.options.callback);
    // Drops the mapping under the exporter's resv hold ([L10]).
    const callback = kfn('rules_probe_invalidate', function* (t: Task, a: DmaBufAttachment): KGen {
      log.push({ op: 'callback', importer: env.name, via });
      if (!self.sgt) return;
      yield* dma_buf_unmap_attachment(t, a, self.sgt, 'DMA_BIDIRECTIONAL');
      self.sgt = null;
    });
    this.attachOps = !dynamic
      ? null
      : via === 'move_notify'
        ? { allow_peer2peer: true, move_notify: callback }
        : via === 'none'
          ? { allow_peer2peer: true }
          : { allow_peer2peer: true, invalidate_mappings: callback };
  }

  private get buf() {
    return this.env.buffer;
  }

  *attach(t: Task): KGen<number> {
    yield* get_dma_buf(t, this.buf);
    const dev = this.env.options.null_dev ? null : this.env.name;
    const a = this.attachOps
      ? yield* dma_buf_dynamic_attach(t, this.buf, dev, this.attachOps, this, this.env.name)
      : yield* dma_buf_attach(t, this.buf, dev, this.env.name);
    if (isErr(a)) {
      yield* dma_buf_put(t, this.buf);
      return a;
    }
    this.att = a;
    return 0;
  }

  *detach(t: Task): KGen {
    const a = this.att;
    this.att = null;
    if (!a) return;
    yield* dma_buf_detach(t, this.buf, a);
    yield* dma_buf_put(t, this.buf);
  }

  *teardown(t: Task): KGen {
    yield* this.detach(t);
  }

  /** Whether the exporter's pending KERNEL fence has signalled (null: there is none). */
  private fenceSignalled(): boolean | null {
    const priv = this.buf.priv;
    return priv instanceof RulesPriv && priv.fence ? priv.fence.signaled : null;
  }

  readonly ops: Readonly<Record<string, (t: Task, args: OpArgs) => KGen<unknown>>> = {
    map_locked: kfn('rules_probe_map_locked', (t: Task) => this.mapLocked(t)),
    unmap_locked: kfn('rules_probe_unmap_locked', (t: Task) => this.unmapLocked(t)),
    get_pfn_unlocked: kfn('rules_probe_get_pfn_unlocked', (t: Task, args: OpArgs) => this.getPfn(t, Number(args.page))),
    observe_locked: kfn('rules_probe_observe_locked', (t: Task) => this.observe(t, true)),
    observe_unlocked: kfn('rules_probe_observe_unlocked', (t: Task) => this.observe(t, false)),
    alloc: kfn('rules_probe_alloc', (t: Task, args: OpArgs) => this.alloc(t, args.gfp as Gfp, false)),
    alloc_in_signalling: kfn('rules_probe_alloc_in_signalling', (t: Task, args: OpArgs) =>
      this.alloc(t, args.gfp as Gfp, true),
    ),
    wait_holding_a: kfn('rules_probe_wait_holding_a', (t: Task) => this.waitFence(t, true)),
    wait: kfn('rules_probe_wait', (t: Task) => this.waitFence(t, false)),
    lock_a_in_signalling: kfn('rules_probe_lock_a_in_signalling', (t: Task) => this.lockAInSignalling(t)),
    mmu_lock_then_resv: kfn('rules_probe_mmu_lock_then_resv', (t: Task) => this.mmuAndResv(t, true)),
    resv_then_mmu_lock: kfn('rules_probe_resv_then_mmu_lock', (t: Task) => this.mmuAndResv(t, false)),
    memory_lock_then_resv: kfn('rules_probe_memory_lock_then_resv', (t: Task) => this.memoryAndResv(t, true)),
    resv_then_memory_lock: kfn('rules_probe_resv_then_memory_lock', (t: Task) => this.memoryAndResv(t, false)),
    mmap_lock_then_memory_lock: kfn('rules_probe_mmap_lock_then_memory_lock', (t: Task) => this.mmapAndMemory(t, true)),
    memory_lock_then_mmap_lock: kfn('rules_probe_memory_lock_then_mmap_lock', (t: Task) =>
      this.mmapAndMemory(t, false),
    ),
  };

  /** Under resv: map, and record the KERNEL fence's state before and after the call, and the result. */
  private *mapLocked(t: Task): KGen {
    const a = this.att;
    if (!a) return;
    yield* dma_resv_lock(t, this.buf.resv, null);
    const before = this.fenceSignalled();
    const r = yield* dma_buf_map_attachment(t, a, 'DMA_BIDIRECTIONAL');
    log.push({
      op: 'map',
      before,
      after: this.fenceSignalled(),
      ret: isErr(r) ? r : 0,
      pins: a.pinCount,
      mappings: a.sgts.length,
    });
    if (!isErr(r)) this.sgt = r;
    yield* dma_resv_unlock(t, this.buf.resv);
  }

  private *unmapLocked(t: Task): KGen {
    const a = this.att;
    if (!a || !this.sgt) return;
    yield* dma_resv_lock(t, this.buf.resv, null);
    yield* dma_buf_unmap_attachment(t, a, this.sgt, 'DMA_BIDIRECTIONAL');
    this.sgt = null;
    log.push({ op: 'unmap', pins: a.pinCount, mappings: a.sgts.length });
    yield* dma_resv_unlock(t, this.buf.resv);
  }

  private *getPfn(t: Task, page: number): KGen {
    const a = this.att;
    if (!a) return;
    const r = yield* dma_buf_get_pfn_unlocked(t, a, page);
    log.push(
      isErr(r)
        ? { op: 'get_pfn', ret: r }
        : { op: 'get_pfn', ret: 0, pfn: r.pfn.frame.pfn, max_order: r.max_order, owner: r.pfn.frame.owner },
    );
  }

  /** Reads the attachment list twice with two steps in between, holding resv or not ([L5]). */
  private *observe(t: Task, locked: boolean): KGen {
    const names = () => this.buf.attachments.map((x) => x.name);
    if (locked) yield* dma_resv_lock(t, this.buf.resv, null);
    else yield* mutex_lock(t, this.a);
    const before = names();
    if (locked) yield* mutex_lock(t, this.a);
    yield* mutex_unlock(t, this.a);
    if (!locked) yield* mutex_lock(t, this.a);
    const after = names();
    if (locked) yield* dma_resv_unlock(t, this.buf.resv);
    else yield* mutex_unlock(t, this.a);
    log.push({ op: 'observe', before, after });
  }

  /** One page from the system pool with `gfp`, inside a signalling section or not ([L11] c). */
  private *alloc(t: Task, gfp: Gfp, inSection: boolean): KGen {
    const pool = t.k.physmem.pools.get('system');
    if (!pool) throw new Error('no system pool');
    const cookie = inSection ? dma_fence_begin_signalling(t) : false;
    const frames = yield* alloc_pages(t, pool, 1, () => `${this.env.name} scratch`, gfp);
    if (inSection) dma_fence_end_signalling(t, cookie);
    yield* free_pages(t, frames);
  }

  /** A wait on a signalled fence (never blocks; lockdep still sees it), with `a` held or not ([L11] d). */
  private *waitFence(t: Task, holdA: boolean): KGen {
    const f = dma_fence_init(
      t,
      `${t.name}:done`,
      { driverName: 'rules', timelineName: 'probe' },
      t.k.fenceContextAlloc(),
      1,
    );
    yield* dma_fence_signal(t, f);
    if (holdA) yield* mutex_lock(t, this.a);
    yield* dma_fence_wait(t, f, false);
    if (holdA) yield* mutex_unlock(t, this.a);
  }

  /** `a` taken inside a fence signalling critical section ([L11] d). */
  private *lockAInSignalling(t: Task): KGen {
    const cookie = dma_fence_begin_signalling(t);
    yield* mutex_lock(t, this.a);
    yield* mutex_unlock(t, this.a);
    dma_fence_end_signalling(t, cookie);
  }

  private *mmuAndResv(t: Task, mmuFirst: boolean): KGen {
    if (mmuFirst) yield* write_lock(t, this.mmuLock);
    yield* dma_resv_lock(t, this.buf.resv, null);
    if (!mmuFirst) yield* write_lock(t, this.mmuLock);
    yield* write_unlock(t, this.mmuLock);
    yield* dma_resv_unlock(t, this.buf.resv);
  }

  private *memoryAndResv(t: Task, memoryFirst: boolean): KGen {
    if (memoryFirst) yield* down_write(t, this.memoryLock);
    yield* dma_resv_lock(t, this.buf.resv, null);
    if (!memoryFirst) yield* down_write(t, this.memoryLock);
    yield* up_write(t, this.memoryLock);
    yield* dma_resv_unlock(t, this.buf.resv);
  }

  private *mmapAndMemory(t: Task, mmapFirst: boolean): KGen {
    const mmap = this.mm.mmap_lock;
    if (mmapFirst) yield* down_read(t, mmap);
    yield* down_read(t, this.memoryLock);
    if (!mmapFirst) yield* down_read(t, mmap);
    yield* up_read(t, mmap);
    yield* up_read(t, this.memoryLock);
  }
}

const GFP_ARG = {
  gfp: {
    type: 'enum',
    values: ['GFP_KERNEL', 'GFP_NOFS', 'GFP_NOIO', 'GFP_NOWAIT', 'GFP_ATOMIC'],
    required: true,
    doc: 'allocation flags',
  },
} as const;

const rulesProbe = defineImporter({
  name: 'rules-probe',
  summary: 'an importer whose ops each make one sequence of kernel calls and log what they saw',
  options: {
    attach_mode: { type: 'enum', values: ['dynamic', 'static'], default: 'dynamic', doc: 'dma_buf_attach when static' },
    callback: {
      type: 'enum',
      values: ['invalidate_mappings', 'move_notify', 'none'],
      default: 'invalidate_mappings',
      doc: 'the name under which a dynamic attachment passes its invalidate callback ([O6])',
    },
    null_dev: { type: 'boolean', default: false, doc: 'attach with a NULL dev ([O5], [P2])' },
  },
  ops: {
    map_locked: { doc: 'dma_buf_map_attachment under resv' },
    unmap_locked: { doc: 'dma_buf_unmap_attachment under resv' },
    get_pfn_unlocked: { doc: 'dma_buf_get_pfn_unlocked', args: PAGE_ARG },
    observe_locked: { doc: 'read the attachment list twice holding resv' },
    observe_unlocked: { doc: 'read the attachment list twice without resv' },
    alloc: { doc: 'alloc_pages outside a signalling section', args: GFP_ARG },
    alloc_in_signalling: { doc: 'alloc_pages inside a signalling section', args: GFP_ARG },
    wait_holding_a: { doc: 'dma_fence_wait with a held' },
    wait: { doc: 'dma_fence_wait with no lock held' },
    lock_a_in_signalling: { doc: 'a taken inside a signalling section' },
    mmu_lock_then_resv: { doc: 'mmu_lock (write), then resv' },
    resv_then_mmu_lock: { doc: 'resv, then mmu_lock (write)' },
    memory_lock_then_resv: { doc: 'memory_lock (write), then resv' },
    resv_then_memory_lock: { doc: 'resv, then memory_lock (write)' },
    mmap_lock_then_memory_lock: { doc: 'mmap_lock (read), then memory_lock (read)' },
    memory_lock_then_mmap_lock: { doc: 'memory_lock (read), then mmap_lock (read)' },
  },
  create: (env) => new RulesProbe(env),
});

export const MODULES: ReadonlyMap<string, DriverDef> = new Map<string, DriverDef>([
  ['./rules-probe.ts', rulesProbe],
  ['./rules-exporter.ts', rulesExporter],
]);

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

export function run(yaml: string, opts: CheckOptions = {}): CheckResult {
  return check(fromYaml(yaml, MODULES), opts);
}

/** Every interleaving, without reduction: the probe's undeclared observations are then exact. */
export function runAll(yaml: string): CheckResult {
  return run(yaml, { strategy: 'naive' });
}

/** Explores with a kernel configuration (what `checkScenario` does not take). */
export function exploreWith(yaml: string, config?: KernelConfig): ExploreResult {
  return explore(compile(fromYaml(yaml, MODULES)), config ? { config } : {});
}

/** One buffer `bo`, one probe `p` and the given threads (YAML lines). */
export function scenario(
  threads: string,
  o: { buffer?: string; exporter?: string; bufferOptions?: string; options?: string; extra?: string } = {},
): string {
  const buf = o.buffer ?? 'bo';
  return `
name: rules
buffers:
  ${buf}: { exporter: ${o.exporter ?? './rules-exporter.ts'}${o.bufferOptions ? `, options: { ${o.bufferOptions} }` : ''} }
importers:
  p: { driver: ./rules-probe.ts, buffer: ${buf}${o.options ? `, options: { ${o.options} }` : ''} }
${o.extra ?? ''}threads:
${threads}
`;
}
