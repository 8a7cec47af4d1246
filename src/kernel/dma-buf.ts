/**
 * The dma-buf core: export, references and release, attach and detach,
 * pin, map and unmap (locked and `_unlocked`), invalidation, mmap
 * forwarding, vmap/vunmap (locked and `_unlocked`), begin/end_cpu_access,
 * and the RFC's get_pfn kAPI.
 *
 * Locking convention ([L1]–[L5]):
 * - the caller must hold dmabuf->resv for dma_buf_pin, dma_buf_unpin,
 *   dma_buf_map_attachment, dma_buf_unmap_attachment, dma_buf_vmap,
 *   dma_buf_vunmap, dma_buf_get_pfn and dma_buf_invalidate_mappings (the
 *   exporter);
 * - the caller must not hold it for dma_buf_attach, dma_buf_dynamic_attach,
 *   dma_buf_detach, dma_buf_put, dma_buf_mmap, dma_buf_begin_cpu_access,
 *   dma_buf_end_cpu_access, dma_buf_get_pfn_unlocked and the `_unlocked`
 *   wrappers.
 * Each entry point checks its rule and records `lock-not-held` / `lock-held`
 * ([I14]); misuse the kernel WARNs about is `api-misuse`; use after release is
 * `refcount`.
 *
 * The file ([LT1]): `dma_buf_export` creates the buffer's file (file.ts),
 * whose `f_count` is the buffer's refcount; `dma_buf_fd` installs it in the
 * process's fd table, consuming the reference; `dma_buf_get` is `fget` plus
 * the dma-buf check; closing the fd drops the table's reference with `fput`,
 * whose final `__fput` runs as task work on the way back to user space and
 * releases the buffer through the dentry's `d_release` ([LT2]). The name set
 * by `dma_buf_set_name` is read by the dentry's `d_dname` under `name_lock`.
 *
 * Simplification: `dma_buf_put` (and `get_dma_buf`) act on the same count, but
 * `dma_buf_put` runs the final release in its own step, as if the task work
 * ran at once (every trace the catalogue pins was made that way); the window
 * between the last reference going and the release running exists only for
 * a final put made with `fput` (closing the fd, `fput(buf.file)`).
 *
 * Poll state ([O1], [C9]): `cb_in` / `cb_out` are the callbacks
 * `dma_buf_poll` arms (dma-buf-poll.ts, which models the poll and ioctl part
 * of dma-buf.c; `dma_buf_fops.poll` is `dma_buf_poll`); the release BUGs when
 * one is still armed ([LT2] 2, [I8]). The epoll items watching the buffer hang
 * off its file (`file->f_ep`): `__fput` unhooks the file from every epoll set
 * (`eventpoll_release`) before the release, and so does `dma_buf_put`'s final
 * put, which stands for it.
 *
 * Models: drivers/dma-buf/dma-buf.c, include/linux/dma-buf.h
 */
import { apiMisuse, assertNotHeld, checkNotReleased } from '../checkers/api.ts';
import type { Origin } from '../checkers/finding.ts';
import { lockMapTouch, origin } from '../checkers/lockdep.ts';
import type {
  DmaBufAttachOps,
  DmaBufExportInfo,
  DmaBufOps,
  DmaDataDirection,
  IosysMap,
  PfnResult,
  SgTable,
} from './dma-buf-ops.ts';
import { dma_buf_poll } from './dma-buf-poll.ts';
import type { DmaFence, DmaFenceCb } from './dma-fence.ts';
import {
  DMA_RESV_USAGE_KERNEL,
  type DmaResv,
  dma_resv_assert_held,
  dma_resv_fini,
  dma_resv_init,
  dma_resv_lock,
  dma_resv_unlock,
  dma_resv_usage_rw,
  dma_resv_wait_timeout,
} from './dma-resv.ts';
import { EBADF, EBUSY, EINVAL, ENOENT, EOVERFLOW, errname, isErr, type Result } from './errno.ts';
import { eventpoll_release } from './eventpoll.ts';
import {
  alloc_file_pseudo,
  type DentryOperations,
  type File,
  type FileOperations,
  fd_install,
  fget,
  fput,
  get_unused_fd_flags,
  resurrection,
} from './file.ts';
import type { Kernel } from './kernel.ts';
import { Lock, spin_lock, spin_unlock } from './locking.ts';
import { AddressSpace, type Vma } from './memory.ts';
import type { Frame } from './page-alloc.ts';
import { type KGen, KObject, kfn, type Task } from './sched.ts';

/** Pages an unsigned long page offset can address (64-bit, 4 KiB pages), for the [C1] overflow check. */
const ULONG_MAX_PAGES = 2 ** 52;

/**
 * `struct dma_buf_poll_cb_t` ([O1], [C9]): the fence callback `dma_buf_poll`
 * arms for one direction. `active` (EPOLLIN or EPOLLOUT while armed, else 0) is
 * protected by the poll waitqueue's lock: steps that change it declare a write
 * of the buffer.
 */
export class DmaBufPollCb implements DmaFenceCb {
  func: ((t: Task, f: DmaFence) => void) | null = null;
  queued = false;
  active = 0;
  /** The callback bound to this `dcb` (dma-buf-poll.ts makes it on first use). */
  handler: ((t: Task, f: DmaFence) => void) | null = null;

  constructor(readonly dmabuf: DmaBuf) {}
}

