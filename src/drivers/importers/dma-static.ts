/**
 * The `dma-static` importer: a device with a static attachment
 * (`dma_buf_attach`, no importer ops). It never hears about moves; the core
 * keeps its mapping valid by pinning on map and waiting for KERNEL fences
 * ([O5], [LT6], [LT7]). Its own ops are serialised by the device's mutex.
 *
 * Models: a typical static importer (a display or media driver using
 * dma_buf_attach + dma_buf_map_attachment_unlocked)
 */
import { apiMisuse } from '../../checkers/api.ts';
import {
  type DmaBufAttachment,
  dma_buf_attach,
  dma_buf_detach,
  dma_buf_map_attachment_unlocked,
  dma_buf_put,
  dma_buf_unmap_attachment_unlocked,
  get_dma_buf,
} from '../../kernel/dma-buf.ts';
import type { SgTable } from '../../kernel/dma-buf-ops.ts';
import { isErr } from '../../kernel/errno.ts';
import { Lock, mutex_lock, mutex_unlock } from '../../kernel/locking.ts';
import { type KGen, kfn, type Task } from '../../kernel/sched.ts';
import { defineImporter, type ImporterEnv, type ImporterInstance, type OpArgs, PAGE_ARG } from '../driver.ts';
import { device_dma } from './device-dma.ts';

class DmaStaticImporter implements ImporterInstance {
  readonly attachCall = 'dma_buf_attach';
  att: DmaBufAttachment | null = null;
  sgt: SgTable | null = null;
  /** A `map` op ran (granted or refused) and no `unmap` since. */
  mapped = false;
  readonly lock: Lock;

  constructor(readonly env: ImporterEnv) {
    this.lock = new Lock(env.k, `${env.name}->lock`, 'dma_static_dev->lock', 'mutex');
  }

  *attach(t: Task): KGen<number> {
    const buf = this.env.buffer;
    yield* get_dma_buf(t, buf);
    const a = yield* dma_buf_attach(t, buf, this.env.name, this.env.name);
    if (isErr(a)) {
      yield* dma_buf_put(t, buf);
      return a;
    }
    yield* mutex_lock(t, this.lock);
    this.att = a;
    yield* mutex_unlock(t, this.lock);
    return 0;
  }

  *detach(t: Task): KGen {
    yield* mutex_lock(t, this.lock);
    const a = this.att;
    this.att = null;
    if (a) yield* dma_buf_detach(t, this.env.buffer, a);
    yield* mutex_unlock(t, this.lock);
    if (a) yield* dma_buf_put(t, this.env.buffer);
  }

  *teardown(t: Task): KGen {
    // Driver unbind: detach and drop the reference; a mapping left is a leak.
    yield* this.detach(t);
  }

  readonly ops = {
    map: kfn('dma_static_map', (t: Task) => this.map(t)),
    dma: kfn('dma_static_dma', (t: Task, args: OpArgs) => this.dma(t, Number(args.page))),
    unmap: kfn('dma_static_unmap', (t: Task) => this.unmap(t)),
  };

  private *map(t: Task): KGen {
    yield* mutex_lock(t, this.lock);
    if (this.att) {
      if (this.mapped) {
        apiMisuse(t, 'dma_static_map', 'mapped again while already mapped', ['LT5']);
      } else {
        this.mapped = true;
        const r = yield* dma_buf_map_attachment_unlocked(t, this.att, 'DMA_BIDIRECTIONAL');
        if (!isErr(r)) this.sgt = r;
      }
    }
    yield* mutex_unlock(t, this.lock);
  }

  private *dma(t: Task, page: number): KGen {
    yield* mutex_lock(t, this.lock);
    if (this.att) {
      const entry = this.sgt?.entries[page];
      if (entry) yield* device_dma(t, entry);
      else if (!this.mapped)
        apiMisuse(t, 'dma_static_dma', `device DMA to page ${page} of ${this.env.buffer.name} without a mapping`, [
          'LT5',
          'LT10',
        ]);
    }
    yield* mutex_unlock(t, this.lock);
  }

  private *unmap(t: Task): KGen {
    yield* mutex_lock(t, this.lock);
    if (this.att) {
      if (!this.mapped) {
        apiMisuse(t, 'dma_static_unmap', 'unmap without a mapping', ['LT5', 'I11']);
      } else if (this.sgt) {
        yield* dma_buf_unmap_attachment_unlocked(t, this.att, this.sgt, 'DMA_BIDIRECTIONAL');
        this.sgt = null;
      }
      this.mapped = false;
    }
    yield* mutex_unlock(t, this.lock);
  }
}

export const dmaStatic = defineImporter({
  name: 'dma-static',
  summary: 'a device with a static attachment: map pins',
  options: {},
  ops: {
    map: { doc: 'dma_buf_map_attachment_unlocked (pins a dynamic exporter, waits for KERNEL fences)' },
    dma: { doc: 'device DMA to a page through the mapping', args: PAGE_ARG },
    unmap: { doc: 'dma_buf_unmap_attachment_unlocked (unpins)' },
  },
  create: (env) => new DmaStaticImporter(env),
});
