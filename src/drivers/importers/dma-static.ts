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
  dma_buf_map_attachment_unlocked,
  dma_buf_unmap_attachment_unlocked,
} from '../../kernel/dma-buf.ts';
import type { SgTable } from '../../kernel/dma-buf-ops.ts';
import { isErr, type Result } from '../../kernel/errno.ts';
import { mutex_lock, mutex_unlock } from '../../kernel/locking.ts';
import { type KGen, kfn, type Task } from '../../kernel/sched.ts';
import { defineImporter, type ImporterEnv, type OpArgs, PAGE_ARG } from '../driver.ts';
import { DeviceImporter } from './device.ts';
import { device_dma } from './device-dma.ts';

class DmaStaticImporter extends DeviceImporter {
  readonly attachCall = 'dma_buf_attach';
  sgt: SgTable | null = null;
  /** A `map` op ran (granted or refused) and no `unmap` since. */
  mapped = false;

  constructor(env: ImporterEnv) {
    super(env, 'dma_static_dev->lock');
  }

  protected *attachBuffer(t: Task): KGen<Result<DmaBufAttachment>> {
    return yield* dma_buf_attach(t, this.env.buffer, this.env.name, this.env.name);
  }

  readonly ops = {
    map: (t: Task) => DmaStaticImporter.kops.map(t, this),
    dma: (t: Task, args: OpArgs) => DmaStaticImporter.kops.dma(t, this, args),
    unmap: (t: Task) => DmaStaticImporter.kops.unmap(t, this),
  };

  /** The ops as kernel functions, made once for the class: made per instance, they would be made in every execution. */
  private static readonly kops = {
    map: kfn('dma_static_map', (t: Task, self: DmaStaticImporter) => self.map(t)),
    dma: kfn('dma_static_dma', (t: Task, self: DmaStaticImporter, args: OpArgs) => self.dma(t, Number(args.page))),
    unmap: kfn('dma_static_unmap', (t: Task, self: DmaStaticImporter) => self.unmap(t)),
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