/** `struct dma_buf` ([O1]). */
export class DmaBuf extends KObject {
  readonly type = 'dma_buf';
  readonly ops: DmaBufOps;
  readonly exp_name: string;
  readonly pages: number;
  readonly priv: unknown;
  readonly resv: DmaResv;
  /** The resv is embedded (not the exporter's): finalised at release. */
  readonly ownsResv: boolean;
  /** Protected by resv ([L5]). */
  readonly attachments: DmaBufAttachment[] = [];
  /** vmaps handed out and not yet vunmapped; protected by resv ([C6]). */
  vmapping_counter = 0;
  /** The cached kernel mapping while vmapping_counter > 0; protected by resv ([C6]). */
  vmap_ptr: IosysMap | null = null;
  released: Origin | null = null;
  /** The per-buffer inode's address_space (`file->f_mapping`, [C3]). */
  readonly f_mapping: AddressSpace;
  /** What backs the buffer now, as its exporter says (traces only). */
  readonly backing: (() => readonly Frame[]) | null;
  /** `dmabuf->file`: its `f_count` is the buffer's refcount ([LT1]). */
  readonly file: File;
  /** `dmabuf->name` (DMA_BUF_SET_NAME; `name` is the model's object name); under `name_lock`. */
  user_name: DmaBufName | null = null;
  /** `dmabuf->name_lock` (spinlock), made on first use: see {@link dma_buf_name_lock}. */
  name_lock: Lock | null = null;
  /** `dmabuf->cb_in`: armed by a poll for EPOLLIN (WRITE fences) ([O1], [C9]). */
  readonly cb_in: DmaBufPollCb = new DmaBufPollCb(this);
  /** `dmabuf->cb_out`: armed by a poll for EPOLLOUT (READ and WRITE fences) ([O1], [C9]). */
  readonly cb_out: DmaBufPollCb = new DmaBufPollCb(this);
  /** Wake-ups of `dmabuf->poll`, the waitqueue sleeping pollers wait on. */
  pollWakeups = 0;
  /**
   * Which `dma_buf_poll` the kernel has: true (since 2021) takes a file
   * reference for an armed callback; false is the older poll without it (the
   * `dma-buf-user` importer's `poll_file_ref: false`). A model switch, not
   * kernel state: `dma_buf_fops.poll` reads it.
   */
  pollFileRef = true;

  constructor(k: Kernel, name: string, info: DmaBufExportInfo) {
    super(k, name);
    this.ops = info.ops;
    this.exp_name = info.exp_name;
    this.pages = info.pages;
    this.priv = info.priv;
    this.ownsResv = !info.resv;
    this.resv = info.resv ?? dma_resv_init(k, `${name}->resv`);
    this.f_mapping = new AddressSpace(k, `${name}->file->f_mapping`);
    this.backing = info.backing ?? null;
    this.file = alloc_file_pseudo(k, `${name}->file`, dma_buf_fops, this, dma_buf_dentry_ops);
  }

  /** The buffer's reference count: its file's `f_count` ([LT1]). */
  get refcount(): number {
    return this.file.f_count;
  }

  set refcount(n: number) {
    this.file.f_count = n;
  }

  override snapshot(): Record<string, unknown> {
    return {
      exporter: this.exp_name,
      refcount: this.refcount,
      released: this.released !== null,
      attachments: this.attachments.map((a) => a.name),
      vmapping_counter: this.vmapping_counter,
      // Poll and epoll state only once used, so traces of scenarios without poll are unchanged.
      ...(this.cb_in.active || this.cb_out.active || this.pollWakeups || this.file.f_ep.length
        ? {
            poll: { cb_in: this.cb_in.active, cb_out: this.cb_out.active, wakeups: this.pollWakeups },
            epoll_items: this.file.f_ep.length,
          }
        : {}),
    };
  }
}

/** `struct dma_buf_attachment` ([O4]). */
export class DmaBufAttachment extends KObject {
  readonly type = 'dma_buf_attachment';
  readonly peer2peer: boolean;
  /** Exporter data (`attach->priv`). */
  priv: unknown = null;
  /** Pins taken through dma_buf_pin or by map for a static importer; protected by resv. */
  pinCount = 0;
  /** Tables mapped and not yet unmapped; protected by resv. */
  readonly sgts: SgTable[] = [];
  detached: Origin | null = null;

  constructor(
    k: Kernel,
    name: string,
    readonly dmabuf: DmaBuf,
    readonly dev: string | null,
    readonly importer_ops: DmaBufAttachOps | null,
    readonly importer_priv: unknown,
  ) {
    super(k, name);
    this.peer2peer = importer_ops?.allow_peer2peer ?? false;
  }

  override snapshot(): Record<string, unknown> {
    return {
      dmabuf: this.dmabuf.name,
      dynamic: this.importer_ops !== null,
      pins: this.pinCount,
      mappings: this.sgts.length,
      detached: this.detached !== null,
    };
  }
}

/** `dma_buf_is_dynamic()`: the exporter has pin/unpin ([O10]). */
export function dma_buf_is_dynamic(buf: DmaBuf): boolean {
  return buf.ops.pin !== undefined;
}

/** `dma_buf_attachment_is_dynamic()`: the importer passed attach ops ([O5]). */
export function dma_buf_attachment_is_dynamic(a: DmaBufAttachment): boolean {
  return a.importer_ops !== null;
}

/** `dma_buf_pin_on_map()`: static importer of a dynamic exporter ([O10], [LT6]). */
export function dma_buf_pin_on_map(a: DmaBufAttachment): boolean {
  return a.dmabuf.ops.pin !== undefined && !dma_buf_attachment_is_dynamic(a);
}

/** `dma_buf_attach_revocable()`: the importer will unmap after invalidate ([V4]). */
export function dma_buf_attach_revocable(a: DmaBufAttachment): boolean {
  return invalidateOp(a.importer_ops) !== null;
}

function invalidateOp(ops: DmaBufAttachOps | null) {
  return ops?.invalidate_mappings ?? ops?.move_notify ?? null;
}

/**
 * Whether the buffer is still alive; a `refcount` finding when not ([I7]).
 * Exporters call it for their own ops on the buffer. Call it after a step
 * (not before a function's first yield, which for a thread's first op runs
 * before any thread has run); the final put is a global step, so the read
 * needs no declaration of its own.
 */
