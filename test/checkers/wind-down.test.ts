/**
 * The wind-down window after invalidate ([LT9]): a translation the importer
 * marked invalidated does not make a free a `stale-mapping`, but using it is
 * still a `use-after-free`. And exporter ops on a released buffer ([I7]).
 */
import { describe, expect, it } from 'vitest';
import {
  type DmaBufAttachment,
  type DmaBufAttachOps,
  defineImporter,
  dma_buf_detach,
  dma_buf_dynamic_attach,
  dma_buf_map_attachment,
  dma_buf_put,
  dma_buf_unmap_attachment,
  dma_resv_lock,
  dma_resv_unlock,
  get_dma_buf,
  type ImporterEnv,
  type ImporterInstance,
  invalidate_translations,
  isErr,
  type KGen,
  kasan_check,
  type OpArgs,
  PAGE_ARG,
  type SgTable,
  type Task,
} from '../../src/index.ts';
import { check, codes, fromYaml } from '../helpers.ts';

/** Marks its mapping invalidated in the callback, unmaps it only in `unmap`; `dma` optionally uses it anyway. */
class Lazy implements ImporterInstance {
  readonly attachCall = 'dma_buf_dynamic_attach';
  att: DmaBufAttachment | null = null;
  sgt: SgTable | null = null;
  invalid = false;
  constructor(readonly env: ImporterEnv) {}
  readonly attachOps: DmaBufAttachOps = {
    allow_peer2peer: true,
    invalidate_mappings: function* (t: Task, a: DmaBufAttachment): KGen {
      const self = a.importer_priv as Lazy;
      yield* invalidate_translations(t, self.sgt?.entries ?? []);
      self.invalid = true;
    },
  };
  *attach(t: Task): KGen<number> {
    yield* get_dma_buf(t, this.env.buffer);
    const a = yield* dma_buf_dynamic_attach(t, this.env.buffer, 'dev', this.attachOps, this, this.env.name);
    if (isErr(a)) return a;
    this.att = a;
    return 0;
  }
  *detach(t: Task): KGen {
    if (!this.att) return;
    yield* dma_buf_detach(t, this.env.buffer, this.att);
    this.att = null;
    yield* dma_buf_put(t, this.env.buffer);
  }
  *teardown(t: Task): KGen {
    yield* this.detach(t);
  }
  readonly ops = {
    map: (t: Task) => this.locked(t, (a) => this.doMap(t, a)),
    unmap: (t: Task) => this.locked(t, (a) => this.doUnmap(t, a)),
    dma: (t: Task, args: OpArgs) => this.locked(t, (_a) => this.doDma(t, Number(args.page))),
  };
  private *locked(t: Task, body: (a: DmaBufAttachment) => KGen): KGen {
    yield* dma_resv_lock(t, this.env.buffer.resv, null);
    if (this.att) yield* body(this.att);
    yield* dma_resv_unlock(t, this.env.buffer.resv);
  }
  private *doMap(t: Task, a: DmaBufAttachment): KGen {
    const r = yield* dma_buf_map_attachment(t, a, 'DMA_BIDIRECTIONAL');
    if (!isErr(r)) this.sgt = r;
  }
  private *doUnmap(t: Task, a: DmaBufAttachment): KGen {
    if (this.sgt) yield* dma_buf_unmap_attachment(t, a, this.sgt, 'DMA_BIDIRECTIONAL');
    this.sgt = null;
  }
  private *doDma(t: Task, page: number): KGen {
    const tr = this.sgt?.entries[page];
    if (!tr || (this.invalid && this.env.options.use_after_invalidate !== true)) return;
    yield t.at('device_dma', 'read', tr.frame);
    kasan_check(t, tr, 'dma');
  }
}

const lazy = defineImporter({
  name: 'lazy',
  summary: 'marks translations invalidated and unmaps later',
  options: { use_after_invalidate: { type: 'boolean', default: false, doc: 'keep using the invalidated mapping' } },
  ops: { map: { doc: 'map' }, unmap: { doc: 'unmap' }, dma: { doc: 'dma', args: PAGE_ARG } },
  create: (env) => new Lazy(env),
});

const scenario = (useAfter: boolean) => `
name: wind-down
buffers: { bo: { exporter: ttm } }
importers: { gpu: { driver: ./lazy.ts, buffer: bo, options: { use_after_invalidate: ${useAfter} } } }
threads:
  drv: [gpu.map, bo.move, { gpu.dma: { page: 0 } }, gpu.unmap]
`;

describe('wind-down after invalidate ([LT9], [I1])', () => {
  const modules = new Map([['./lazy.ts', lazy]]);

  it('a translation marked invalidated and not used again is not a stale-mapping', () => {
    const r = check(fromYaml(scenario(false), modules));
    expect(r.verdict).toBe('safe');
  });

  it('using the invalidated translation after the free is still a use-after-free', () => {
    const r = check(fromYaml(scenario(true), modules));
    expect(codes(r)).toEqual(['use-after-free']);
  });
});

describe('exporter ops after the buffer is released ([I7])', () => {
  const yaml = (ops: string) => `
name: after-release
buffers: { bo: { exporter: ttm } }
threads: { t: [${ops}] }
`;
  it('a move after the last put is a refcount finding', () => {
    expect(codes(check(fromYaml(yaml('bo.put, bo.move'))))).toEqual(['refcount']);
  });
  it('also when the put and the move are the first ops of two threads (the put is ordered against every step)', () => {
    const r = check(fromYaml('name: p\nbuffers: { bo: { exporter: ttm } }\nthreads:\n  a: [bo.put]\n  b: [bo.move]\n'));
    expect(codes(r)).toEqual(['refcount']);
  });
  it('a move before the put is fine', () => {
    expect(check(fromYaml(yaml('bo.move, bo.put'))).verdict).toBe('safe');
  });
});
