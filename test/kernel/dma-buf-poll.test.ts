/**
 * dma_buf_poll and its fence callbacks ([C9], [O1] poll state, [LT2] 2, [I8]),
 * and epoll around it (eventpoll.ts): each call's behaviour, and the findings
 * of the buggy variants (a callback armed without a file reference; epoll
 * polling a file whose release has begun). The references are the buffer's
 * file's (file.ts): get_file / fput, epoll items on `file->f_ep`, and
 * eventpoll_release from every file's __fput.
 */
import { describe, expect, it } from 'vitest';
import producer from '../../examples/sw-sync-producer.ts';
import { enumerateTraces } from '../../src/explorer/mazurkiewicz.ts';
import {
  alloc_file_pseudo,
  BUILTIN_IMPORTERS,
  close_fd,
  current_files,
  DEFAULT_POLLMASK,
  DMA_RESV_USAGE_READ,
  DMA_RESV_USAGE_WRITE,
  type DmaBuf,
  type DmaFence,
  type DmaResvUsage,
  dma_buf_poll,
  dma_buf_put,
  dma_fence_init,
  dma_fence_signal,
  dma_resv_add_fence,
  dma_resv_lock,
  dma_resv_reserve_fences,
  dma_resv_unlock,
  EBADF,
  EEXIST,
  EINVAL,
  ENOENT,
  ENOTTY,
  EPOLLIN,
  EPOLLOUT,
  epoll_create,
  epoll_ctl_add,
  epoll_ctl_del,
  epoll_wait,
  type File,
  fd_install,
  fput,
  get_dma_buf,
  get_unused_fd_flags,
  Kernel,
  type KGen,
  KObject,
  O_CLOEXEC,
  type OpArgs,
  type SyncFile,
  type Task,
  task_work_run,
} from '../../src/index.ts';
import { compile } from '../../src/scenario/compile.ts';
import { check, codes, expectBug, expectSafe, first, fromYaml } from '../helpers.ts';
import { exportBuf, solo } from './harness.ts';

const FENCE_OPS = { driverName: 'test', timelineName: 'test' };

/** Adds a new unsignalled fence to the buffer's resv at `usage`. */
function* addFence(t: Task, buf: DmaBuf, usage: DmaResvUsage, name: string): KGen<DmaFence> {
  const f = dma_fence_init(t, name, FENCE_OPS, t.k.fenceContextAlloc(), 1);
  yield* dma_resv_lock(t, buf.resv, null);
  dma_resv_reserve_fences(t, buf.resv, 1);
  yield* dma_resv_add_fence(t, buf.resv, f, usage);
  yield* dma_resv_unlock(t, buf.resv);
  return f;
}

/** task_work_run(): the deferred fputs. */
function* runDeferred(t: Task): KGen {
  while (t.deferred.length > 0) yield* (t.deferred.shift() as (t: Task) => KGen)(t);
}