export function dma_buf_check_alive(t: Task, buf: DmaBuf, call: string): boolean {
  return checkNotReleased(t, buf, buf.released, call, ['I7', 'LT2']);
}

/** Whether the attachment is still attached; a `refcount` finding when not ([LT3], [I7]). */
function checkAttached(t: Task, a: DmaBufAttachment, call: string): boolean {
  return checkNotReleased(t, a, a.detached, call, ['LT3', 'I7'], `${call} on ${a.name} after dma_buf_detach freed it`);
}

/**
 * `dma_buf_export()`: validates the ops ([O2], [P2]) and returns the buffer
 * holding one reference, or -EINVAL.
 */
export const dma_buf_export = kfn('dma_buf_export', function* (t: Task, name: string, info: DmaBufExportInfo): KGen<
  Result<DmaBuf>
> {
  const ops = info.ops;
  const bad = exportOpsProblem(ops);
  if (bad) {
    apiMisuse(t, 'dma_buf_export', bad, ['O2', 'P2']);
    return -EINVAL;
  }
  // A new buffer is not visible to other threads until returned: no step.
  return new DmaBuf(t.k, name, info);
});

function exportOpsProblem(ops: DmaBufOps): string | null {
  if (!ops.release) return 'exporter has no release op';
  if ((ops.map_dma_buf === undefined) !== (ops.unmap_dma_buf === undefined))
    return 'map_dma_buf and unmap_dma_buf must both be present or both absent';
  if (!ops.map_dma_buf && !ops.get_pfn) return 'exporter has neither map_dma_buf nor get_pfn';
  if ((ops.pin === undefined) !== (ops.unpin === undefined)) return 'pin and unpin must both be present or both absent';
  return null;
}

/** `get_dma_buf()`: take a reference. */
export const get_dma_buf = kfn('get_dma_buf', function* (t: Task, buf: DmaBuf): KGen {
  yield t.at('get_dma_buf', 'write', buf);
  if (buf.refcount <= 0) {
    if (buf.released) {
      dma_buf_check_alive(t, buf, 'get_dma_buf');
      return;
    }
    // The last reference went with fput, whose release is still pending.
    resurrection(t, buf.file, 'get_dma_buf');
  }
  buf.refcount++;
});

/**
 * `dma_buf_put()`: `fput` of the buffer's file: drop a reference; the last one
 * releases the buffer, in this step (see the module comment).
 * Locking: must be called without dmabuf->resv held ([L2]).
 */
export const dma_buf_put = kfn('dma_buf_put', function* (t: Task, buf: DmaBuf): KGen {
  assertNotHeld(t, buf.resv.lock, 'dma_buf_put', ['L2', 'I14']);
  // The final put releases the buffer and runs the exporter's release: it
  // may touch anything, and every "is it still alive" check reads what it
  // writes. So a put is a global step: ordered against every other step.
  const s = t.at('dma_buf_put', 'write', buf);
  s.global = true;
  yield s;
  if (buf.refcount <= 0) {
    t.k.report(t, {
      code: 'refcount',
      what: 'underflow',
      object: buf.name,
      released: buf.released,
      rules: ['I7', 'LT1'],
      message: `dma_buf_put on ${buf.name} with no reference left`,
    });
    return;
  }
  if (--buf.refcount === 0) {
    // A resurrected file (reported) already released: not released twice.
    if (buf.file.released) return;
    // fput's final __fput, run in this step (see the module comment).
    const at = origin(t);
    buf.file.zeroed = at;
    buf.file.released = at;
    // __fput(): the file leaves every epoll set before it is released.
    if (buf.file.f_ep.length > 0) yield* eventpoll_release(t, buf.file);
    yield* dma_buf_release(t, buf);
    buf.file.freed = true;
  }
});

/** The final put: checks [LT2] / [I8], then `ops->release`. */
export const dma_buf_release = kfn('dma_buf_release', function* (t: Task, buf: DmaBuf): KGen {
  if (buf.vmapping_counter > 0) {
    leak(t, 'vmap', buf.name, buf.vmapping_counter, ['LT2', 'I8'], `${buf.name} released while vmapped`);
  }
  // [LT2] 2: an armed poll callback holds a file reference, so it cannot be
  // armed here unless dma_buf_poll / dma_buf_poll_cb mispaired the references.
  if (buf.cb_in.active !== 0 || buf.cb_out.active !== 0) {
    apiMisuse(
      t,
      'dma_buf_release',
      `${buf.name} released with a poll callback still armed (BUG_ON(dmabuf->cb_in.active || dmabuf->cb_out.active)): a file reference imbalance in dma_buf_poll / dma_buf_poll_cb`,
      ['LT2', 'I8', 'C9'],
    );
  }
  buf.released = origin(t);
  yield* buf.ops.release(t, buf);
  // An embedded reservation object dies with the buffer ([LT2] 4).
  if (buf.ownsResv) yield* dma_resv_fini(t, buf.resv);
  if (buf.attachments.length > 0) {
    leak(
      t,
      'attachment',
      buf.name,
      buf.attachments.length,
      ['LT2', 'I8'],
      `${buf.name} released with ${buf.attachments.length} attachment(s) still attached (${buf.attachments.map((a) => a.name).join(', ')})`,
    );
  }
});

export function leak(
  t: Task,
  what: 'reference' | 'attachment' | 'pin' | 'mapping' | 'vmap',
  object: string,
  count: number,
  rules: readonly string[],
  message: string,
): void {
  t.k.report(t, { code: 'leak', what, object, count, rules, message });
}

/**
 * `dma_buf_dynamic_attach()`: add an attachment; `importer_ops` null makes
 * it static ([O5]).
 * Locking: must be called without dmabuf->resv held; takes it to link the
 * attachment ([L2], [L5]).
 */
