/**
 * An example driver module that uses the poll and sync_file objects of the
 * model ([C9]): a test driver with its own sw_sync timeline that publishes
 * fences into the buffer's reservation object through the sync_file import,
 * signals them, and waits for them with `dma_buf_poll`.
 *
 *     importers:
 *       producer: { driver: ./sw-sync-producer.ts, buffer: bo }
 *     threads:
 *       gpu: [ { producer.publish: { value: 1 } }, producer.wait ]
 *       irq: [ producer.signal ]
 *
 * - attach: takes its own buffer reference (`get_dma_buf`);
 * - `publish {value}`: a sw_sync fence at `value` (`sw_sync_ioctl_create_fence`,
 *   in a sync_file at a new fd of the process's fd table), added as a WRITE
 *   fence (`dma_buf_import_sync_file` of that fd), then the fd closed
 *   (`close_fd`; the sync_file's release, from task work, puts its fence
 *   reference): the resv keeps the fence;
 * - `signal {by}`: advances the timeline (`sw_sync_ioctl_inc`): fence callbacks
 *   run there, under the timeline lock;
 * - `wait`: `dma_buf_poll(EPOLLIN)` until every WRITE fence has signalled,
 *   sleeping on the buffer's waitqueue in between (`poll_schedule`);
 * - teardown: releases the timeline, which it holds without a file
 *   (`sw_sync_debugfs_release`: pending fences signal with -ENOENT), runs the
 *   task work that queued (`t.deferred`: a final `__fput` a poll callback's
 *   `fput` left), drops the reference.
 */
import {
  close_fd,
  DMA_BUF_SYNC_WRITE,
  defineImporter,
  dma_buf_import_sync_file,
  dma_buf_poll,
  dma_buf_put,
  EPOLLIN,
  get_dma_buf,
  type ImporterEnv,
  type ImporterInstance,
  type KGen,
  kfn,
  type OpArgs,
  poll_schedule,
  poll_wait_seen,
  type SyncTimeline,
  sw_sync_debugfs_release,
  sw_sync_ioctl_create_fence,
  sw_sync_ioctl_inc,
  sync_timeline_create,
  type Task,
} from 'dmabuf-check';

class SwSyncProducer implements ImporterInstance {
  readonly attachCall = 'get_dma_buf';
  readonly timeline: SyncTimeline;
  attached = false;

  constructor(readonly env: ImporterEnv) {
    this.timeline = sync_timeline_create(env.k, `${env.name}:timeline`);
  }

  *attach(t: Task): KGen<number> {
    yield* get_dma_buf(t, this.env.buffer);
    this.attached = true;
    return 0;
  }

  *detach(t: Task): KGen {
    if (!this.attached) return;
    this.attached = false;
    yield* dma_buf_put(t, this.env.buffer);
  }

  readonly ops = {
    publish: (t: Task, a: OpArgs) => publish(t, this, Number(a.value)),
    signal: (t: Task, a: OpArgs) => sw_sync_ioctl_inc(t, this.timeline, Number(a.by)),
    wait: (t: Task) => wait(t, this),
  };

  *teardown(t: Task): KGen {
    yield* sw_sync_debugfs_release(t, this.timeline);
    while (t.deferred.length > 0) yield* (t.deferred.shift() as (t: Task) => KGen)(t);
    yield* this.detach(t);
  }
}

/** A fence at `value`, published as the buffer's WRITE fence. Defined once, at module level. */
const publish = kfn('producer_publish', function* (t: Task, self: SwSyncProducer, value: number): KGen {
  const fd = yield* sw_sync_ioctl_create_fence(t, self.timeline, value);
  yield* dma_buf_import_sync_file(t, self.env.buffer, DMA_BUF_SYNC_WRITE, fd);
  yield* close_fd(t, fd);
});

/** Waits until EPOLLIN: every WRITE fence signalled. The caller's reference keeps the buffer alive. */
const wait = kfn('producer_wait', function* (t: Task, self: SwSyncProducer): KGen {
  const buf = self.env.buffer;
  // A step that declares the buffer, then the registration: no wake-up is missed.
  yield t.at('poll_wait', 'read', buf);
  let seen = poll_wait_seen(buf);
  while ((yield* dma_buf_poll(t, buf, EPOLLIN)) === 0) {
    yield* poll_schedule(t, buf, seen);
    seen = poll_wait_seen(buf);
  }
});

export default defineImporter({
  name: 'sw-sync-producer',
  summary: 'publishes sw_sync fences into the resv (sync_file import), signals them, and polls for them',
  options: {},
  ops: {
    publish: {
      doc: 'a sw_sync fence at value, imported as a WRITE fence',
      args: { value: { type: 'int', min: 0, max: 1000, required: true } },
    },
    signal: { doc: 'SW_SYNC_IOC_INC', args: { by: { type: 'int', min: 1, max: 1000, default: 1 } } },
    wait: { doc: 'dma_buf_poll(EPOLLIN) until ready, sleeping on the waitqueue' },
  },
  create: (env) => new SwSyncProducer(env),
});