describe('dma_buf_poll ([C9])', () => {
  it('with no fence both directions are ready at once; no callback stays armed and the file reference is given back', () => {
    const { result, k } = solo(function* (t) {
      const buf = yield* exportBuf(t);
      const r = yield* dma_buf_poll(t, buf, EPOLLIN | EPOLLOUT);
      return { r, buf, refcount: buf.refcount, deferred: t.deferred.length };
    });
    expect(result.r).toBe(EPOLLIN | EPOLLOUT);
    expect(result.buf.cb_in.active).toBe(0);
    expect(result.buf.cb_out.active).toBe(0);
    // get_file for each direction, and the callback run at once fputs it in the same step: not the last.
    expect(result.refcount).toBe(1);
    expect(result.deferred).toBe(0);
    expect(result.buf.pollWakeups).toBe(2);
    expect(k.findings).toEqual([]);
  });

  it('nothing asked, nothing done: no lock, no callback', () => {
    const { result, k } = solo(function* (t) {
      const buf = yield* exportBuf(t);
      return { r: yield* dma_buf_poll(t, buf, 0), buf };
    });
    expect(result.r).toBe(0);
    expect(result.buf.refcount).toBe(1);
    expect(k.findings).toEqual([]);
  });

  it('EPOLLIN waits for WRITE fences only; EPOLLOUT for READ ones too (usage_rw, [C9])', () => {
    const { result } = solo(function* (t) {
      const buf = yield* exportBuf(t);
      yield* addFence(t, buf, DMA_RESV_USAGE_READ, 'reader');
      return { r: yield* dma_buf_poll(t, buf, EPOLLIN | EPOLLOUT), buf };
    });
    expect(result.r).toBe(EPOLLIN);
    expect(result.buf.cb_out.active).toBe(EPOLLOUT);
    expect(result.buf.cb_in.active).toBe(0);
  });

  it('an unsignalled WRITE fence: EPOLLIN not ready, the callback armed with a file and a fence reference; a second poll arms nothing more', () => {
    const { result } = solo(function* (t) {
      const buf = yield* exportBuf(t);
      const f = yield* addFence(t, buf, DMA_RESV_USAGE_WRITE, 'writer');
      const r1 = yield* dma_buf_poll(t, buf, EPOLLIN);
      const after1 = { buf: buf.refcount, fence: f.refcount, cbs: f.cbs.length };
      const r2 = yield* dma_buf_poll(t, buf, EPOLLIN);
      return { r1, r2, after1, buf, f };
    });
    expect(result.r1).toBe(0);
    expect(result.r2).toBe(0);
    expect(result.buf.cb_in.active).toBe(EPOLLIN);
    // The resv's reference plus the callback's; the export's plus the callback's file reference.
    expect(result.after1).toEqual({ buf: 2, fence: 3, cbs: 1 });
    expect({ buf: result.buf.refcount, fence: result.f.refcount, cbs: result.f.cbs.length }).toEqual(result.after1);
  });

  it('the signal runs the callback in the signaller: wake-up, active cleared, fence put, the file reference dropped in the signal', () => {
    const k = new Kernel();
    const { result } = solo(function* (t) {
      const buf = yield* exportBuf(t);
      const f = yield* addFence(t, buf, DMA_RESV_USAGE_WRITE, 'writer');
      yield* dma_buf_poll(t, buf, EPOLLIN);
      return { buf, f };
    }, k);
    const { buf, f } = result;
    const signaller = k.newTask('signaller');
    const g = dma_fence_signal(signaller, f);
    for (let r = g.next(); !r.done; r = g.next()) k.step++;
    expect(buf.pollWakeups).toBe(1);
    expect(buf.cb_in.active).toBe(0);
    expect(f.refcount).toBe(2);
    // fput(dmabuf->file) in the callback: the count drops there; not the last, so no task work.
    expect(buf.refcount).toBe(1);
    expect(signaller.deferred.length).toBe(0);
    expect(k.findings).toEqual([]);
  });

  it('when the callback holds the last reference, the signaller releases the buffer from its task work (__fput)', () => {
    const k = new Kernel();
    const { result } = solo(function* (t) {
      const buf = yield* exportBuf(t);
      const f = yield* addFence(t, buf, DMA_RESV_USAGE_WRITE, 'writer');
      yield* dma_buf_poll(t, buf, EPOLLIN);
      yield* dma_buf_put(t, buf);
      return { buf, f };
    }, k);
    const signaller = k.newTask('signaller');
    const g = dma_fence_signal(signaller, result.f);
    for (let r = g.next(); !r.done; r = g.next()) k.step++;
    expect(result.buf.refcount).toBe(0);
    expect(result.buf.released).toBeNull();
    expect(signaller.deferred.length).toBe(1);
    solo(function* () {
      yield* task_work_run(signaller);
    }, k);
    expect(result.buf.released?.thread).toBe('signaller');
    expect(result.buf.released?.stack).toContain('__fput');
    expect(k.findings).toEqual([]);
  });

  it('[LT2] 2: the callback outlives every fd; the signaller drops the last reference and the release is clean', () => {
    const k = new Kernel();
    const { result, t } = solo(function* (t) {
      const buf = yield* exportBuf(t);
      const f = yield* addFence(t, buf, DMA_RESV_USAGE_WRITE, 'writer');
      yield* dma_buf_poll(t, buf, EPOLLIN);
      yield* dma_buf_put(t, buf);
      return { buf, f };
    }, k);
    expect(result.buf.released).toBeNull();
    solo(function* () {
      yield* dma_fence_signal(t, result.f);
      yield* runDeferred(t);
    }, k);
    expect(result.buf.released).not.toBeNull();
    expect(k.findings).toEqual([]);
  });

  it('[LT2] 2 trips: armed without get_file, the last put releases with the callback armed (BUG), and the callback then runs on the released buffer', () => {
    const k = new Kernel();
    const { result, t } = solo(function* (t) {
      const buf = yield* exportBuf(t);
      const f = yield* addFence(t, buf, DMA_RESV_USAGE_WRITE, 'writer');
      yield* dma_buf_poll(t, buf, EPOLLIN, false);
      const refs = buf.refcount;
      yield* dma_buf_put(t, buf);
      return { buf, f, refs };
    }, k);
    expect(result.refs).toBe(1);
    expect(k.findings.map((f) => f.code)).toEqual(['api-misuse']);
    expect(k.findings[0]).toMatchObject({ call: 'dma_buf_release', rules: ['LT2', 'I8', 'C9'] });
    solo(function* () {
      yield* dma_fence_signal(t, result.f);
    }, k);
    expect(k.findings.map((f) => f.code)).toEqual(['api-misuse', 'refcount']);
    expect(k.findings[1]).toMatchObject({ fn: 'dma_buf_poll_cb', what: 'use-after-release', object: 'bo' });
    // No fput: that poll took no reference.
    expect(t.deferred.length).toBe(0);
  });
});