export const dma_buf_dynamic_attach = kfn(
  'dma_buf_dynamic_attach',
  function* (
    t: Task,
    buf: DmaBuf,
    dev: string | null,
    importer_ops: DmaBufAttachOps | null,
    importer_priv: unknown,
    name: string,
  ): KGen<Result<DmaBufAttachment>> {
    assertNotHeld(t, buf.resv.lock, t.fn, ['L2', 'I14']);
    if (dev === null && buf.ops.map_dma_buf) {
      apiMisuse(t, t.fn, 'NULL device for an exporter with map_dma_buf', ['O5', 'P2']);
      return -EINVAL;
    }
    const a = new DmaBufAttachment(t.k, name, buf, dev, importer_ops, importer_priv);
    if (buf.ops.attach) {
      const ret = yield* buf.ops.attach(t, buf, a);
      if (ret < 0) return ret;
    }
    yield* dma_resv_lock(t, buf.resv, null);
    if (!dma_buf_check_alive(t, buf, 'dma_buf_dynamic_attach')) {
      yield* dma_resv_unlock(t, buf.resv);
      return -EINVAL;
    }
    buf.attachments.push(a);
    yield* dma_resv_unlock(t, buf.resv);
    return a;
  },
);

/** `dma_buf_attach()`: a static attachment (no importer ops). */
export const dma_buf_attach = kfn(
  'dma_buf_attach',
  function* (t: Task, buf: DmaBuf, dev: string | null, name: string): KGen<Result<DmaBufAttachment>> {
    return yield* dma_buf_dynamic_attach(t, buf, dev, null, null, name);
  },
);

/**
 * `dma_buf_detach()`: remove and free the attachment. Every mapping must be
 * unmapped and every pin undone first ([LT3], [I9]).
 * Locking: must be called without dmabuf->resv held ([L2]).
 */
export const dma_buf_detach = kfn('dma_buf_detach', function* (t: Task, buf: DmaBuf, a: DmaBufAttachment): KGen {
  assertNotHeld(t, buf.resv.lock, 'dma_buf_detach', ['L2', 'I14']);
  if (a.dmabuf !== buf) {
    apiMisuse(t, 'dma_buf_detach', `${a.name} does not belong to ${buf.name}`, ['LT3']);
    return;
  }
  yield* dma_resv_lock(t, buf.resv, null);
  dma_buf_check_alive(t, buf, 'dma_buf_detach');
  if (!checkAttached(t, a, 'dma_buf_detach')) {
    yield* dma_resv_unlock(t, buf.resv);
    return;
  }
  if (a.sgts.length > 0) {
    leak(
      t,
      'mapping',
      a.name,
      a.sgts.length,
      ['LT3', 'LT5', 'I9'],
      `${a.name} detached with ${a.sgts.length} mapping(s) not unmapped`,
    );
  }
  const dynPins = dma_buf_pin_on_map(a) ? a.pinCount - a.sgts.length : a.pinCount;
  if (dynPins > 0) {
    leak(t, 'pin', a.name, dynPins, ['LT3', 'LT4', 'I9'], `${a.name} detached with ${dynPins} pin(s) not undone`);
  }
  const i = buf.attachments.indexOf(a);
  if (i >= 0) buf.attachments.splice(i, 1);
  a.detached = origin(t);
  yield* dma_resv_unlock(t, buf.resv);
  if (buf.ops.detach) yield* buf.ops.detach(t, buf, a);
});

/**
 * `dma_buf_pin()`: only for dynamic attachments ([LT4]).
 * Locking: dmabuf->resv must be held ([L1]).
 */
export const dma_buf_pin = kfn('dma_buf_pin', function* (t: Task, a: DmaBufAttachment): KGen<number> {
  dma_resv_assert_held(t, a.dmabuf.resv, 'dma_buf_pin');
  if (!checkAttached(t, a, 'dma_buf_pin')) return -EINVAL;
  if (!dma_buf_attachment_is_dynamic(a)) {
    apiMisuse(t, 'dma_buf_pin', `pin on static attachment ${a.name}`, ['LT4', 'I10']);
    return -EINVAL;
  }
  const ret = a.dmabuf.ops.pin ? yield* a.dmabuf.ops.pin(t, a) : 0;
  if (ret === 0) a.pinCount++;
  return ret;
});

/**
 * `dma_buf_unpin()`.
 * Locking: dmabuf->resv must be held ([L1]).
 */
export const dma_buf_unpin = kfn('dma_buf_unpin', function* (t: Task, a: DmaBufAttachment): KGen {
  dma_resv_assert_held(t, a.dmabuf.resv, 'dma_buf_unpin');
  if (!checkAttached(t, a, 'dma_buf_unpin')) return;
  if (!dma_buf_attachment_is_dynamic(a)) {
    apiMisuse(t, 'dma_buf_unpin', `unpin on static attachment ${a.name}`, ['LT4', 'I10']);
    return;
  }
  if (a.pinCount <= 0) {
    apiMisuse(t, 'dma_buf_unpin', `unpin of ${a.name} without a matching pin`, ['LT4', 'I10']);
    return;
  }
  if (a.dmabuf.ops.unpin) yield* a.dmabuf.ops.unpin(t, a);
  a.pinCount--;
});

/**
 * `dma_buf_map_attachment()`: a fresh sg_table from the exporter. A static
 * importer of a dynamic exporter is pinned first ([LT6]) and the core waits for
 * KERNEL fences for it ([LT7]).
 * Locking: dmabuf->resv must be held ([L1]).
 */
