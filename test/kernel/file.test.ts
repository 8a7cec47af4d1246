/**
 * Files and fds (kernel/file.ts, the file half of kernel/dma-buf.ts; [LT1],
 * [LT2], [V5] 1, [O1]): f_count and its checks (underflow, resurrection, use
 * after release), the final fput deferred to task work, get_file_active, the
 * fd table (allocation limit, install, lockless fget, close), dma_buf_fd /
 * dma_buf_get, and the dma-buf name under name_lock.
 */
import { describe, expect, it } from 'vitest';
import type { RefcountFinding } from '../../src/checkers/finding.ts';
import { enumerateTraces } from '../../src/explorer/mazurkiewicz.ts';
import type { Program } from '../../src/explorer/program.ts';
import {
  __fput,
  alloc_file_pseudo,
  close_fd,
  close_files,
  current_files,
  type DmaBuf,
  type DmaBufOps,
  defineImporter,
  dma_buf_export,
  dma_buf_fd,
  dma_buf_get,
  dma_buf_put,
  dma_buf_set_name,
  dma_resv_lock,
  dma_resv_unlock,
  dmabuffs_dname,
  EBADF,
  EINVAL,
  EMFILE,
  explore,
  type File,
  fd_install,
  fget,
  files_if_any,
  fput,
  get_dma_buf,
  get_file,
  get_file_active,
  get_unused_fd_flags,
  isErr,
  Kernel,
  type KGen,
  KObject,
  kfn,
  Lock,
  mutex_lock,
  mutex_unlock,
  O_CLOEXEC,
  put_unused_fd,
  SgTable,
  setrlimit_nofile,
  type Task,
  task_work_run,
} from '../../src/index.ts';
import { compile } from '../../src/scenario/compile.ts';
import { check, expectBug, expectSafe, fromYaml, loadFile } from '../helpers.ts';
import { solo } from './harness.ts';

class Thing extends KObject {
  readonly type = 'thing';
}

/** A file whose release and d_release log what ran, and which locks the releasing thread held. */
function logged(k: Kernel, log: string[], name = 'f'): File {
  return alloc_file_pseudo(
    k,
    name,
    {
      name: 'test_fops',
      *release(t) {
        log.push(`release held=${t.held.map((h) => h.lock.name).join(',')}`);
      },
    },
    new Thing(k, `${name}:data`),
    {
      *d_release() {
        log.push('d_release');
      },
    },
  );
}

const refcounts = (k: Kernel) => k.findings.filter((f): f is RefcountFinding => f.code === 'refcount');

/** An exporter whose release is logged. */
function exportBuf(t: Task, name = 'buf', log: string[] = []): KGen<DmaBuf> {
  const ops: DmaBufOps = {
    *map_dma_buf(_t, a, dir) {
      return new SgTable(a, dir, []);
    },
    *unmap_dma_buf() {},
    *release() {
      log.push('release');
    },
  };
  return (function* () {
    const b = yield* dma_buf_export(t, name, { exp_name: 'test', ops, pages: 1, priv: null });
    if (isErr(b)) throw new Error('export failed');
    return b;
  })();
}