describe('epoll around dma_buf_poll ([C9], eventpoll.ts)', () => {
  it('EPOLL_CTL_ADD links the item and polls once; a second ADD is -EEXIST; DEL unlinks, a second DEL is -ENOENT', () => {
    const { result, k } = solo(function* (t) {
      const buf = yield* exportBuf(t);
      const ep = epoll_create(t.k, 'ep');
      const add = yield* epoll_ctl_add(t, ep, buf.file, EPOLLIN, true);
      const linked = buf.file.f_ep.length;
      const again = yield* epoll_ctl_add(t, ep, buf.file, EPOLLIN, true);
      const ready = yield* epoll_wait(t, ep, true);
      const del = yield* epoll_ctl_del(t, ep, buf.file);
      const del2 = yield* epoll_ctl_del(t, ep, buf.file);
      yield* runDeferred(t);
      return { add, linked, again, ready, del, del2, buf, ep };
    });
    expect(result).toMatchObject({ add: 0, linked: 1, again: -EEXIST, ready: 1, del: 0, del2: -ENOENT });
    expect(result.buf.file.f_ep).toEqual([]);
    expect(result.ep.items).toEqual([]);
    // epi_fget's temporary references and the callbacks' were all given back.
    expect(result.buf.refcount).toBe(1);
    expect(k.findings).toEqual([]);
  });

  it('the final put removes the file from every epoll set (eventpoll_release) before the release', () => {
    const { result, k } = solo(function* (t) {
      const buf = yield* exportBuf(t);
      const ep = epoll_create(t.k, 'ep');
      yield* epoll_ctl_add(t, ep, buf.file, EPOLLIN, true);
      yield* runDeferred(t);
      yield* dma_buf_put(t, buf);
      return { buf, ep };
    });
    expect(result.buf.released).not.toBeNull();
    expect(result.ep.items).toEqual([]);
    expect(k.findings).toEqual([]);
  });

  it('__fput of any watched file runs eventpoll_release before its release; closing the epoll fd (ep_free) unlinks the rest', () => {
    class Thing extends KObject {
      readonly type = 'thing';
    }
    const log: string[] = [];
    const { result, k } = solo(function* (t, k) {
      const ep = epoll_create(k, 'ep');
      const epfd = yield* get_unused_fd_flags(t, O_CLOEXEC);
      yield* fd_install(t, epfd, ep.file);
      const files = ['a', 'b'].map((n) =>
        alloc_file_pseudo(
          k,
          n,
          {
            name: 'test_fops',
            *release(_t, f) {
              log.push(`release ${f.name}: items ${f.f_ep.length}, set ${ep.items.length}`);
            },
          },
          new Thing(k, `${n}:data`),
        ),
      );
      const [a, b] = files as [File, File];
      // Neither has a poll: vfs_poll's DEFAULT_POLLMASK, always ready.
      yield* epoll_ctl_add(t, ep, a, EPOLLIN);
      yield* epoll_ctl_add(t, ep, b, EPOLLOUT);
      const ready = yield* epoll_wait(t, ep);
      yield* fput(t, a);
      yield* task_work_run(t);
      const afterA = ep.items.map((e) => e.file.name);
      yield* close_fd(t, epfd);
      yield* task_work_run(t);
      return { ready, afterA, b, ep, table: current_files(t).fd.filter((f) => f !== null).length };
    });
    expect(result.ready).toBe(2);
    expect(log).toEqual(['release a: items 0, set 1']);
    expect(result.afterA).toEqual(['b']);
    expect(result.ep.items).toEqual([]);
    expect(result.b.f_ep).toEqual([]);
    expect(result.ep.file.freed).toBe(true);
    expect(result.table).toBe(0);
    expect(DEFAULT_POLLMASK & (EPOLLIN | EPOLLOUT)).toBe(EPOLLIN | EPOLLOUT);
    expect(k.findings).toEqual([]);
  });

  it('epi_fget refuses a file whose count reached 0: no poll, no events', () => {
    const { result, k } = solo(function* (t) {
      const buf = yield* exportBuf(t);
      const ep = epoll_create(t.k, 'ep');
      yield* get_dma_buf(t, buf);
      yield* epoll_ctl_add(t, ep, buf.file, EPOLLIN, true);
      yield* runDeferred(t);
      // The state __fput leaves while it waits for ep->mtx in eventpoll_release.
      buf.refcount = 0;
      const wakeups = buf.pollWakeups;
      const ready = yield* epoll_wait(t, ep, true);
      return { ready, polled: buf.pollWakeups !== wakeups };
    });
    expect(result).toEqual({ ready: 0, polled: false });
    expect(k.findings).toEqual([]);
  });

  const RACE = (epiFget: boolean) => `
name: epoll-race
buffers:
  bo: { exporter: system-heap }
importers:
  user: { driver: dma-buf-user, buffer: bo, options: { epi_fget: ${epiFget} } }
threads:
  app: [ { user.epoll_add: { events: in } }, bo.put, user.epoll_wait ]
  closer: [ user.close ]
`;

  it('epoll_wait racing the last close: with epi_fget (2024+) safe in every interleaving', () => {
    expectSafe(check(fromYaml(RACE(true))));
  });

  it('trips: without epi_fget, dma_buf_poll takes get_file on a file whose release has begun: a resurrection', () => {
    const r = check(fromYaml(RACE(false)));
    expectBug(r, 'refcount');
    // The file model reports the get_file on a zero count as a resurrection.
    expect(first(r, 'refcount').message).toContain('resurrects a file whose release is running');
    // The resurrected file is not released a second time: no underflow follows.
    expect(r.findings.some((f) => f.message.includes('dma_buf_put on bo with no reference left'))).toBe(false);
  });
});