export const dma_buf_map_attachment = kfn(
  'dma_buf_map_attachment',
  function* (t: Task, a: DmaBufAttachment, dir: DmaDataDirection): KGen<Result<SgTable>> {
    const buf = a.dmabuf;
    dma_resv_assert_held(t, buf.resv, 'dma_buf_map_attachment');
    if (!checkAttached(t, a, 'dma_buf_map_attachment') || !dma_buf_check_alive(t, buf, 'dma_buf_map_attachment'))
      return -EINVAL;
    if (!buf.ops.map_dma_buf) {
      apiMisuse(t, 'dma_buf_map_attachment', `exporter ${buf.exp_name} has no map_dma_buf`, ['P2']);
      return -EINVAL;
    }
    const pinOnMap = dma_buf_pin_on_map(a);
    if (pinOnMap && buf.ops.pin) {
      const ret = yield* buf.ops.pin(t, a);
      if (ret < 0) {
        if (ret === -EBUSY)
          apiMisuse(t, 'dma_buf_map_attachment', 'pin for a static importer failed with -EBUSY', ['LT6']);
        return ret;
      }
      a.pinCount++;
    }
    const sgt = yield* buf.ops.map_dma_buf(t, a, dir);
    if (isErr(sgt)) {
      if (pinOnMap && buf.ops.unpin) {
        yield* buf.ops.unpin(t, a);
        a.pinCount--;
      }
      return sgt;
    }
    a.sgts.push(sgt);
    if (!dma_buf_attachment_is_dynamic(a)) {
      // The core waits for pending moves and clears on the static importer's
      // behalf; if that wait fails, it undoes the map and the pin ([LT7]).
      const ret = yield* dma_resv_wait_timeout(t, buf.resv, DMA_RESV_USAGE_KERNEL, true);
      if (ret < 0) {
        a.sgts.splice(a.sgts.indexOf(sgt), 1);
        if (buf.ops.unmap_dma_buf) yield* buf.ops.unmap_dma_buf(t, a, sgt, dir);
        sgt.unmapped = true;
        if (pinOnMap && buf.ops.unpin) {
          yield* buf.ops.unpin(t, a);
          a.pinCount--;
        }
        return ret;
      }
    }
    return sgt;
  },
);

/**
 * `dma_buf_unmap_attachment()`: the table must come from a map on this
 * attachment with the same direction ([LT5], [I11]).
 * Locking: dmabuf->resv must be held ([L1]).
 */
export const dma_buf_unmap_attachment = kfn(
  'dma_buf_unmap_attachment',
  function* (t: Task, a: DmaBufAttachment, sgt: SgTable, dir: DmaDataDirection): KGen {
    const buf = a.dmabuf;
    dma_resv_assert_held(t, buf.resv, 'dma_buf_unmap_attachment');
    if (!checkAttached(t, a, 'dma_buf_unmap_attachment')) return;
    const i = a.sgts.indexOf(sgt);
    if (i < 0) {
      apiMisuse(t, 'dma_buf_unmap_attachment', `sg_table was not mapped on ${a.name} (or is already unmapped)`, [
        'LT5',
        'I11',
      ]);
      return;
    }
    if (sgt.dir !== dir) {
      apiMisuse(t, 'dma_buf_unmap_attachment', `direction ${dir} differs from the map's ${sgt.dir}`, ['LT5', 'I11']);
    }
    a.sgts.splice(i, 1);
    if (buf.ops.unmap_dma_buf) yield* buf.ops.unmap_dma_buf(t, a, sgt, dir);
    sgt.unmapped = true;
    if (dma_buf_pin_on_map(a) && buf.ops.unpin) {
      yield* buf.ops.unpin(t, a);
      a.pinCount--;
    }
  },
);

/** `dma_buf_map_attachment_unlocked()`: takes resv around the locked call ([L2]). */
export const dma_buf_map_attachment_unlocked = kfn(
  'dma_buf_map_attachment_unlocked',
  function* (t: Task, a: DmaBufAttachment, dir: DmaDataDirection): KGen<Result<SgTable>> {
    assertNotHeld(t, a.dmabuf.resv.lock, 'dma_buf_map_attachment_unlocked', ['L2', 'I14']);
    yield* dma_resv_lock(t, a.dmabuf.resv, null);
    const r = yield* dma_buf_map_attachment(t, a, dir);
    yield* dma_resv_unlock(t, a.dmabuf.resv);
    return r;
  },
);

/** `dma_buf_unmap_attachment_unlocked()`: takes resv around the locked call ([L2]). */
export const dma_buf_unmap_attachment_unlocked = kfn(
  'dma_buf_unmap_attachment_unlocked',
  function* (t: Task, a: DmaBufAttachment, sgt: SgTable, dir: DmaDataDirection): KGen {
    assertNotHeld(t, a.dmabuf.resv.lock, 'dma_buf_unmap_attachment_unlocked', ['L2', 'I14']);
    yield* dma_resv_lock(t, a.dmabuf.resv, null);
    yield* dma_buf_unmap_attachment(t, a, sgt, dir);
    yield* dma_resv_unlock(t, a.dmabuf.resv);
  },
);

function* invalidate(t: Task, buf: DmaBuf, call: string): KGen {
  dma_resv_assert_held(t, buf.resv, call, ['L4', 'I13']);
  for (const a of buf.attachments.slice()) {
    const cb = invalidateOp(a.importer_ops);
    if (cb) yield* cb.call(a.importer_ops, t, a);
  }
}

/**
 * `dma_buf_invalidate_mappings()`: tell every dynamic importer its mappings
 * are stale; callbacks run in list order, in the caller's context ([L4]).
 * Locking: the exporter must hold dmabuf->resv.
 */
export const dma_buf_invalidate_mappings = kfn('dma_buf_invalidate_mappings', function* (t: Task, buf: DmaBuf): KGen {
  yield* invalidate(t, buf, 'dma_buf_invalidate_mappings');
});

