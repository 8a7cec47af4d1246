/**
 * The `drm-exec` importer: a GPU command submission that locks its buffers
 * together before using them, the way drm_exec does — one
 * `ww_acquire_ctx`, `dma_resv_lock` on each object, and on -EDEADLK drop
 * everything, `dma_resv_lock_slow` the contended object, retry ([L6], [L7]).
 *
 * It locks its own buffer first, then the buffer named by `with`, so two
 * submissions bound the other way round take the same locks in opposite
 * order. Options choose the protocol:
 * - `ww_ctx: true` (default): the drm_exec loop above; `false`: plain
 *   `dma_resv_lock(obj, NULL)` on each — two resv locks without a context
 *   ([L6], lockdep nesting) and an ABBA deadlock between two submissions;
 * - `backoff: correct` (default) | `keep-locks` (lock_slow without dropping the
 *   others first) | `wrong-lock` (lock_slow on an object other than the
 *   contended one) — the misuse [L7] step 3 names.
 *
 * Models: drivers/gpu/drm/drm_exec.c (drm_exec_lock_obj, drm_exec_cleanup),
 * Documentation/locking/ww-mutex-design.rst
 */
import { apiMisuse } from '../../checkers/api.ts';
import type { DmaBuf } from '../../kernel/dma-buf.ts';
import { dma_resv_lock, dma_resv_lock_slow, dma_resv_unlock } from '../../kernel/dma-resv.ts';
import { EALREADY, EDEADLK } from '../../kernel/errno.ts';
import { type KGen, kfn, type Task } from '../../kernel/sched.ts';
import { ww_acquire_fini, ww_acquire_init } from '../../kernel/ww-mutex.ts';
import { defineImporter, type ImporterEnv, type ImporterInstance } from '../driver.ts';

/** Bound on drm_exec's retry loop: wait-die guarantees progress long before this. */
const MAX_RETRIES = 16;

class DrmExecImporter implements ImporterInstance {
  readonly attachCall = 'drm_exec_init';
  readonly objects: readonly DmaBuf[];

  constructor(readonly env: ImporterEnv) {
    const other = typeof env.options.with === 'string' ? env.buffers.get(env.options.with) : undefined;
    this.objects = other && other !== env.buffer ? [env.buffer, other] : [env.buffer];
  }

  *attach(): KGen<number> {
    return 0;
  }

  *detach(): KGen {}

  *teardown(): KGen {}

  readonly ops = {
    submit: (t: Task) => DrmExecImporter.kops.submit(t, this),
  };

  /** The ops as kernel functions, made once for the class: made per instance, they would be made in every execution. */
  private static readonly kops = {
    submit: kfn('drm_exec_submit', (t: Task, self: DrmExecImporter) =>
      self.env.options.ww_ctx === false ? self.lockPlain(t) : self.lockAll(t),
    ),
  };

  /** Without a context: one plain resv lock after the other ([L6]). */
  private *lockPlain(t: Task): KGen {
    for (const obj of this.objects) yield* dma_resv_lock(t, obj.resv, null);
    for (const obj of this.objects.slice().reverse()) yield* dma_resv_unlock(t, obj.resv);
  }

  /** drm_exec_until_all_locked(): lock every object under one context, backing off on -EDEADLK ([L7]). */
  private *lockAll(t: Task): KGen {
    const backoff = this.env.options.backoff ?? 'correct';
    const ctx = yield* ww_acquire_init(t);
    const locked = new Set<DmaBuf>();
    for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
      let contended: DmaBuf | null = null;
      for (const obj of this.objects) {
        if (locked.has(obj)) continue;
        const ret = yield* dma_resv_lock(t, obj.resv, ctx);
        if (ret === 0 || ret === -EALREADY) {
          locked.add(obj);
        } else if (ret === -EDEADLK) {
          contended = obj;
          break;
        }
      }
      if (!contended) break;
      // drm_exec_cleanup(): drop every lock of the context, then sleep on the contended one.
      if (backoff !== 'keep-locks') {
        for (const obj of [...locked].reverse()) yield* dma_resv_unlock(t, obj.resv);
        locked.clear();
      }
      const slow = backoff === 'wrong-lock' ? (this.objects.find((o) => o !== contended) ?? contended) : contended;
      yield* dma_resv_lock_slow(t, slow.resv, ctx);
      locked.add(slow);
      if (attempt === MAX_RETRIES - 1) {
        apiMisuse(t, 'drm_exec_until_all_locked', `gave up after ${MAX_RETRIES} -EDEADLK back-offs`, ['L7']);
      }
    }
    // ... the job would be queued here, its fence added to every object ...
    for (const obj of [...locked].reverse()) yield* dma_resv_unlock(t, obj.resv);
    ww_acquire_fini(t, ctx);
  }
}

export const drmExec = defineImporter({
  name: 'drm-exec',
  summary: 'a GPU submission locking its buffer and another one with drm_exec (ww_acquire_ctx, -EDEADLK back-off)',
  options: {
    with: { type: 'buffer', default: '', doc: 'the second buffer the submission locks, after its own' },
    ww_ctx: { type: 'boolean', default: true, doc: 'false: plain dma_resv_lock(obj, NULL) on each buffer ([L6])' },
    backoff: {
      type: 'enum',
      values: ['correct', 'keep-locks', 'wrong-lock'],
      default: 'correct',
      doc: 'what to do on -EDEADLK: drop all then lock_slow the contended object; keep the others; lock_slow another one ([L7] 3)',
    },
  },
  ops: {
    submit: { doc: 'lock every buffer (own, then `with`), then unlock them' },
  },
  create: (env) => new DrmExecImporter(env),
});
