/**
 * Turns a validated scenario into a {@link Program}: per execution, fresh
 * exporter and importer instances on a fresh kernel; setup exports and
 * attaches in file order; each thread runs its ops in order; teardown lets
 * every importer's owner go away, drops the initial references and checks for
 * leaks ([LT2]–[LT5]).
 */
import { apiMisuse } from '../checkers/api.ts';
import { heldInfo } from '../checkers/lockdep.ts';
import type { ExportedBuffer, ImporterInstance, OpArgs } from '../drivers/driver.ts';
import { heartbeat } from '../explorer/execution.ts';
import type { Program, World } from '../explorer/program.ts';
import { groupsOfEqual } from '../explorer/symmetry.ts';
import { dma_buf_put, get_dma_buf, leak } from '../kernel/dma-buf.ts';
import { errname, isErr } from '../kernel/errno.ts';
import { close_files, files_if_any } from '../kernel/file.ts';
import type { Kernel } from '../kernel/kernel.ts';
import { alloc_pages } from '../kernel/page-alloc.ts';
import type { KGen, Task } from '../kernel/sched.ts';
import { bufferFileOp, UserFds } from './file-ops.ts';
import type { OpSpecCall, ScenarioSpec } from './spec.ts';

/** FNV-1a, 32 bits, as 8 hex digits. */
export function fnv1a(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}

/** The fingerprint of what decides executions (not the name, description or expectation). */
export function scenarioHash(spec: ScenarioSpec): string {
  const canon = {
    buffers: spec.buffers.map((b) => [b.name, b.exporterRef, b.pages, sorted(b.options)]),
    importers: spec.importers.map((i) => [i.name, i.driverRef, i.buffer, sorted(i.options), i.manual]),
    threads: spec.threads.map((t) => [t.name, t.ops.map((o) => [o.target, o.op, sorted(o.args)])]),
  };
  return fnv1a(JSON.stringify(canon));
}

function sorted(o: Readonly<Record<string, unknown>>): [string, unknown][] {
  return Object.keys(o)
    .sort()
    .map((k) => [k, o[k]]);
}

interface BufferState {
  exported: ExportedBuffer | null;
  gets: number;
  puts: number;
  /** A `dma_buf_fd` op took over the initial reference (the fd table, or the op's own put or leak). */
  handedOff: boolean;
}

class ScenarioWorld implements World {
  private readonly bufs = new Map<string, BufferState>();
  private readonly imps = new Map<string, ImporterInstance>();
  /** The fds user space got from `dma_buf_fd` ops. */
  private readonly userFds = new UserFds();

  constructor(
    private readonly k: Kernel,
    private readonly spec: ScenarioSpec,
  ) {}

  *setup(t: Task): KGen {
    for (const b of this.spec.buffers) {
      t.op = `export ${b.name} (${b.exporter.name})`;
      t.stack.push(b.exporter.exportCall ?? 'dma_buf_export');
      const r = yield* b.exporter.export(t, { k: this.k, name: b.name, pages: b.pages, options: b.options });
      t.stack.pop();
      if (isErr(r)) {
        apiMisuse(
          t,
          'dma_buf_export',
          `setup: exporter ${b.exporter.name} could not export ${b.name} (${errname(r)})`,
          ['O2'],
        );
        return;
      }
      this.bufs.set(b.name, { exported: r, gets: 0, puts: 0, handedOff: false });
    }
    for (const i of this.spec.importers) {
      const buf = this.bufs.get(i.buffer)?.exported?.buf;
      if (!buf) throw new Error(`importer ${i.name}: no buffer ${i.buffer}`);
      const inst = i.driver.create({
        k: this.k,
        name: i.name,
        buffer: buf,
        pages: buf.pages,
        options: i.options,
        buffers: this.bufferMap(),
      });
      this.imps.set(i.name, inst);
      if (i.manual) continue;
      t.op = `attach ${i.name} (${i.driver.name})`;
      const r = yield* inst.attach(t);
      if (r < 0) {
        const exporter = this.spec.buffers.find((b) => b.name === i.buffer)?.exporter.name ?? '?';
        apiMisuse(
          t,
          inst.attachCall,
          `setup: ${exporter} refused ${i.driver.name} importer ${i.name}: ${inst.attachCall} returned ${errname(r)}`,
          ['O3', 'V4'],
        );
        return;
      }
    }
    for (const i of this.spec.importers) {
      const inst = this.imps.get(i.name);
      if (!inst?.start) continue;
      t.op = `start ${i.name} (${i.driver.name})`;
      yield* inst.start(t);
    }
  }

  private bufferMap(): Map<string, import('../kernel/dma-buf.ts').DmaBuf> {
    const m = new Map<string, import('../kernel/dma-buf.ts').DmaBuf>();
    for (const [name, st] of this.bufs) if (st.exported) m.set(name, st.exported.buf);
    return m;
  }