/** `dma_buf_move_notify()`: the pre-2026 name of {@link dma_buf_invalidate_mappings}. */
export const dma_buf_move_notify = kfn('dma_buf_move_notify', function* (t: Task, buf: DmaBuf): KGen {
  yield* invalidate(t, buf, 'dma_buf_move_notify');
});

/**
 * `dma_buf_mmap()`: checks the range, points the VMA at the buffer's file
 * (taking a file reference) and forwards to the exporter's mmap ([C1]).
 * Locking: must be called without dmabuf->resv held ([L2]).
 */
export const dma_buf_mmap = kfn(
  'dma_buf_mmap',
  function* (t: Task, buf: DmaBuf, vma: Vma, pgoff: number): KGen<number> {
    assertNotHeld(t, buf.resv.lock, 'dma_buf_mmap', ['L2', 'I14']);
    if (!buf.ops.mmap) return -EINVAL;
    // pgoff + vma_pages overflowing an unsigned long ([C1]).
    if (!Number.isSafeInteger(pgoff) || pgoff < 0 || pgoff > ULONG_MAX_PAGES - vma.pages) return -EOVERFLOW;
    if (pgoff + vma.pages > buf.pages) return -EINVAL;
    // get_file() on the dma-buf's file; a released buffer is reported there.
    yield* get_dma_buf(t, buf);
    if (buf.released) return -EINVAL;
    vma.vm_file = buf.name;
    vma.vm_pgoff = pgoff;
    return yield* buf.ops.mmap(t, buf, vma);
  },
);

function* getPfn(t: Task, a: DmaBufAttachment, pgoff: number, call: string): KGen<Result<PfnResult>> {
  const buf = a.dmabuf;
  if (!checkAttached(t, a, call) || !dma_buf_check_alive(t, buf, call)) return -EINVAL;
  if (!buf.ops.get_pfn) {
    apiMisuse(t, call, `exporter ${buf.exp_name} has no get_pfn`, ['P3']);
    return -EINVAL;
  }
  return yield* buf.ops.get_pfn(t, a, pgoff);
}

/**
 * `dma_buf_get_pfn_unlocked()` (RFC 01/12): takes resv, asks the exporter,
 * drops resv. No fence wait and no put_pfn: validity afterwards is the
 * importer's business ([P3], [K6]).
 * Locking: must be called without dmabuf->resv held.
 */
export const dma_buf_get_pfn_unlocked = kfn(
  'dma_buf_get_pfn_unlocked',
  function* (t: Task, a: DmaBufAttachment, pgoff: number): KGen<Result<PfnResult>> {
    const buf = a.dmabuf;
    assertNotHeld(t, buf.resv.lock, 'dma_buf_get_pfn_unlocked', ['L2', 'P3', 'I14']);
    if (!buf.ops.get_pfn) {
      apiMisuse(t, 'dma_buf_get_pfn_unlocked', `exporter ${buf.exp_name} has no get_pfn`, ['P3']);
      return -EINVAL;
    }
    if (dma_buf_is_dynamic(buf) && !t.k.config.moveNotify) return -ENOENT;
    yield* dma_resv_lock(t, buf.resv, null);
    const r = yield* getPfn(t, a, pgoff, 'dma_buf_get_pfn_unlocked');
    yield* dma_resv_unlock(t, buf.resv);
    return r;
  },
);

/**
 * `dma_buf_get_pfn()` (the locked variant proposed in the seed thread, [P4]).
 * Locking: dmabuf->resv must be held by the caller.
 */
export const dma_buf_get_pfn = kfn('dma_buf_get_pfn', function* (t: Task, a: DmaBufAttachment, pgoff: number): KGen<
  Result<PfnResult>
> {
  dma_resv_assert_held(t, a.dmabuf.resv, 'dma_buf_get_pfn', ['P4', 'L3', 'I14']);
  return yield* getPfn(t, a, pgoff, 'dma_buf_get_pfn');
});

/**
 * `dma_buf_vmap()`: a kernel mapping of the whole buffer ([C6]). The first
 * vmap calls the exporter's `vmap` and caches the pointer; later ones only
 * count and return the cached pointer. -EINVAL without an exporter `vmap`; a
 * failing exporter `vmap` is WARNed about (WARN_ON_ONCE) and returned.
 * Locking: dmabuf->resv must be held ([L1]); the exporter's vmap is called
 * with it held ([L3]).
 */
export const dma_buf_vmap = kfn('dma_buf_vmap', function* (t: Task, buf: DmaBuf): KGen<Result<IosysMap>> {
  dma_resv_assert_held(t, buf.resv, 'dma_buf_vmap', ['L1', 'C6', 'I14']);
  if (!dma_buf_check_alive(t, buf, 'dma_buf_vmap')) return -EINVAL;
  if (!buf.ops.vmap) return -EINVAL;
  if (buf.vmapping_counter > 0 && buf.vmap_ptr) {
    buf.vmapping_counter++;
    return buf.vmap_ptr;
  }
  const map = yield* buf.ops.vmap(t, buf);
  if (isErr(map)) {
    apiMisuse(t, 'dma_buf_vmap', `exporter ${buf.exp_name}'s vmap failed (${errname(map)})`, ['C6']);
    return map;
  }
  buf.vmap_ptr = map;
  buf.vmapping_counter = 1;
  return map;
});

/**
 * `dma_buf_vunmap()`: drops one vmap; the last one calls the exporter's
 * `vunmap` and clears the cached pointer ([C6]). The kernel BUGs when
 * nothing is mapped, when the counter is 0 or when `map` is not the cached
 * pointer: reported as `api-misuse`, and the call does nothing.
 * Locking: dmabuf->resv must be held ([L1]).
 */