describe('the dma-buf-user importer: poll', () => {
  const POLL = (opts: string, wait = false) => `
name: poll
buffers:
  bo: { exporter: system-heap }
importers:
  user: { driver: dma-buf-user, buffer: bo${opts} }
threads:
  app:
    - user.sw_sync_create_fence: { value: 1 }
    - user.import_sync_file: { flags: write }
    - user.poll: { events: in, wait: ${wait} }
    - bo.put
    - user.close
  signaller: [ user.sw_sync_inc ]
`;

  it('the callback holds the file: closing every fd before the signal is safe', () => {
    expectSafe(check(fromYaml(POLL(''))));
  });

  it('trips: poll_file_ref: false — the release BUGs with the callback armed, then the callback uses the released buffer', () => {
    const r = check(fromYaml(POLL(', options: { poll_file_ref: false }')));
    expectBug(r, 'refcount');
    expect(codes(r)).toContain('api-misuse');
    expect(first(r, 'api-misuse').message).toContain('BUG_ON(dmabuf->cb_in.active || dmabuf->cb_out.active)');
    expect(first(r, 'refcount').thread).toBe('signaller');
  });

  it('wait: true sleeps until the sw_sync fence signals (no lost wake-up in any interleaving)', () => {
    expectSafe(check(fromYaml(POLL('', true))));
  });

  it('wait: true on a fence nobody signals blocks for ever: deadlock', () => {
    const r = check(
      fromYaml(`
name: poll-forever
buffers:
  bo: { exporter: system-heap }
importers:
  user: { driver: dma-buf-user, buffer: bo }
threads:
  app:
    - user.sw_sync_create_fence: { value: 2 }
    - user.import_sync_file: { flags: write }
    - user.poll: { events: in, wait: true }
  signaller: [ user.sw_sync_inc ]
`),
    );
    expectBug(r, 'deadlock');
  });

  it('ops on a closed fd return -EBADF and do nothing', () => {
    const r = check(
      fromYaml(`
name: closed
buffers:
  bo: { exporter: system-heap }
importers:
  user: { driver: dma-buf-user, buffer: bo }
threads:
  app: [ user.close, { user.poll: { events: inout } }, { user.export_sync_file: { flags: rw } }, user.close, { user.epoll_add: { events: in } } ]
`),
    );
    expectSafe(r);
  });
});

