/**
 * sync_file, the dma-buf sync_file ioctls and the sw_sync timeline ([C9]):
 * each call's behaviour, and the findings of the buggy variants (an import
 * that adds a container fence; a sw_sync signal without its own fence
 * reference, whose callback-driven release re-takes the timeline lock). A
 * sync_file is a file of file.ts: installed at an fd of the process's table,
 * looked up with fget, released by the last fput's __fput (task work).
 */
import { describe, expect, it } from 'vitest';
import {
  alloc_file_pseudo,
  close_fd,
  current_files,
  DMA_BUF_SYNC_READ,
  DMA_BUF_SYNC_RW,
  DMA_BUF_SYNC_WRITE,
  DMA_RESV_USAGE_READ,
  DMA_RESV_USAGE_WRITE,
  type DmaBuf,
  type DmaFence,
  dma_buf_export_sync_file,
  dma_buf_import_sync_file,
  dma_fence_add_callback,
  dma_fence_is_container,
  dma_fence_put,
  dma_fence_put_in_step,
  dma_fence_unwrap,
  EINVAL,
  ENOENT,
  EXCLUSIVE,
  fd_install,
  fput,
  get_unused_fd_flags,
  Kernel,
  KObject,
  Lock,
  lock_acquire,
  lock_release,
  type SyncFile,
  type SyncTimeline,
  spin_lock_in_step,
  spin_unlock_in_step,
  sw_sync_debugfs_fops,
  sw_sync_debugfs_open,
  sw_sync_debugfs_release,
  sw_sync_ioctl_create_fence,
  sw_sync_ioctl_inc,
  sync_file_create,
  sync_file_get_fence,
  sync_pt_create,
  sync_timeline_create,
  type Task,
  task_work_run,
} from '../../src/index.ts';
import { check, expectBug, expectSafe, first, fromYaml } from '../helpers.ts';
import { exportBuf, solo } from './harness.ts';

const resvFences = (buf: DmaBuf) => buf.resv.fences.entries.map((e) => [e.fence.name, e.usage]);

/** The sync_file installed at `fd` of the process's table. */
function syncFileAt(t: Task, fd: number): SyncFile {
  return current_files(t).fd[fd]?.private_data as SyncFile;
}

class Thing extends KObject {
  readonly type = 'thing';
}

describe('sync_file ([C9])', () => {
  it('create takes a fence reference and a file; installed, get_fence takes another; the last fput releases the file from task work and puts the fence; one more fput underflows', () => {
    const { result, k } = solo(function* (t) {
      const tl = sync_timeline_create(t.k, 'tl');
      const f = yield* sync_pt_create(t, tl, 1);
      const sf = yield* sync_file_create(t, f);
      const afterCreate = f.refcount;
      const fd = yield* get_unused_fd_flags(t, 0);
      yield* fd_install(t, fd, sf.file);
      const got = yield* sync_file_get_fence(t, fd);
      const afterGet = { fence: f.refcount, file: sf.file.f_count };
      if (got) yield* dma_fence_put(t, got);
      yield* dma_fence_put(t, f);
      const closed = yield* close_fd(t, fd);
      const beforeTaskWork = { released: sf.file.released !== null, fence: f.refcount };
      yield* task_work_run(t);
      const afterClose = { released: sf.file.freed, fence: f.refcount, freed: f.released !== null };
      const late = yield* sync_file_get_fence(t, fd);
      yield* fput(t, sf.file);
      return { got: got === f, afterCreate, afterGet, closed, beforeTaskWork, afterClose, late };
    });
    expect(result).toEqual({
      got: true,
      afterCreate: 2,
      // fget's reference is dropped again before get_fence returns.
      afterGet: { fence: 3, file: 1 },
      closed: 0,
      beforeTaskWork: { released: false, fence: 1 },
      afterClose: { released: true, fence: 0, freed: true },
      late: null,
    });
    expect(k.findings.map((f) => [f.code, f.message])).toEqual([
      ['refcount', 'fput on tl#1:sync_file#1->file with no reference left'],
    ]);
  });

  it('sync_file_get_fence: NULL for an empty fd, and for a file that is not a sync_file (its fget reference dropped)', () => {
    const { result, k } = solo(function* (t, k) {
      const other = alloc_file_pseudo(k, 'other', { name: 'test_fops' }, new Thing(k, 'other:data'));
      const fd = yield* get_unused_fd_flags(t, 0);
      yield* fd_install(t, fd, other);
      return {
        empty: yield* sync_file_get_fence(t, fd + 1),
        negative: yield* sync_file_get_fence(t, -1),
        notSync: yield* sync_file_get_fence(t, fd),
        count: other.f_count,
      };
    });
    expect(result).toEqual({ empty: null, negative: null, notSync: null, count: 1 });
    expect(k.findings).toEqual([]);
  });
});