export const dma_buf_vunmap = kfn('dma_buf_vunmap', function* (t: Task, buf: DmaBuf, map: IosysMap | null): KGen {
  dma_resv_assert_held(t, buf.resv, 'dma_buf_vunmap', ['L1', 'C6', 'I14']);
  const bad =
    map === null
      ? 'vunmap of a NULL iosys_map'
      : buf.vmap_ptr === null
        ? `${buf.name} is not vmapped (BUG_ON(iosys_map_is_null(&dmabuf->vmap_ptr)))`
        : buf.vmapping_counter === 0
          ? `${buf.name}'s vmapping_counter is 0 (BUG_ON(dmabuf->vmapping_counter == 0))`
          : buf.vmap_ptr !== map
            ? `the map is not the one dma_buf_vmap returned for ${buf.name} (BUG_ON(!iosys_map_is_equal()))`
            : null;
  if (bad || !map) {
    apiMisuse(t, 'dma_buf_vunmap', bad ?? 'vunmap of a NULL iosys_map', ['C6', 'LT2']);
    return;
  }
  if (--buf.vmapping_counter === 0) {
    if (buf.ops.vunmap) yield* buf.ops.vunmap(t, buf, map);
    buf.vmap_ptr = null;
  }
});

/** `dma_buf_vmap_unlocked()`: takes resv around {@link dma_buf_vmap} ([L2]). */
export const dma_buf_vmap_unlocked = kfn('dma_buf_vmap_unlocked', function* (t: Task, buf: DmaBuf): KGen<
  Result<IosysMap>
> {
  assertNotHeld(t, buf.resv.lock, 'dma_buf_vmap_unlocked', ['L2', 'I14']);
  yield* dma_resv_lock(t, buf.resv, null);
  const r = yield* dma_buf_vmap(t, buf);
  yield* dma_resv_unlock(t, buf.resv);
  return r;
});

/** `dma_buf_vunmap_unlocked()`: takes resv around {@link dma_buf_vunmap} ([L2]). */
export const dma_buf_vunmap_unlocked = kfn(
  'dma_buf_vunmap_unlocked',
  function* (t: Task, buf: DmaBuf, map: IosysMap | null): KGen {
    assertNotHeld(t, buf.resv.lock, 'dma_buf_vunmap_unlocked', ['L2', 'I14']);
    yield* dma_resv_lock(t, buf.resv, null);
    yield* dma_buf_vunmap(t, buf, map);
    yield* dma_resv_unlock(t, buf.resv);
  },
);

/**
 * `might_lock(&dmabuf->resv->lock.base)` of begin/end_cpu_access: the call
 * must be made without resv held (`lock-held`), and lockdep records that the
 * caller's locks are taken before resv ([L2], [C7]).
 */
function mightLockResv(t: Task, buf: DmaBuf, call: string): void {
  if (assertNotHeld(t, buf.resv.lock, call, ['L2', 'C7', 'I14'])) lockMapTouch(t, buf.resv.lock, call);
}

/**
 * `dma_buf_begin_cpu_access()`: the exporter's `begin_cpu_access` (which may
 * take resv), then, if it returned 0, an interruptible wait without limit
 * for the implicit-sync fences: `dma_resv_usage_rw(write)` with write = dir
 * is DMA_BIDIRECTIONAL or DMA_TO_DEVICE — a CPU write waits for readers and
 * writers, a CPU read for writers only ([C7], [R1]). Returns 0 or the error.
 * Locking: must be called without dmabuf->resv held ([L2]).
 */
export const dma_buf_begin_cpu_access = kfn(
  'dma_buf_begin_cpu_access',
  function* (t: Task, buf: DmaBuf, dir: DmaDataDirection): KGen<number> {
    mightLockResv(t, buf, 'dma_buf_begin_cpu_access');
    let ret = buf.ops.begin_cpu_access ? yield* buf.ops.begin_cpu_access(t, buf, dir) : 0;
    if (ret === 0) {
      const write = dir === 'DMA_BIDIRECTIONAL' || dir === 'DMA_TO_DEVICE';
      // A negative wait result (-ERESTARTSYS) is returned; a positive one means done.
      ret = Math.min(yield* dma_resv_wait_timeout(t, buf.resv, dma_resv_usage_rw(write), true), 0);
    }
    return ret;
  },
);

/**
 * `dma_buf_end_cpu_access()`: only the exporter's `end_cpu_access` ([C7]).
 * Locking: must be called without dmabuf->resv held ([L2]).
 */
export const dma_buf_end_cpu_access = kfn(
  'dma_buf_end_cpu_access',
  function* (t: Task, buf: DmaBuf, dir: DmaDataDirection): KGen<number> {
    mightLockResv(t, buf, 'dma_buf_end_cpu_access');
    return buf.ops.end_cpu_access ? yield* buf.ops.end_cpu_access(t, buf, dir) : 0;
  },
);

// ---------------------------------------------------------------------------
// The buffer's file: fd, dma_buf_get, name ([LT1], [LT2], [O1], §0.2)
// ---------------------------------------------------------------------------

/** A name string `dma_buf_set_name` allocated (`strndup_user`); kfree'd when replaced. */
export class DmaBufName extends KObject {
  readonly type = 'dma_buf_name';
  /** Where `dma_buf_set_name` freed it (replaced it under `name_lock`). */
  freed: Origin | null = null;

  constructor(
    k: Kernel,
    name: string,
    readonly text: string,
  ) {
    super(k, name);
  }

  override snapshot(): Record<string, unknown> {
    return { text: this.text, freed: this.freed !== null };
  }
}

/**
 * `dma_buf_release` reached from the dentry: `__fput` of the buffer's file
 * ends here, after `eventpoll_release` ([LT2]).
 */
function* dma_buf_d_release(t: Task, file: File): KGen {
  yield* dma_buf_release(t, file.private_data as DmaBuf);
}