describe('the dma-buf-user importer: its files are in the process fd table (file.ts)', () => {
  /** The importer on a fresh buffer, attached and started as setup does. */
  function* user(t: Task, options: Record<string, boolean> = {}) {
    const buf = yield* exportBuf(t);
    const def = BUILTIN_IMPORTERS.get('dma-buf-user');
    if (!def) throw new Error('no dma-buf-user');
    const inst = def.create({ k: t.k, name: 'user', buffer: buf, pages: 1, options, buffers: new Map([['bo', buf]]) });
    const r = yield* inst.attach(t);
    if (inst.start) yield* inst.start(t);
    /** Runs the importer's op `name`; its return value (the syscall's). */
    const op = (name: string, args: OpArgs = {}) => {
      const fn = inst.ops[name];
      if (!fn) throw new Error(`no op ${name}`);
      return fn(t, args) as KGen<number>;
    };
    return { buf, inst, r, op };
  }
  const slots = (t: Task) => current_files(t).fd.map((f) => f?.name ?? null);

  it('attach: dma_buf_fd of a new reference at fd 0; setup opens the epoll set (fd 1) and the sw_sync timeline (fd 2); sync_files follow', () => {
    const { result, k } = solo(function* (t) {
      const { buf, r, op } = yield* user(t);
      const refs = buf.refcount;
      yield* op('sw_sync_create_fence', { value: 1 });
      yield* op('export_sync_file', { flags: 'write' });
      return { r, refs, slots: slots(t), is: current_files(t).fd[0] === buf.file };
    });
    expect(result).toEqual({
      r: 0,
      refs: 2,
      slots: [
        'bo->file',
        'user:epoll->file',
        'user:sw_sync->file',
        'user:sw_sync#1:sync_file#1->file',
        'dma_fence_stub:sync_file#2->file',
      ],
      is: true,
    });
    expect(k.findings).toEqual([]);
  });

  it('close is close_fd: the fd goes, the count drops, and the last reference is released by __fput after the op (task work)', () => {
    const { result, k } = solo(function* (t) {
      const { buf, op } = yield* user(t);
      yield* dma_buf_put(t, buf);
      const closed = yield* op('close', {});
      const before = { released: buf.released !== null, count: buf.refcount, deferred: t.deferred.length };
      yield* task_work_run(t);
      const again = yield* op('close', {});
      const poll = yield* op('poll', { events: 'in' });
      return {
        closed,
        before,
        released: buf.released?.stack ?? [],
        again,
        poll,
        slot0: current_files(t).fd[0] ?? null,
      };
    });
    expect(result.closed).toBe(0);
    expect(result.before).toEqual({ released: false, count: 0, deferred: 1 });
    expect(result.released).toContain('__fput');
    expect(result.again).toBe(-EBADF);
    expect(result.poll).toBe(-EBADF);
    expect(result.slot0).toBeNull();
    expect(k.findings).toEqual([]);
  });

  it('close_sync_file is close_fd; the sync_file puts its fence in __fput; importing that fd again is -EINVAL', () => {
    const { result, k } = solo(function* (t) {
      const { op } = yield* user(t);
      yield* op('sw_sync_create_fence', { value: 1 });
      const sf = current_files(t).fd[3]?.private_data as SyncFile;
      const closed = yield* op('close_sync_file', { sync_file: -1 });
      const before = { fence: sf.fence.refcount, released: sf.file.released !== null };
      yield* task_work_run(t);
      const imported = yield* op('import_sync_file', { flags: 'write', sync_file: 0 });
      return { closed, before, fence: sf.fence.refcount, freed: sf.file.freed, imported };
    });
    expect(result).toEqual({
      closed: 0,
      before: { fence: 1, released: false },
      fence: 0,
      freed: true,
      imported: -EINVAL,
    });
    expect(k.findings).toEqual([]);
  });

  it('a stale fd: after close, a new sync_file takes fd 0, and a dma-buf ioctl on the old fd is -ENOTTY; poll polls that file', () => {
    const { result, k } = solo(function* (t) {
      const { op } = yield* user(t);
      yield* op('close', {});
      yield* task_work_run(t);
      yield* op('sw_sync_create_fence', { value: 1 });
      return {
        slot0: current_files(t).fd[0]?.name,
        exported: yield* op('export_sync_file', { flags: 'write' }),
        poll: yield* op('poll', { events: 'in' }),
      };
    });
    // sync_file has no poll in the model: vfs_poll's DEFAULT_POLLMASK.
    expect(result).toEqual({ slot0: 'user:sw_sync#1:sync_file#1->file', exported: -ENOTTY, poll: DEFAULT_POLLMASK });
    expect(k.findings).toEqual([]);
  });

  it("poll_file_ref: false selects the pre-2021 dma_buf_poll for poll(2) and epoll alike (the buffer's pollFileRef)", () => {
    const { result } = solo(function* (t) {
      const { buf, op } = yield* user(t, { poll_file_ref: false });
      yield* addFence(t, buf, DMA_RESV_USAGE_WRITE, 'writer');
      yield* op('epoll_add', { events: 'in' });
      return { armed: buf.cb_in.active, refs: buf.refcount };
    });
    // Armed with no file reference: the export's and the fd table's only.
    expect(result).toEqual({ armed: EPOLLIN, refs: 2 });
  });

  it('process exit (teardown): the scenario closes every fd in fd order; the __fputs run the releases (ep_free, sw_sync_debugfs_release, the fences)', () => {
    const r = check(
      fromYaml(`
name: exit
buffers:
  bo: { exporter: system-heap }
importers:
  user: { driver: dma-buf-user, buffer: bo }
threads:
  app:
    - user.sw_sync_create_fence: { value: 1 }
    - user.import_sync_file: { flags: write }
    - { user.poll: { events: in } }
    - user.epoll_add: { events: in }
`),
    );
    // The armed callback's file reference and the fence are given back when the timeline's
    // release signals the fence with -ENOENT: no leak, no release with a callback armed.
    expectSafe(r);
  });
});