describe('struct file: f_count, fput and task work ([LT1], [LT2])', () => {
  it('the final fput leaves the release to task work: f_op->release, then d_release, outside the caller’s locks', () => {
    const log: string[] = [];
    const { result, k } = solo(function* (t, k) {
      const f = logged(k, log);
      const lock = new Lock(k, 'drv->lock', 'drv->lock', 'mutex');
      yield* get_file(t, f);
      yield* mutex_lock(t, lock);
      yield* fput(t, f);
      yield* fput(t, f);
      const before = [f.f_count, f.released !== null, log.length, t.deferred.length];
      yield* mutex_unlock(t, lock);
      yield* task_work_run(t);
      return [before, f.released !== null, f.freed];
    });
    expect(result).toEqual([[0, false, 0, 1], true, true]);
    expect(log).toEqual(['release held=', 'd_release']);
    expect(k.findings).toEqual([]);
  });

  it('fput with no reference left is a refcount underflow', () => {
    const { k } = solo(function* (t, k) {
      const f = logged(k, []);
      yield* fput(t, f);
      yield* task_work_run(t);
      yield* fput(t, f);
    });
    const [f] = refcounts(k);
    expect(f?.what).toBe('underflow');
    expect(f?.message).toBe('fput on f with no reference left');
    expect(f?.released?.stack).toContain('__fput');
  });

  it('get_file on a count of 0 with the release pending is a resurrection; after the release, a use after release', () => {
    const { k } = solo(function* (t, k) {
      const f = logged(k, [], 'a');
      yield* fput(t, f);
      yield* get_file(t, f);
      const g = logged(k, [], 'b');
      yield* fput(t, g);
      yield* task_work_run(t);
      yield* get_file(t, g);
    });
    const [a, b] = refcounts(k);
    expect(a?.what).toBe('resurrection');
    expect(a?.message).toContain('get_file on a whose f_count is 0');
    expect(a?.released?.stack).toContain('fput');
    expect(b?.what).toBe('use-after-release');
    expect(b?.object).toBe('b');
  });

  it('a resurrected file is released once: the second __fput is not reported again; a plain double __fput is', () => {
    const log: string[] = [];
    const { k } = solo(function* (t, k) {
      const f = logged(k, log, 'a');
      yield* fput(t, f); // 1 -> 0: __fput queued
      yield* get_file(t, f); // resurrection: 0 -> 1
      yield* fput(t, f); // 1 -> 0: a second __fput queued
      yield* task_work_run(t);
      const g = logged(k, [], 'b');
      yield* fput(t, g);
      yield* task_work_run(t);
      yield* __fput(t, g);
    });
    expect(log).toEqual(['release held=', 'd_release']);
    expect(refcounts(k).map((f) => `${f.what} ${f.object}`)).toEqual(['resurrection a', 'use-after-release b']);
  });

  it('get_file_active takes a reference only while the count is not 0 ([V5] 1)', () => {
    const { result, k } = solo(function* (t, k) {
      const f = logged(k, []);
      const first = yield* get_file_active(t, f);
      yield* fput(t, f);
      yield* fput(t, f);
      const pending = yield* get_file_active(t, f);
      yield* task_work_run(t);
      const released = yield* get_file_active(t, f);
      return [first === f, pending, released, f.f_count];
    });
    expect(result).toEqual([true, null, null, 0]);
    expect(k.findings).toEqual([]);
  });

  it('every f_count step also declares what the file carries', () => {
    const k = new Kernel();
    const f = logged(k, []);
    const t = k.newTask('t0');
    const g = get_file(t, f);
    const s = g.next().value as import('../../src/index.ts').Step;
    const ids = Array.from(s.acc.subarray(0, s.nacc), (a) => a >> 1);
    expect(ids).toEqual([f.id, (f.private_data as KObject).id]);
  });
});

