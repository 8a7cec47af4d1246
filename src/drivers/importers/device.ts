/**
 * What the two device importers (`dma-static`, `dma-dynamic`) share: the
 * device's own mutex serialising its ops, and bind/unbind — take a buffer
 * reference, attach, and the reverse. The attachment pointer is protected by
 * the device mutex.
 */
import { type DmaBufAttachment, dma_buf_detach, dma_buf_put, get_dma_buf } from '../../kernel/dma-buf.ts';
import { isErr, type Result } from '../../kernel/errno.ts';
import { Lock, mutex_lock, mutex_unlock } from '../../kernel/locking.ts';
import type { KGen, Task } from '../../kernel/sched.ts';
import type { ImporterEnv, ImporterInstance, OpFn } from '../driver.ts';

export abstract class DeviceImporter implements ImporterInstance {
  abstract readonly attachCall: string;
  abstract readonly ops: Readonly<Record<string, OpFn>>;
  att: DmaBufAttachment | null = null;
  /** The device's mutex (class `<driver>_dev->lock`). */
  readonly lock: Lock;

  constructor(
    readonly env: ImporterEnv,
    lockClass: string,
  ) {
    this.lock = new Lock(env.k, `${env.name}->lock`, lockClass, 'mutex');
  }

  /** The attach call itself (static or dynamic). */
  protected abstract attachBuffer(t: Task): KGen<Result<DmaBufAttachment>>;

  *attach(t: Task): KGen<number> {
    const buf = this.env.buffer;
    yield* get_dma_buf(t, buf);
    const a = yield* this.attachBuffer(t);
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

  /** Driver unbind: detach and drop the reference; a mapping left is a leak. */
  *teardown(t: Task): KGen {
    yield* this.detach(t);
  }
}