describe('a driver module using the poll and sync_file objects (examples/sw-sync-producer.ts)', () => {
  const PRODUCER = (signal: string) => `
name: producer
buffers:
  bo: { exporter: system-heap }
importers:
  producer: { driver: ./sw-sync-producer.ts, buffer: bo }
threads:
  gpu: [ { producer.publish: { value: 1 } }, producer.wait ]
  irq: [ ${signal} ]
`;
  const modules = new Map([['./sw-sync-producer.ts', producer]]);

  it('publish, signal and wait: the wait returns in every interleaving', () => {
    expectSafe(check(fromYaml(PRODUCER('producer.signal'), modules)));
  });

  it('with no signal (the other thread publishes another fence) the waiter sleeps for ever: deadlock', () => {
    expectBug(check(fromYaml(PRODUCER('{ producer.publish: { value: 2 } }'), modules)), 'deadlock');
  });
});

describe('the declared dependence of the poll steps is sound (brute force over every interleaving)', () => {
  const S = (threads: string, opts = '') => `
name: sound
buffers:
  bo: { exporter: system-heap }
importers:
  user: { driver: dma-buf-user, buffer: bo${opts} }
threads:
${threads}
`;
  // [threads, options, the execution cap: every interleaving must run within it]
  const cases: Record<string, [string, string, number]> = {
    'poll racing the last close': ['  a: [ { user.poll: { events: inout } } ]\n  b: [ bo.put, user.close ]', '', 5000],
    // epoll_wait against the whole life of the item: EPOLL_CTL_ADD, then the last close, whose
    // __fput waits for ep->mtx in eventpoll_release (the catalogue's epoll-wait-vs-close, the
    // other way round, has some 37,000 interleavings).
    'epoll_wait racing the add and the last close': [
      '  a: [ user.epoll_wait ]\n  b: [ { user.epoll_add: { events: in } }, bo.put, user.close ]',
      '',
      10_000,
    ],
    'a callback without a file reference racing the signal': [
      '  a: [ { user.sw_sync_create_fence: { value: 1 } }, user.import_sync_file, { user.poll: { events: in } }, bo.put, user.close ]\n  b: [ user.sw_sync_inc ]',
      ', options: { poll_file_ref: false }',
      5000,
    ],
    'a sync_file closed (close_fd, __fput) and its fence signalled under the poll callback': [
      '  a: [ { user.sw_sync_create_fence: { value: 1 } }, user.import_sync_file, user.close_sync_file, { user.poll: { events: in } }, { user.sw_sync_create_fence: { value: 2 } }, user.import_sync_file ]\n  b: [ user.sw_sync_inc ]',
      '',
      5000,
    ],
  };
  for (const [name, [threads, opts, max]] of Object.entries(cases)) {
    it(`${name}: equivalent executions end alike, adjacent independent steps commute`, () => {
      const bf = enumerateTraces(compile(fromYaml(S(threads, opts))), { maxExecutions: max });
      expect(bf.complete).toBe(true);
      expect(bf.violations).toEqual([]);
      expect(bf.traces.size).toBeGreaterThan(1);
    });
  }
});