describe('the fd table ([LT1])', () => {
  it('get_unused_fd_flags hands out the lowest free fd below RLIMIT_NOFILE, else -EMFILE; put_unused_fd gives it back', () => {
    const { result } = solo(function* (t) {
      setrlimit_nofile(t, 2);
      const a = yield* get_unused_fd_flags(t, O_CLOEXEC);
      const b = yield* get_unused_fd_flags(t, O_CLOEXEC);
      const c = yield* get_unused_fd_flags(t, O_CLOEXEC);
      yield* put_unused_fd(t, a);
      const d = yield* get_unused_fd_flags(t, O_CLOEXEC);
      return [a, b, c, d];
    });
    expect(result).toEqual([0, 1, -EMFILE, 0]);
  });

  it('fd_install publishes the file; fget takes a reference; close_fd drops the table’s; a second close is -EBADF', () => {
    const log: string[] = [];
    const { result, k } = solo(function* (t, k) {
      const f = logged(k, log);
      const fd = yield* get_unused_fd_flags(t, 0);
      yield* fd_install(t, fd, f);
      const got = yield* fget(t, fd);
      const counts = [f.f_count];
      const closed = yield* close_fd(t, fd);
      const again = yield* close_fd(t, fd);
      const gone = yield* fget(t, fd);
      counts.push(f.f_count);
      yield* fput(t, f);
      yield* task_work_run(t);
      return [fd, got === f, counts, closed, again, gone, log.length];
    });
    expect(result).toEqual([0, true, [2, 1], 0, -EBADF, null, 2]);
    expect(k.findings).toEqual([]);
  });

  it('fd_install on an fd already installed is api-misuse (the kernel BUGs) and installs nothing', () => {
    const { result, k } = solo(function* (t, k) {
      const f = logged(k, [], 'f');
      const g = logged(k, [], 'g');
      const fd = yield* get_unused_fd_flags(t, 0);
      yield* fd_install(t, fd, f);
      yield* fd_install(t, fd, g);
      return current_files(t).fd[fd]?.name;
    });
    expect(result).toBe('f');
    expect(k.findings.map((f) => f.code === 'api-misuse' && f.reason)).toEqual([
      'fd 0 is already installed (BUG_ON(fdt->fd[fd] != NULL))',
    ]);
  });

  it('fget of an installed file whose count is 0 reports the table’s lost reference and fails', () => {
    const { result, k } = solo(function* (t, k) {
      const f = logged(k, []);
      const fd = yield* get_unused_fd_flags(t, 0);
      yield* fd_install(t, fd, f);
      yield* fput(t, f); // someone else drops the table's reference
      return yield* fget(t, fd);
    });
    expect(result).toBeNull();
    expect(refcounts(k).map((f) => f.what)).toEqual(['use-after-release']);
  });

  it('close_files at exit closes every open fd; nothing used the table: none is made', () => {
    const log: string[] = [];
    const { k } = solo(function* (t, k) {
      for (const n of ['a', 'b']) {
        const fd = yield* get_unused_fd_flags(t, 0);
        yield* fd_install(t, fd, logged(k, log, n));
      }
      yield* close_files(t, current_files(t));
      yield* task_work_run(t);
    });
    expect(log).toEqual(['release held=', 'd_release', 'release held=', 'd_release']);
    expect(current_files(k.newTask('x')).fd).toEqual([null, null]);
    expect(files_if_any(new Kernel())).toBeNull();
  });

  it('fget racing close_fd: -EBADF or a reference of its own, never a released file (explored)', () => {
    let released = 0;
    const program: Program = {
      name: 'fget-vs-close',
      hash: '00000000',
      threads: ['closer', 'getter'],
      instantiate: (k) => {
        let f: File | null = null;
        return {
          *setup(t) {
            f = logged(k, [], 'f');
            const fd = yield* get_unused_fd_flags(t, 0);
            yield* fd_install(t, fd, f);
          },
          *thread(i, t) {
            if (i === 0) yield* close_fd(t, 0);
            else {
              const got = yield* fget(t, 0);
              if (got) {
                if (got.released) released++;
                yield* fput(t, got);
              }
            }
            yield* task_work_run(t);
          },
          *teardown() {},
        };
      },
    };
    const r = explore(program, { stopOnFinding: false });
    expect(r.verdict).toBe('safe');
    expect(r.stats.complete).toBe(true);
    expect(r.stats.executions).toBeGreaterThan(2);
    expect(released).toBe(0);
    expect(enumerateTraces(program).violations).toEqual([]);
  });
});

describe('dma_buf_fd and dma_buf_get ([LT1], [L2])', () => {
  it('dma_buf_fd consumes the export reference: closing the fd releases the buffer, from task work', () => {
    const log: string[] = [];
    const { result, k } = solo(function* (t) {
      const buf = yield* exportBuf(t, 'buf', log);
      const fd = yield* dma_buf_fd(t, buf, O_CLOEXEC);
      const count = buf.refcount;
      yield* close_fd(t, fd);
      const pending = [buf.refcount, buf.released !== null];
      yield* task_work_run(t);
      return [fd, count, pending, buf.released !== null];
    });
    expect(result).toEqual([0, 1, [0, false], true]);
    expect(log).toEqual(['release']);
    expect(k.findings).toEqual([]);
  });

  it('dma_buf_fd: -EINVAL for a NULL buffer; -EMFILE leaves the reference with the caller, who must put it', () => {
    const log: string[] = [];
    const { result } = solo(function* (t) {
      const nul = yield* dma_buf_fd(t, null, 0);
      const buf = yield* exportBuf(t, 'buf', log);
      setrlimit_nofile(t, 0);
      const fd = yield* dma_buf_fd(t, buf, O_CLOEXEC);
      const still = buf.refcount;
      yield* dma_buf_put(t, buf);
      return [nul, fd, still, current_files(t).fd.length];
    });
    expect(result).toEqual([-EINVAL, -EMFILE, 1, 0]);
    expect(log).toEqual(['release']);
  });

  it('dma_buf_get: a new reference; -EBADF for an empty fd; -EINVAL (the reference dropped) for a file that is not a dma-buf', () => {
    const { result, k } = solo(function* (t, k) {
      const buf = yield* exportBuf(t);
      const fd = yield* dma_buf_fd(t, buf, 0);
      const got = yield* dma_buf_get(t, fd);
      const count = buf.refcount;
      const bad = yield* dma_buf_get(t, 7);
      const other = logged(k, []);
      const ofd = yield* get_unused_fd_flags(t, 0);
      yield* fd_install(t, ofd, other);
      const notDmaBuf = yield* dma_buf_get(t, ofd);
      return [got === buf, count, bad, notDmaBuf, other.f_count];
    });
    expect(result).toEqual([true, 2, -EBADF, -EINVAL, 1]);
    expect(k.findings).toEqual([]);
  });

  it('dma_buf_fd with resv held is lock-held ([L2])', () => {
    const { k } = solo(function* (t) {
      const buf = yield* exportBuf(t);
      yield* dma_resv_lock(t, buf.resv, null);
      yield* dma_buf_fd(t, buf, 0);
      yield* dma_resv_unlock(t, buf.resv);
    });
    expect(k.findings.map((f) => f.code)).toEqual(['lock-held']);
  });

  it('dma_buf_put and get_dma_buf share the count: a put after the last fput underflows, a get resurrects', () => {
    const log: string[] = [];
    const { k } = solo(function* (t) {
      const buf = yield* exportBuf(t, 'buf', log);
      yield* fput(t, buf.file); // 1 -> 0: __fput queued
      yield* get_dma_buf(t, buf); // resurrection: 0 -> 1
      yield* dma_buf_put(t, buf); // 1 -> 0: released here
      yield* dma_buf_put(t, buf); // underflow
      yield* task_work_run(t); // the queued __fput: already released, not again
      yield* get_dma_buf(t, buf); // after the release
    });
    expect(refcounts(k).map((f) => f.what)).toEqual(['resurrection', 'underflow', 'use-after-release']);
    expect(log).toEqual(['release']);
  });

  it('a resurrected buffer put again with dma_buf_put after its __fput ran is not released twice', () => {
    const log: string[] = [];
    const { k } = solo(function* (t) {
      const buf = yield* exportBuf(t, 'buf', log);
      yield* fput(t, buf.file);
      yield* get_dma_buf(t, buf);
      yield* task_work_run(t); // __fput releases the buffer under the resurrected reference
      yield* dma_buf_put(t, buf);
    });
    expect(refcounts(k).map((f) => f.what)).toEqual(['resurrection']);
    expect(log).toEqual(['release']);
  });
});