describe('DMA_BUF_IOCTL_EXPORT_SYNC_FILE / IMPORT_SYNC_FILE ([C9])', () => {
  it('flags must be a non-empty subset of READ|WRITE: -EINVAL otherwise, for both ioctls', () => {
    const { result, k } = solo(function* (t) {
      const buf = yield* exportBuf(t);
      const tl = sync_timeline_create(t.k, 'tl');
      const sf = yield* sw_sync_ioctl_create_fence(t, tl, 1);
      return {
        e0: yield* dma_buf_export_sync_file(t, buf, 0),
        e4: yield* dma_buf_export_sync_file(t, buf, 4 | DMA_BUF_SYNC_READ),
        i0: yield* dma_buf_import_sync_file(t, buf, 0, sf),
        i4: yield* dma_buf_import_sync_file(t, buf, 4, sf),
        fences: resvFences(buf),
        // Only the sw_sync fence's fd: a refused export allocates none.
        fds: current_files(t).fd.filter((f) => f).length,
      };
    });
    expect(result).toEqual({ e0: -EINVAL, e4: -EINVAL, i0: -EINVAL, i4: -EINVAL, fences: [], fds: 1 });
    expect(k.findings).toEqual([]);
  });

  it('export: the signalled stub when there is no fence; the one fence itself; an array for several', () => {
    const { result, k } = solo(function* (t) {
      const buf = yield* exportBuf(t);
      const tl = sync_timeline_create(t.k, 'tl');
      const none = yield* dma_buf_export_sync_file(t, buf, DMA_BUF_SYNC_RW);
      const w = yield* sw_sync_ioctl_create_fence(t, tl, 1);
      yield* dma_buf_import_sync_file(t, buf, DMA_BUF_SYNC_WRITE, w);
      const r = yield* sw_sync_ioctl_create_fence(t, tl, 2);
      yield* dma_buf_import_sync_file(t, buf, DMA_BUF_SYNC_READ, r);
      // READ flag: usage_rw(false) = WRITE fences only; WRITE flag: readers and writers.
      const forRead = yield* dma_buf_export_sync_file(t, buf, DMA_BUF_SYNC_READ);
      const forWrite = yield* dma_buf_export_sync_file(t, buf, DMA_BUF_SYNC_WRITE);
      const fds = [none, forRead, forWrite, w, r];
      if (fds.some((fd) => fd < 0)) throw new Error('export failed');
      // Each at a new fd of the process, the lowest free one.
      expect(fds).toEqual([0, 3, 4, 1, 2]);
      return fds.map((fd) => syncFileAt(t, fd));
    });
    const [none, forRead, forWrite, w, r] = result as [SyncFile, SyncFile, SyncFile, SyncFile, SyncFile];
    expect(none.fence.name).toBe('dma_fence_stub');
    expect(none.fence.signaled).toBe(true);
    expect(forRead.fence).toBe(w.fence);
    expect(dma_fence_is_container(forWrite.fence)).toBe(true);
    expect(dma_fence_unwrap(forWrite.fence)).toEqual([w.fence, r.fence]);
    expect(k.findings).toEqual([]);
  });

  it('import: adds at WRITE or READ, takes a reference and gives back its own; a closed sync_file fd is -EINVAL', () => {
    const { result, k } = solo(function* (t) {
      const buf = yield* exportBuf(t);
      const a = yield* sw_sync_ioctl_create_fence(t, sync_timeline_create(t.k, 'tl'), 1);
      // Another timeline: a later point of the same context would replace the first entry ([R4]).
      const b = yield* sw_sync_ioctl_create_fence(t, sync_timeline_create(t.k, 'tl2'), 2);
      const [fa, fb] = [syncFileAt(t, a).fence, syncFileAt(t, b).fence];
      const ra = yield* dma_buf_import_sync_file(t, buf, DMA_BUF_SYNC_READ, a);
      const rb = yield* dma_buf_import_sync_file(t, buf, DMA_BUF_SYNC_RW, b);
      yield* close_fd(t, a);
      yield* task_work_run(t);
      const closed = yield* dma_buf_import_sync_file(t, buf, DMA_BUF_SYNC_WRITE, a);
      return { ra, rb, closed, fences: resvFences(buf), refs: [fa.refcount, fb.refcount] };
    });
    expect(result).toEqual({
      ra: 0,
      rb: 0,
      closed: -EINVAL,
      fences: [
        ['tl#1', DMA_RESV_USAGE_READ],
        ['tl2#2', DMA_RESV_USAGE_WRITE],
      ],
      // tl#1: the resv only (its sync_file is closed); tl2#2: its sync_file and the resv.
      refs: [1, 2],
    });
    expect(k.findings).toEqual([]);
  });

  it('import of an array unwraps it: each fence added, no WARN; without unwrap the container itself WARNs ([R4], [R8])', () => {
    for (const unwrap of [true, false]) {
      const { result, k } = solo(function* (t) {
        const buf = yield* exportBuf(t);
        const tl = sync_timeline_create(t.k, 'tl');
        yield* dma_buf_import_sync_file(t, buf, DMA_BUF_SYNC_WRITE, yield* sw_sync_ioctl_create_fence(t, tl, 1));
        yield* dma_buf_import_sync_file(t, buf, DMA_BUF_SYNC_READ, yield* sw_sync_ioctl_create_fence(t, tl, 2));
        const arr = yield* dma_buf_export_sync_file(t, buf, DMA_BUF_SYNC_WRITE);
        if (arr < 0) throw new Error('export failed');
        const r = yield* dma_buf_import_sync_file(t, buf, DMA_BUF_SYNC_READ, arr, unwrap);
        return { r, fences: resvFences(buf).map(([n]) => n) };
      });
      expect(result.r).toBe(0);
      if (unwrap) {
        expect(k.findings).toEqual([]);
        expect(result.fences).toEqual(['tl#1', 'tl#2']);
      } else {
        expect(k.findings.map((f) => f.code)).toEqual(['api-misuse']);
        expect(k.findings[0]?.message).toContain('is a container fence');
      }
    }
  });

  const EXPORT_IMPORT = (unwrap: boolean) => `
name: export-import
buffers:
  bo: { exporter: system-heap }
importers:
  user: { driver: dma-buf-user, buffer: bo, options: { import_unwrap: ${unwrap} } }
threads:
  app:
    - user.sw_sync_create_fence: { value: 1 }
    - user.import_sync_file: { flags: write }
    - user.sw_sync_create_fence: { value: 2 }
    - user.import_sync_file: { flags: read }
    - user.export_sync_file: { flags: write }
    - user.import_sync_file: { flags: write }
  signaller: [ user.sw_sync_inc ]
`;

  it('scenario: export racing a signal, imported back with unwrap: safe in every interleaving', () => {
    expectSafe(check(fromYaml(EXPORT_IMPORT(true))));
  });

  it('scenario trips: import_unwrap: false WARNs when the export made an array (both fences still pending)', () => {
    const r = check(fromYaml(EXPORT_IMPORT(false)));
    expectBug(r, 'api-misuse');
    expect(first(r, 'api-misuse').fn).toBe('dma_resv_add_fence');
  });
});

