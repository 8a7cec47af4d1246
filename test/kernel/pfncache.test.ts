/**
 * KVM's gfn→pfn cache (kernel/kvm/pfncache.ts, [K3]): activate / check /
 * refresh / invalidate / deactivate, the retry protocol of the refresh
 * (`mmu_notifier_retry_cache`: the count, then the seq), and what goes wrong
 * without each part of it; then the `kvm` importer's `pfn_cache` option.
 *
 * The direct tests run one task: the "concurrent" invalidation runs inside
 * the backing's `gpc_to_pfn`, i.e. exactly in the window where a refresh has
 * dropped gpc->lock.
 */
import { describe, expect, it } from 'vitest';
import {
  type DmaBufAttachment,
  type DmaBufAttachOps,
  defineImporter,
  dma_buf_detach,
  dma_buf_dynamic_attach,
  dma_buf_get_pfn_unlocked,
  dma_buf_put,
  type Frame,
  type GfnToPfnCache,
  get_dma_buf,
  gfn_to_pfn_cache_invalidate_start,
  gpc_access_khva,
  type ImporterEnv,
  type ImporterInstance,
  isErr,
  Kernel,
  type KGen,
  Kvm,
  kfn,
  kvm_gpc_activate,
  kvm_gpc_check,
  kvm_gpc_deactivate,
  kvm_gpc_init,
  kvm_gpc_refresh,
  kvm_mmu_invalidate_begin,
  kvm_mmu_invalidate_end,
  kvm_mmu_invalidate_range_add,
  mn_active_invalidate_count_dec,
  mn_active_invalidate_count_inc,
  type OpArgs,
  PAGE_ARG,
  type PfnRef,
  type Result,
  read_lock,
  read_unlock,
  releaseFrames,
  scenarioHash,
  type Task,
  takeFrames,
  write_lock,
  write_unlock,
} from '../../src/index.ts';
import { check, codes, expectBug, expectSafe, fromYaml } from '../helpers.ts';
import { solo } from './harness.ts';

/**
 * What the backing does on its n-th call (from 0): returns the frame to hand
 * out, resolved (its generation taken) when the call began.
 */
type Script = (t: Task, call: number) => KGen<Frame>;

interface Rig {
  k: Kernel;
  kvm: Kvm;
  gpc: GfnToPfnCache;
  a: Frame;
  b: Frame;
  calls: () => number;
}

function rig(script: Script): Rig {
  const k = new Kernel();
  const kvm = new Kvm(k, 'kvm', 2);
  const pool = k.physmem.pool('vram', 'vram', 0x800000);
  const setup = k.newTask('setup');
  const [a, b] = takeFrames(setup, pool, 2, (i) => `buf page ${i}`) as [Frame, Frame];
  let n = 0;
  const gpc = kvm_gpc_init(k, kvm, 'kvm:gpc', 'buf', {
    *gpc_to_pfn(t: Task): KGen<Result<PfnRef>> {
      const gens = [a.gen, b.gen];
      const f = yield* script(t, n++);
      return { frame: f, gen: gens[f === a ? 0 : 1] as number };
    },
  });
  return { k, kvm, gpc, a, b, calls: () => n };
}

/** The [K2]-style middle of an invalidation: mmu_lock, begin, range, end (seq++), unlock. */
function* mmuInvalidate(t: Task, kvm: Kvm): KGen {
  yield* write_lock(t, kvm.mmu_lock);
  yield* kvm_mmu_invalidate_begin(t, kvm);
  kvm_mmu_invalidate_range_add(kvm, kvm.gfn(0), kvm.gfn(2));
  yield* kvm_mmu_invalidate_end(t, kvm);
  yield* write_unlock(t, kvm.mmu_lock);
}

/** The user pattern (kvm_setup_guest_pvclock): check/refresh loop under the read lock, then the access. */
function* pvclock(t: Task, gpc: GfnToPfnCache): KGen<boolean> {
  yield* read_lock(t, gpc.lock);
  while (!kvm_gpc_check(t, gpc)) {
    yield* read_unlock(t, gpc.lock);
    if ((yield* kvm_gpc_refresh(t, gpc)) !== 0) return false;
    yield* read_lock(t, gpc.lock);
  }
  const khva = gpc.khva;
  if (khva) yield* gpc_access_khva(t, khva, 'kvm_setup_guest_pvclock');
  yield* read_unlock(t, gpc.lock);
  return true;
}