/**
 * `dma_buf_fops`: `is_dma_buf_file()` compares a file's ops with it. `poll`
 * is `dma_buf_poll` (dma-buf-poll.ts, [C9]), with or without the callback's
 * file reference as the buffer's `pollFileRef` says. Its `release` (taking the
 * buffer off the global list) is not modelled: there is no list.
 */
export const dma_buf_fops: FileOperations = {
  name: 'dma_buf_fops',
  poll: (t, file, events) => dma_buf_poll(t, file.private_data as DmaBuf, events),
};

/** `dma_buf_dentry_ops`: the name for path lookups and the release at the last reference. */
export const dma_buf_dentry_ops: DentryOperations = {
  d_dname: (t, file) => dmabuffs_dname(t, file),
  d_release: dma_buf_d_release,
};

/** `is_dma_buf_file()`. */
export function is_dma_buf_file(file: File): boolean {
  return file.f_op === dma_buf_fops;
}

/** `dmabuf->name_lock`, made the first time it is needed (a lock made at export would show in every trace). */
export function dma_buf_name_lock(t: Task, buf: DmaBuf): Lock {
  if (!buf.name_lock) buf.name_lock = new Lock(t.k, `${buf.name}->name_lock`, 'dmabuf->name_lock', 'spinlock');
  return buf.name_lock;
}

/**
 * `dma_buf_fd()`: a new fd of the calling process for the buffer's file. On
 * success the fd table owns the caller's reference (the one `dma_buf_export`
 * gave, [LT1]); the caller must not put it. On failure (`-EMFILE` when no fd
 * is free below `RLIMIT_NOFILE`) the caller still owns it and must
 * `dma_buf_put` it. -EINVAL for a NULL buffer.
 * Locking: must be called without dmabuf->resv held ([L2]); takes file_lock.
 */
export const dma_buf_fd = kfn('dma_buf_fd', function* (t: Task, buf: DmaBuf | null, flags: number): KGen<number> {
  if (!buf) return -EINVAL;
  assertNotHeld(t, buf.resv.lock, 'dma_buf_fd', ['L2', 'I14']);
  const fd = yield* get_unused_fd_flags(t, flags);
  if (fd < 0) return fd;
  yield* fd_install(t, fd, buf.file);
  return fd;
});

/**
 * `dma_buf_get()`: the buffer behind `fd`, with a new reference (`fget`,
 * [LT1]); -EBADF for an fd that holds no file, -EINVAL for a file that is
 * not a dma-buf (the reference `fget` took is dropped).
 * Locking: none required; resv must not be held ([L2]).
 */
export const dma_buf_get = kfn('dma_buf_get', function* (t: Task, fd: number): KGen<Result<DmaBuf>> {
  const file = yield* fget(t, fd);
  if (!file) return -EBADF;
  if (!is_dma_buf_file(file)) {
    yield* fput(t, file);
    return -EINVAL;
  }
  const buf = file.private_data as DmaBuf;
  assertNotHeld(t, buf.resv.lock, 'dma_buf_get', ['L2', 'I14']);
  return buf;
});

/**
 * `dma_buf_set_name()` (DMA_BUF_SET_NAME): a fresh copy of the name replaces
 * the old one, which is freed, both under `name_lock` (current kernels: at
 * any time, attachments or not; §0.2). The old copy may still be read by a
 * reader that does not take `name_lock`, so the swap is a declared step.
 * Locking: takes `dmabuf->name_lock` (spinlock); nothing else.
 */
export const dma_buf_set_name = kfn('dma_buf_set_name', function* (t: Task, buf: DmaBuf, name: string): KGen<number> {
  // strndup_user(): private to this thread until published.
  const copy = new DmaBufName(t.k, `${buf.name}->name@${t.name}#${t.created++}`, name);
  const lock = dma_buf_name_lock(t, buf);
  yield* spin_lock(t, lock);
  // Writers hold name_lock, so the pointer read here stays what it is until the step.
  const old = buf.user_name;
  const s = t.at('dma_buf_set_name', 'write', buf);
  if (old) s.touch(old, 'write');
  yield s;
  dma_buf_check_alive(t, buf, 'dma_buf_set_name');
  buf.user_name = copy;
  // kfree(old)
  if (old) old.freed = origin(t);
  yield* spin_unlock(t, lock);
  return 0;
});

/**
 * `dmabuffs_dname()` (the dentry's `d_dname`: readlink of /proc/self/fd/N,
 * `d_path`): "/dmabuf:<name>", the name copied under `name_lock`. With
 * `nameLock` false it models a reader that copies `dmabuf->name` without the
 * lock (as the kernel did before `name_lock`, or a driver's own debug print):
 * a concurrent `dma_buf_set_name` can free the string between the load of the
 * pointer and the copy, a use after free (`refcount`, use-after-free, [O1],
 * [I7]). Locking: takes `dmabuf->name_lock`; the caller holds a reference on
 * the file (the path lookup's).
 */
export const dmabuffs_dname = kfn('dmabuffs_dname', function* (t: Task, file: File, nameLock = true): KGen<string> {
  const buf = file.private_data as DmaBuf;
  let name = '';
  if (nameLock) {
    const lock = dma_buf_name_lock(t, buf);
    yield* spin_lock(t, lock);
    name = buf.user_name?.text ?? '';
    yield* spin_unlock(t, lock);
  } else {
    yield t.at('dmabuffs_dname', 'read', buf);
    const p = buf.user_name;
    if (p) {
      yield t.at('strscpy', 'read', p);
      if (p.freed) {
        t.k.report(t, {
          code: 'refcount',
          what: 'use-after-free',
          object: p.name,
          released: p.freed,
          rules: ['O1', 'I7'],
          message: `dmabuffs_dname copies ${buf.name}'s name "${p.text}" after dma_buf_set_name freed it: read without name_lock`,
        });
      } else {
        name = p.text;
      }
    }
  }
  return `/dmabuf:${name}`;
});