describe('sw_sync ([C9])', () => {
  it('a point the timeline already passed is created signalled; the same value twice is the same point', () => {
    const { result, k } = solo(function* (t) {
      const tl = sync_timeline_create(t.k, 'tl');
      yield* sw_sync_ioctl_inc(t, tl, 1);
      const old = yield* sync_pt_create(t, tl, 1);
      const a = yield* sync_pt_create(t, tl, 3);
      const b = yield* sync_pt_create(t, tl, 3);
      return { old: old.signaled, same: a === b, refs: a.refcount, list: tl.pt_list.map((p) => p.name), kref: tl.kref };
    });
    expect(result).toEqual({ old: true, same: true, refs: 2, list: ['tl#3'], kref: 3 });
    expect(k.findings).toEqual([]);
  });

  it('INC signals the passed points in seqno order, callbacks under the timeline lock, in the caller', () => {
    const seen: string[] = [];
    const { result, k } = solo(function* (t) {
      const tl = sync_timeline_create(t.k, 'tl');
      const pts: DmaFence[] = [];
      for (const v of [3, 1, 2]) pts.push(yield* sync_pt_create(t, tl, v));
      for (const p of pts) {
        yield* dma_fence_add_callback(t, p, { func: null, queued: false }, (st, f) => {
          seen.push(`${f.name}:${st.name}:${st.holds(tl.lock)}`);
        });
      }
      yield* sw_sync_ioctl_inc(t, tl, 2);
      return { value: tl.value, list: tl.pt_list.map((p) => p.name), held: t.held.length };
    });
    expect(seen).toEqual(['tl#1:t0:true', 'tl#2:t0:true']);
    expect(result).toEqual({ value: 2, list: ['tl#3'], held: 0 });
    expect(k.findings).toEqual([]);
  });

  /** A callback that drops the last reference of the point it runs for (as dma_buf_poll_cb can). */
  function lastRefDroppedInCallback(holdRef: boolean): Kernel {
    const { k } = solo(function* (t) {
      const tl = sync_timeline_create(t.k, 'tl');
      const p = yield* sync_pt_create(t, tl, 1);
      yield* dma_fence_add_callback(t, p, { func: null, queued: false }, (st, f) => dma_fence_put_in_step(st, f));
      yield* sw_sync_ioctl_inc(t, tl, 1, holdRef);
    });
    return k;
  }

  it('since 2023 INC holds a reference across the signal: the release runs after the unlock, no finding', () => {
    expect(lastRefDroppedInCallback(true).findings).toEqual([]);
  });

  it('trips: without it the callback releases the point under the timeline lock, which the release takes again: deadlock', () => {
    const k = lastRefDroppedInCallback(false);
    expect(k.findings.map((f) => f.code)).toEqual(['deadlock']);
    expect(k.findings[0]?.stack).toContain('timeline_fence_release');
    expect(k.findings[0]?.message).toContain('tl->lock');
  });

  /** A driver lock its fence callback takes (spin_lock inside the signaller's step). */
  function takesLock(lock: Lock) {
    return (st: Task) => spin_unlock_in_step(st, lock, spin_lock_in_step(st, lock));
  }

  it('lockdep: a callback taking a lock held around dma_fence_add_callback closes a cycle with the timeline lock', () => {
    const k = new Kernel();
    const x = new Lock(k, 'drv->lock', 'drv->lock', 'spinlock');
    const tl = sync_timeline_create(k, 'tl');
    // Thread a arms the callback under drv->lock: drv->lock → sync_timeline->lock (add_callback takes fence->lock).
    const { result: p } = solo(function* (t) {
      const p = yield* sync_pt_create(t, tl, 1);
      yield* lock_acquire(t, x, EXCLUSIVE, 'spin_lock');
      yield* dma_fence_add_callback(t, p, { func: null, queued: false }, takesLock(x));
      yield* lock_release(t, x, 'spin_unlock');
      return p;
    }, k);
    expect(k.findings).toEqual([]);
    // Thread b signals: the callback takes drv->lock under the timeline lock, the reverse order.
    solo(function* (t) {
      yield* sw_sync_ioctl_inc(t, tl, 1);
    }, k);
    expect(p.signaled).toBe(true);
    expect(k.findings.map((f) => f.code)).toEqual(['lock-order']);
    expect(k.findings[0]).toMatchObject({ kind: 'circular', lock: { class: 'drv->lock' } });
  });

  it('... and SW_SYNC_IOC_INC called with that lock held deadlocks at once (recursive)', () => {
    const k = new Kernel();
    const x = new Lock(k, 'drv->lock', 'drv->lock', 'spinlock');
    solo(function* (t) {
      const tl = sync_timeline_create(t.k, 'tl');
      const p = yield* sync_pt_create(t, tl, 1);
      yield* dma_fence_add_callback(t, p, { func: null, queued: false }, takesLock(x));
      yield* lock_acquire(t, x, EXCLUSIVE, 'spin_lock');
      yield* sw_sync_ioctl_inc(t, tl, 1);
      yield* lock_release(t, x, 'spin_unlock');
    }, k);
    expect(k.findings.map((f) => f.code)).toContain('deadlock');
    expect(k.findings.find((f) => f.code === 'deadlock')?.message).toContain('drv->lock');
  });

  it('the timeline is its debugfs file: closing the last fd runs sw_sync_debugfs_release from task work', () => {
    const { result, k } = solo(function* (t, k) {
      const file = sw_sync_debugfs_open(k, 'tl');
      const tl = file.private_data as SyncTimeline;
      const fd = yield* get_unused_fd_flags(t, 0);
      yield* fd_install(t, fd, file);
      const pfd = yield* sw_sync_ioctl_create_fence(t, tl, 5);
      const p = syncFileAt(t, pfd).fence;
      yield* close_fd(t, fd);
      const before = p.signaled;
      yield* task_work_run(t);
      return { fops: file.f_op === sw_sync_debugfs_fops, before, signaled: p.signaled, error: p.error, kref: tl.kref };
    });
    // The point's own reference still held by its sync_file: kref 1.
    expect(result).toEqual({ fops: true, before: false, signaled: true, error: -ENOENT, kref: 1 });
    expect(k.findings).toEqual([]);
  });

  it('closing the timeline signals every pending point with -ENOENT', () => {
    const { result, k } = solo(function* (t) {
      const tl = sync_timeline_create(t.k, 'tl');
      const p = yield* sync_pt_create(t, tl, 5);
      yield* sw_sync_debugfs_release(t, tl);
      return { signaled: p.signaled, error: p.error, kref: tl.kref };
    });
    expect(result).toEqual({ signaled: true, error: -ENOENT, kref: 1 });
    expect(k.findings).toEqual([]);
  });

  const SIGNAL = (ref: boolean) => `
name: sw-sync-signal
buffers:
  bo: { exporter: system-heap }
importers:
  user: { driver: dma-buf-user, buffer: bo, options: { sw_sync_signal_ref: ${ref} } }
threads:
  app:
    - user.sw_sync_create_fence: { value: 1 }
    - user.import_sync_file: { flags: write }
    - user.close_sync_file
    - user.poll: { events: in }
    - user.sw_sync_create_fence: { value: 2 }
    - user.import_sync_file: { flags: write }
  signaller: [ user.sw_sync_inc ]
`;

  it('scenario: the poll callback holds the last reference of the signalled point; with the reference held by INC, safe', () => {
    expectSafe(check(fromYaml(SIGNAL(true))));
  });

  it('scenario trips: sw_sync_signal_ref: false — the poll callback releases the point under the timeline lock', () => {
    const r = check(fromYaml(SIGNAL(false)));
    expectBug(r, 'deadlock');
    expect(first(r, 'deadlock').thread).toBe('signaller');
  });
});