  *thread(i: number, t: Task): KGen {
    const spec = this.spec.threads[i];
    if (!spec) return;
    for (const [j, op] of spec.ops.entries()) {
      t.op = op.text;
      t.opIndex = j;
      // The watchdog must know the op even if it never reaches a step.
      const b = heartbeat.beat;
      if (b !== null) {
        b[1] = t.idx;
        b[2] = j;
      }
      yield* this.call(t, op);
      // task_work_run() on the way back to user space (deferred fput).
      while (t.deferred.length > 0) yield* (t.deferred.shift() as (t: Task) => KGen)(t);
    }
    t.op = '';
    if (t.held.length > 0) {
      t.k.report(t, {
        code: 'lock-held-on-return',
        handler: 'thread exit',
        held: heldInfo(t),
        rules: ['L14', 'I18'],
        message: `lock held when returning to user space: ${t.name} exits holding ${t.held.map((h) => h.lock.name).join(', ')}`,
      });
    }
  }

  private *call(t: Task, op: OpSpecCall): KGen {
    if (op.target === 'mm') {
      yield* this.mmAlloc(t, op.args);
      return;
    }
    const b = this.bufs.get(op.target);
    if (b?.exported) {
      const buf = b.exported.buf;
      if (op.op === 'put') {
        b.puts++;
        yield* dma_buf_put(t, buf);
      } else if (op.op === 'get') {
        b.gets++;
        yield* get_dma_buf(t, buf);
      } else {
        const fn = b.exported.ops[op.op];
        if (fn) {
          yield* fn(t, op.args);
        } else {
          const fop = bufferFileOp(op.op);
          if (!fop) throw new Error(`no op ${op.op} on ${op.target}`);
          if (op.op === 'dma_buf_fd') b.handedOff = true;
          yield* fop(t, buf, this.userFds, op.args);
        }
      }
      return;
    }
    const imp = this.imps.get(op.target);
    if (!imp) throw new Error(`no object ${op.target}`);
    if (op.op === 'attach') {
      yield* imp.attach(t);
    } else if (op.op === 'detach') {
      yield* imp.detach(t);
    } else {
      const fn = imp.ops[op.op];
      if (!fn) throw new Error(`no op ${op.op} on ${op.target}`);
      yield* fn(t, op.args);
    }
  }

  private *mmAlloc(t: Task, args: OpArgs): KGen {
    const pages = Number(args.pages ?? 1);
    const from = typeof args.buffer === 'string' ? this.bufs.get(args.buffer) : this.bufs.values().next().value;
    let pool = from?.exported?.pool;
    if (typeof args.pool === 'string') pool = this.k.physmem.pools.get(args.pool);
    if (!pool || pool.kind === 'mmio') pool = this.k.physmem.pools.get('system');
    if (!pool) return;
    yield* alloc_pages(t, pool, pages, (i) => `mm.alloc by ${t.name} page ${i}`);
  }

  *teardown(t: Task): KGen {
    for (const i of this.spec.importers) {
      const inst = this.imps.get(i.name);
      if (!inst) continue;
      t.op = `teardown ${i.name} (${i.driver.name})`;
      yield* inst.teardown(t);
    }
    // The process exits: every fd still open is closed, and the final fputs'
    // task work runs.
    const files = files_if_any(this.k);
    if (files) {
      t.op = 'exit_files';
      yield* close_files(t, files);
      while (t.deferred.length > 0) yield* (t.deferred.shift() as (t: Task) => KGen)(t);
    }
    for (const b of this.spec.buffers) {
      const st = this.bufs.get(b.name);
      if (!st?.exported) continue;
      t.op = `teardown ${b.name}`;
      if (!st.handedOff && st.puts - st.gets <= 0) yield* dma_buf_put(t, st.exported.buf);
    }
    t.op = 'leak check';
    for (const b of this.spec.buffers) {
      const buf = this.bufs.get(b.name)?.exported?.buf;
      if (buf && !buf.released && buf.refcount > 0) {
        leak(
          t,
          'reference',
          buf.name,
          buf.refcount,
          ['LT1', 'LT2'],
          `${buf.refcount} reference(s) to ${buf.name} never dropped: the buffer is never released`,
        );
      }
    }
  }
}

export function compile(spec: ScenarioSpec): Program {
  return {
    name: spec.name,
    hash: scenarioHash(spec),
    threads: spec.threads.map((t) => t.name),
    // Threads with the same op list (targets, ops, arguments) are interchangeable.
    symmetry: groupsOfEqual(
      spec.threads.map((t) => JSON.stringify(t.ops.map((o) => [o.target, o.op, sorted(o.args)]))),
    ),
    instantiate: (k) => new ScenarioWorld(k, spec),
  };
}