describe('the dma-buf name: dma_buf_set_name and dmabuffs_dname under name_lock ([O1], §0.2)', () => {
  it('d_dname prints /dmabuf:<name>; set_name frees the name it replaces', () => {
    const { result, k } = solo(function* (t) {
      const buf = yield* exportBuf(t);
      const none = yield* dmabuffs_dname(t, buf.file);
      yield* dma_buf_set_name(t, buf, 'first');
      const first = buf.user_name;
      yield* dma_buf_set_name(t, buf, 'second');
      const second = yield* dmabuffs_dname(t, buf.file, false);
      return [none, second, first?.freed !== null, buf.user_name?.freed];
    });
    expect(result).toEqual(['/dmabuf:', '/dmabuf:second', true, null]);
    expect(k.findings).toEqual([]);
  });

  it('set_name is allowed with attachments and takes only name_lock (current kernels, §0.2)', () => {
    const r = check(
      fromYaml(`
name: t
buffers: { bo: { exporter: ttm } }
importers: { dev: { driver: dma-dynamic, buffer: bo } }
threads:
  a: [ bo.set_name, bo.read_name ]
`),
    );
    expectSafe(r);
  });

  it('a reader without name_lock can copy a name set_name just freed: use-after-free (refcount); with the lock, safe', () => {
    const yaml = (lock: boolean) => `
name: t
buffers: { bo: { exporter: system-heap } }
threads:
  namer: [ bo.set_name, bo.set_name ]
  reader: [ "bo.read_name": { lock: ${lock} } ]
`;
    const bug = check(fromYaml(yaml(false)));
    expectBug(bug, 'refcount');
    const f = bug.findings[0] as unknown as RefcountFinding;
    expect(f.what).toBe('use-after-free');
    expect(f.released?.stack).toContain('dma_buf_set_name');
    expectSafe(check(fromYaml(yaml(true))));
  });
});