function* freeFrame(t: Task, f: Frame): KGen {
  yield t.at('__free_pages', 'free', f.pool).touch(f, 'write');
  releaseFrames(t, [f]);
}

describe('gfn_to_pfn_cache', () => {
  it('activate maps the page; a check under the lock passes; the access is clean', () => {
    const r = rig(function* (_t, _n) {
      return r.a;
    });
    const { k } = solo(function* (t) {
      expect(yield* kvm_gpc_activate(t, r.gpc, 1)).toBe(0);
      expect(yield* pvclock(t, r.gpc)).toBe(true);
    }, r.k);
    expect(k.findings).toEqual([]);
    expect(r.gpc.valid && r.gpc.active).toBe(true);
    expect(r.gpc.gfn).toBe(r.kvm.gfn(1));
    expect(r.gpc.khva?.frame).toBe(r.a);
    expect(r.gpc.khva?.state).toBe('live');
    expect(r.kvm.gpcs?.list).toEqual([r.gpc]);
    // Valid: the access does not refresh again.
    expect(r.calls()).toBe(1);
  });

  it('kvm_gpc_check without gpc->lock is lock-not-held', () => {
    const r = rig(function* () {
      return r.a;
    });
    solo(function* (t) {
      yield* kvm_gpc_activate(t, r.gpc, 0);
      kvm_gpc_check(t, r.gpc);
    }, r.k);
    expect(r.k.findings.map((f) => f.code)).toEqual(['lock-not-held']);
  });

  it('invalidate_start marks the cache invalid, its mapping invalidated (a free is then no finding), and the next user refreshes onto the new frame', () => {
    let moved = false;
    const r = rig(function* () {
      return moved ? r.b : r.a;
    });
    solo(function* (t) {
      yield* kvm_gpc_activate(t, r.gpc, 0);
      // A move: count++, the caches, [K2], count--, then the old frame is freed.
      yield* mn_active_invalidate_count_inc(t, r.kvm);
      yield* gfn_to_pfn_cache_invalidate_start(t, r.kvm, r.kvm.gfn(0), r.kvm.gfn(2));
      expect(r.gpc.valid).toBe(false);
      expect(r.gpc.khva?.state).toBe('invalidated');
      yield* mmuInvalidate(t, r.kvm);
      yield* mn_active_invalidate_count_dec(t, r.kvm);
      moved = true;
      yield* freeFrame(t, r.a);
      expect(yield* pvclock(t, r.gpc)).toBe(true);
    }, r.k);
    expect(r.k.findings).toEqual([]);
    expect(r.gpc.khva?.frame).toBe(r.b);
    // The old mapping is gone (unmapped after the refresh dropped the lock).
    expect(r.a.translations).toEqual([]);
  });

  it('an invalidation outside the cached gfn leaves it valid', () => {
    const r = rig(function* () {
      return r.a;
    });
    solo(function* (t) {
      yield* kvm_gpc_activate(t, r.gpc, 1);
      yield* gfn_to_pfn_cache_invalidate_start(t, r.kvm, r.kvm.gfn(0), r.kvm.gfn(1));
    }, r.k);
    expect(r.gpc.valid).toBe(true);
  });

  it('retry: an invalidation that started during the refresh (count raised) or ended during it (seq moved) makes it resolve again ([K3])', () => {
    const r = rig(function* (t, n) {
      if (n === 0) {
        // The move begins while the refresh has dropped gpc->lock.
        yield* mn_active_invalidate_count_inc(t, r.kvm);
        yield* gfn_to_pfn_cache_invalidate_start(t, r.kvm, r.kvm.gfn(0), r.kvm.gfn(2));
        return r.a;
      }
      if (n === 1) {
        // ... and ends (seq++, then count--) during the second attempt, freeing the old frame.
        yield* mmuInvalidate(t, r.kvm);
        yield* mn_active_invalidate_count_dec(t, r.kvm);
        yield* freeFrame(t, r.a);
        return r.b;
      }
      return r.b;
    });
    solo(function* (t) {
      expect(yield* kvm_gpc_activate(t, r.gpc, 0)).toBe(0);
      expect(yield* pvclock(t, r.gpc)).toBe(true);
    }, r.k);
    expect(r.k.findings).toEqual([]);
    // Attempt 1 saw the count, attempt 2 the new seq, attempt 3 published.
    expect(r.calls()).toBe(3);
    expect(r.gpc.khva?.frame).toBe(r.b);
    expect(r.a.translations).toEqual([]);
  });

  it('no retry: the PFN resolved before the move is published (stale-mapping at install) and the access is a use-after-free', () => {
    const r = rig(function* (t) {
      yield* mn_active_invalidate_count_inc(t, r.kvm);
      yield* gfn_to_pfn_cache_invalidate_start(t, r.kvm, r.kvm.gfn(0), r.kvm.gfn(2));
      yield* mmuInvalidate(t, r.kvm);
      yield* mn_active_invalidate_count_dec(t, r.kvm);
      yield* freeFrame(t, r.a);
      return r.a;
    });
    r.gpc.retry = false;
    solo(function* (t) {
      yield* kvm_gpc_activate(t, r.gpc, 0);
      yield* pvclock(t, r.gpc);
    }, r.k);
    expect(r.k.findings.map((f) => f.code)).toEqual(['stale-mapping', 'use-after-free']);
    expect(r.k.findings[0]?.message).toMatch(/installs a pte for pfn 0x800000, which no longer backs buf/);
  });

  it('uncounted: caches invalidated before the seq bump without the count are not seen by the refresh', () => {
    const r = rig(function* (t) {
      // The cache is invalidated (not yet valid: nothing to do), no count raised.
      yield* gfn_to_pfn_cache_invalidate_start(t, r.kvm, r.kvm.gfn(0), r.kvm.gfn(2));
      return r.a;
    });
    solo(function* (t) {
      yield* kvm_gpc_activate(t, r.gpc, 0);
      // Published: same seq, no count.
      expect(r.gpc.valid).toBe(true);
      // The rest of the invalidation, then the move frees the frame under a valid cache.
      yield* mmuInvalidate(t, r.kvm);
      yield* freeFrame(t, r.a);
    }, r.k);
    expect(r.k.findings.map((f) => f.code)).toEqual(['stale-mapping']);
    expect(r.k.findings[0]?.message).toMatch(/frees pfn 0x800000 while kvm:gpc's pte for buf page 0 still maps it/);
  });

  it('the same with the count raised first: the refresh retries and nothing is found', () => {
    let ended = false;
    const r = rig(function* (t, n) {
      if (n === 0) {
        yield* mn_active_invalidate_count_inc(t, r.kvm);
        yield* gfn_to_pfn_cache_invalidate_start(t, r.kvm, r.kvm.gfn(0), r.kvm.gfn(2));
        return r.a;
      }
      if (!ended) {
        ended = true;
        yield* mmuInvalidate(t, r.kvm);
        yield* mn_active_invalidate_count_dec(t, r.kvm);
        yield* freeFrame(t, r.a);
      }
      return r.b;
    });
    solo(function* (t) {
      yield* kvm_gpc_activate(t, r.gpc, 0);
    }, r.k);
    expect(r.k.findings).toEqual([]);
    expect(r.gpc.khva?.frame).toBe(r.b);
  });

  it('deactivate: off the list, unmapped; invalidations no longer see it, refresh fails with -EINVAL', () => {
    const r = rig(function* () {
      return r.a;
    });
    solo(function* (t) {
      yield* kvm_gpc_activate(t, r.gpc, 0);
      yield* kvm_gpc_deactivate(t, r.gpc);
      expect(r.kvm.gpcs?.list).toEqual([]);
      expect(r.a.translations).toEqual([]);
      expect(yield* kvm_gpc_refresh(t, r.gpc)).toBeLessThan(0);
      expect(yield* pvclock(t, r.gpc)).toBe(false);
      yield* freeFrame(t, r.a);
    }, r.k);
    expect(r.k.findings).toEqual([]);
    expect(r.gpc.active || r.gpc.valid).toBe(false);
  });

  it('a refresh that cannot resolve (-EFAULT) leaves the cache invalid and unmapped', () => {
    const r = rig(function* () {
      return r.a;
    });
    const fail = kvm_gpc_init(r.k, r.kvm, 'kvm:gpc2', 'buf', {
      *gpc_to_pfn(t: Task): KGen<Result<PfnRef>> {
        yield t.at('gpc_to_pfn', 'read', r.kvm.memslots);
        return -14;
      },
    });
    solo(function* (t) {
      expect(yield* kvm_gpc_activate(t, fail, 0)).toBe(-14);
    }, r.k);
    expect(fail.active).toBe(true);
    expect(fail.valid).toBe(false);
    expect(fail.khva).toBeNull();
  });
});

const kvmYaml = (exporter: string, options: string, vcpu: string, other: string) => `name: gpc
buffers:
  bo:
    exporter: ${exporter}
importers:
  kvm:
    driver: kvm
    buffer: bo${options ? `\n    options: { ${options} }` : ''}
threads:
  vcpu0: [${vcpu}]${other ? `\n  other: [${other}]` : ''}
`;

describe('kvm importer: pfn_cache', () => {
  const vcpu = '{ kvm.gpc_activate: { page: 0 } }, kvm.gpc_access';

  it('checked: safe against a TTM move and a vfio revoke', () => {
    expectSafe(check(fromYaml(kvmYaml('ttm', 'pfn_cache: checked', vcpu, 'bo.move'))));
    expectSafe(check(fromYaml(kvmYaml('vfio-pci', 'pfn_cache: checked', vcpu, 'bo.revoke'))));
  });

  it('each broken part of the protocol is a bug against the move', () => {
    expectBug(check(fromYaml(kvmYaml('ttm', 'pfn_cache: no_retry', vcpu, 'bo.move'))), 'use-after-free');
    expectBug(check(fromYaml(kvmYaml('ttm', 'pfn_cache: no_invalidate', vcpu, 'bo.move'))), 'stale-mapping');
    expectBug(check(fromYaml(kvmYaml('ttm', 'pfn_cache: uncounted', vcpu, 'bo.move'))), 'stale-mapping');
    // Against a revoke, the cache left valid maps a revoked BAR page.
    expectBug(check(fromYaml(kvmYaml('vfio-pci', 'pfn_cache: no_invalidate', vcpu, 'bo.revoke'))), 'stale-mapping');
  });

  it('a user that drops gpc->lock before the write races the revoke', () => {
    const drop = '{ kvm.gpc_activate: { page: 0 } }, { kvm.gpc_access: { drop_lock: true } }';
    expectBug(check(fromYaml(kvmYaml('vfio-pci', 'pfn_cache: checked', drop, 'bo.revoke'))), 'access-after-revoke');
  });

  it('unbind invalidates the cache: the access after detach refreshes, finds no memslot and gives up', () => {
    const r = check(fromYaml(kvmYaml('ttm', 'pfn_cache: checked', vcpu, 'kvm.detach, bo.move')));
    expectSafe(r);
    // Even with the invalidate callback broken, the memslot deletion still invalidates it.
    const seq = '{ kvm.gpc_activate: { page: 0 } }, kvm.detach, kvm.gpc_access, bo.move';
    expect(codes(check(fromYaml(kvmYaml('ttm', 'pfn_cache: no_invalidate', seq, ''))))).toEqual([]);
  });

  it('the gpc ops need pfn_cache: bad input without it', () => {
    expect(() => fromYaml(kvmYaml('ttm', '', vcpu, 'bo.move'))).toThrow(
      /kvm\.gpc_activate: needs a gfn→pfn cache: set the option pfn_cache/,
    );
    expect(() => fromYaml(kvmYaml('ttm', 'pfn_cache: none', 'kvm.gpc_refresh', ''))).toThrow(/pfn_cache/);
  });

  it('pfn_cache is a late option: a scenario that does not set it keeps its hash (and replay tokens)', () => {
    const plain = fromYaml(kvmYaml('ttm', '', '{ kvm.access: { page: 0 } }', 'bo.move'));
    expect(Object.keys(plain.importers[0]?.options ?? {})).not.toContain('pfn_cache');
    const set = fromYaml(kvmYaml('ttm', 'pfn_cache: checked', '{ kvm.access: { page: 0 } }', 'bo.move'));
    expect(scenarioHash(set)).not.toBe(scenarioHash(plain));
    // And it changes nothing the SPTE path does: same verdict, same number of executions.
    const a = check(plain);
    const b = check(set);
    expect(b.verdict).toBe(a.verdict);
  });
});

/**
 * A driver module's own cache (the TS example in docs/scenario-format.md): a
 * host-side user of one page of a dma-buf — a hypervisor-ish "shared info"
 * page — with its own struct kvm, a dynamic attachment whose invalidate
 * callback runs the counted protocol, and a `write` op with the
 * check/refresh loop. Everything comes from the package's public API.
 */
const shinfo_invalidate = kfn('shinfo_invalidate', function* (t: Task, _a: DmaBufAttachment, self: Shinfo): KGen {
  const kvm = self.kvm;
  if (self.env.options.count !== false) yield* mn_active_invalidate_count_inc(t, kvm);
  yield* gfn_to_pfn_cache_invalidate_start(t, kvm, kvm.gfn(0), kvm.gfn(self.env.pages));
  yield* write_lock(t, kvm.mmu_lock);
  yield* kvm_mmu_invalidate_begin(t, kvm);
  kvm_mmu_invalidate_range_add(kvm, kvm.gfn(0), kvm.gfn(self.env.pages));
  yield* kvm_mmu_invalidate_end(t, kvm);
  yield* write_unlock(t, kvm.mmu_lock);
  // The count drops only after the seq bump (without `count`, it is never raised).
  if (self.env.options.count !== false) yield* mn_active_invalidate_count_dec(t, kvm);
});

const shinfo_gpc_to_pfn = kfn('shinfo_gpc_to_pfn', function* (t: Task, self: Shinfo, page: number): KGen<
  Result<PfnRef>
> {
  const a = self.att;
  if (!a) return -14;
  const r = yield* dma_buf_get_pfn_unlocked(t, a, page);
  return isErr(r) ? r : r.pfn;
});

const shinfo_write = kfn('shinfo_write', function* (t: Task, self: Shinfo, page: number): KGen {
  const gpc = self.gpc;
  if (gpc.gfn === -1) yield* kvm_gpc_activate(t, gpc, page);
  yield* pvclock(t, gpc);
});

class Shinfo implements ImporterInstance {
  readonly attachCall = 'dma_buf_dynamic_attach';
  readonly kvm: Kvm;
  readonly gpc: GfnToPfnCache;
  att: DmaBufAttachment | null = null;
  readonly attachOps: DmaBufAttachOps = {
    allow_peer2peer: true,
    invalidate_mappings: (t: Task, a: DmaBufAttachment) => shinfo_invalidate(t, a, this),
  };
  constructor(readonly env: ImporterEnv) {
    this.kvm = new Kvm(env.k, env.name, env.pages);
    this.gpc = kvm_gpc_init(env.k, this.kvm, `${env.name}:shinfo`, env.buffer.name, {
      gpc_to_pfn: (t: Task, gpc: GfnToPfnCache) => shinfo_gpc_to_pfn(t, this, gpc.page),
    });
  }
  *attach(t: Task): KGen<number> {
    yield* get_dma_buf(t, this.env.buffer);
    const a = yield* dma_buf_dynamic_attach(t, this.env.buffer, this.env.name, this.attachOps, this, this.env.name);
    if (isErr(a)) return a;
    this.att = a;
    return 0;
  }
  *detach(t: Task): KGen {
    yield* kvm_gpc_deactivate(t, this.gpc);
    if (!this.att) return;
    yield* dma_buf_detach(t, this.env.buffer, this.att);
    this.att = null;
    yield* dma_buf_put(t, this.env.buffer);
  }
  teardown(t: Task): KGen {
    return this.detach(t);
  }
  readonly ops = { write: (t: Task, args: OpArgs) => shinfo_write(t, this, Number(args.page)) };
}

const shinfo = defineImporter({
  name: 'shinfo',
  summary: 'a host-side user of a dma-buf page through a gfn_to_pfn_cache',
  options: {
    count: { type: 'boolean', default: true, doc: 'raise mn_active_invalidate_count around the invalidation' },
  },
  ops: { write: { doc: 'write the page through the cache', args: PAGE_ARG } },
  create: (env) => new Shinfo(env),
});

describe('a driver module with its own gfn_to_pfn_cache', () => {
  const modules = new Map([['./shinfo.ts', shinfo]]);
  const yaml = (count: boolean) => `name: shinfo
buffers: { bo: { exporter: ttm } }
importers: { xen: { driver: ./shinfo.ts, buffer: bo, options: { count: ${count} } } }
threads:
  vcpu: [{ xen.write: { page: 0 } }, { xen.write: { page: 0 } }]
  evictor: [bo.move]
`;

  it('uses the cache through the public API: safe against a move', () => {
    expectSafe(check(fromYaml(yaml(true), modules)));
  });

  it('without the count, the move frees a page the cache still maps', () => {
    expectBug(check(fromYaml(yaml(false), modules)), 'stale-mapping');
  });
});