describe('scenario ops on buffers: dma_buf_fd, close_fd, dma_buf_get', () => {
  it('an fd left open is closed at exit and the buffer released: no leak; no fd op, no fd table', () => {
    expectSafe(check(fromYaml('name: t\nbuffers: { bo: { exporter: udmabuf } }\nthreads: { a: [ bo.dma_buf_fd ] }\n')));
    const program = compile(
      fromYaml('name: t\nbuffers: { bo: { exporter: system-heap } }\nthreads: { a: [ bo.put ] }\n'),
    );
    const r = explore(program, {
      onExecution: (x) => expect(files_if_any(x.kernel)).toBeNull(),
    });
    expect(r.verdict).toBe('safe');
  });

  it('put: always drops the fd table’s reference: refcount; put: never on -EMFILE leaks the export reference', () => {
    const put = (args: string) =>
      check(
        fromYaml(
          `name: t\nbuffers: { bo: { exporter: system-heap } }\nthreads: { a: [ "bo.dma_buf_fd": { ${args} } ] }\n`,
        ),
      );
    expectBug(put('put: always'), 'refcount');
    expectBug(put('put: never, nofile: 0'), 'leak');
    expectSafe(put('put: on-error, nofile: 0'));
    expectSafe(put('put: never'));
  });

  it('close_fd without an fd is -EBADF and changes nothing; closing twice does not put twice', () => {
    expectSafe(
      check(
        fromYaml(
          'name: t\nbuffers: { bo: { exporter: system-heap } }\nthreads: { a: [ bo.close_fd, bo.dma_buf_fd, bo.close_fd, bo.close_fd ] }\n',
        ),
      ),
    );
  });

  it('an importer that keeps using the buffer after its put, racing the close: refcount', () => {
    // The same ops as dma-buf-fd-close-vs-dma-buf-get, but the importer's
    // reference is dropped twice (its own put, then the scenario's put op).
    const r = check(
      fromYaml(`
name: t
buffers: { bo: { exporter: system-heap } }
threads:
  user: [ bo.dma_buf_fd, bo.close_fd ]
  importer: [ bo.dma_buf_get, bo.put ]
`),
    );
    expectBug(r, 'refcount');
  });

  it('the catalogue’s fd scenarios declare every access they make (equivalent executions end alike)', () => {
    for (const name of [
      'dma-buf-fd-put-after-install',
      'dma-buf-fd-close-vs-dma-buf-get',
      'dma-buf-fd-emfile-put',
      'dma-buf-fd-emfile-leak',
      'dma-buf-dname-without-name-lock',
      'dma-buf-set-name-vs-dname',
    ]) {
      const e = enumerateTraces(compile(loadFile(`scenarios/${name}.yaml`)));
      expect(e.complete, name).toBe(true);
      expect(e.violations, name).toEqual([]);
    }
  });
});

describe('vfio-pci revoke: get_file_active vs get_file racing the last close ([V5] 1)', () => {
  it('file_ref: get_file resurrects the closing buffer; get_file_active skips it', () => {
    const bug = check(loadFile('scenarios/vfio-revoke-get-file-vs-close.yaml'));
    expectBug(bug, 'refcount');
    const f = bug.findings.find((x) => x.code === 'refcount') as unknown as RefcountFinding;
    expect(f.what).toBe('resurrection');
    expect(f.stack).toEqual(['vfio_pci_revoke', 'vfio_pci_dma_buf_move', 'get_file']);
    expectSafe(check(loadFile('scenarios/vfio-revoke-get-file-active-vs-close.yaml')));
  });
});

describe('a TypeScript driver module using the file calls (the example of docs/scenario-format.md)', () => {
  /** The walker of the docs, with get_file_active or (the bug) get_file. */
  function walker(active: boolean) {
    const walker_visit = kfn('walker_visit', function* (t: Task, buf: DmaBuf): KGen {
      const file = active ? yield* get_file_active(t, buf.file) : yield* get_file(t, buf.file);
      if (!file) return;
      yield* fput(t, file);
    });
    return defineImporter({
      name: 'walker',
      summary: 'visits its buffer the way an iterator does',
      options: {},
      ops: { visit: { doc: 'get_file_active, look, fput' } },
      create: (env) => ({
        attachCall: 'none',
        *attach(): KGen<number> {
          return 0;
        },
        *detach(): KGen {},
        *teardown(): KGen {},
        ops: { visit: (t: Task) => walker_visit(t, env.buffer) },
      }),
    });
  }
  const yaml = `
name: t
buffers: { buf: { exporter: system-heap } }
importers: { w: { driver: ./walker.ts, buffer: buf } }
threads:
  user: [ buf.dma_buf_fd, buf.close_fd ]
  walker: [ w.visit ]
`;

  it('get_file_active racing the last close: safe; get_file: a resurrection', () => {
    expectSafe(check(fromYaml(yaml, new Map([['./walker.ts', walker(true)]]))));
    const bug = check(fromYaml(yaml, new Map([['./walker.ts', walker(false)]])));
    expectBug(bug, 'refcount');
    // Without a list that the release takes the buffer off (as vfio's), the
    // walker may also come after the release: then a use after release.
    expect(['resurrection', 'use-after-release']).toContain((bug.findings[0] as unknown as RefcountFinding).what);
  });
});
