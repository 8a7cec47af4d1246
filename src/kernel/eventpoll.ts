/**
 * epoll: an eventpoll set that watches files, and what the release of a
 * watched file does to it ([C9]). Files are file.ts's `struct file`: any file
 * can be watched (its `f_op->poll` is what epoll calls), and `__fput` of every
 * file calls `eventpoll_release`.
 *
 * - An epoll item (`struct epitem`) records the watched file, **not a
 *   reference** to it, and is linked on the file's `f_ep` list. When the
 *   file's last reference goes, `__fput` calls `eventpoll_release`, which
 *   removes the file's items from every set, each under its set's `ep->mtx`,
 *   before the file is released.
 * - `epoll_ctl(EPOLL_CTL_ADD)` (`ep_insert`): under `ep->mtx`, links a new
 *   item into the file's `f_ep` list and polls the file once
 *   (`ep_item_poll`); the caller's `fdget` keeps the file alive for the call.
 *   `EPOLL_CTL_DEL` (`ep_remove`) unlinks it under `ep->mtx`. `-EEXIST` /
 *   `-ENOENT` as the kernel's.
 * - `epoll_wait` (`ep_send_events`): under `ep->mtx`, polls the items.
 * - `ep_item_poll`: since 2024 ("epoll: be better about file lifetimes") it
 *   takes a temporary reference first, `epi_fget` (`file_ref_get`, file.ts's
 *   `get_file_active`: fails once the count reached 0, i.e. while `__fput`
 *   runs, which is blocked on `ep->mtx` in `eventpoll_release`: then no
 *   events), and `fput`s it after the poll (the final `__fput`, if it is the
 *   last, runs as task work, after `ep->mtx` is dropped). Before, it polled a
 *   file whose `__fput` had begun, and a poll that takes its own reference —
 *   `dma_buf_poll`'s `get_file` for its callback — brought a dead file back
 *   (the syzbot report that led to the fix). `epiFget` selects the behaviour.
 * - The set is itself a file (`ep->file`, `eventpoll_fops`), installed in the
 *   fd table by its creator (`epoll_create1`); its release (`__fput` of the
 *   epoll fd) removes every item (`ep_free`).
 *
 * Simplifications: no ready list and no wake-up callback on the file's
 * waitqueue (`ep_poll_callback`): `epoll_wait` polls every item once and never
 * sleeps (a zero timeout); items of a file that is itself an epoll fd are not
 * modelled; an item's `events` are the ones asked at `EPOLL_CTL_ADD`
 * (no `EPOLL_CTL_MOD`, no edge-triggered or one-shot mode).
 *
 * Imports: file.ts and this module use each other's functions (as
 * fs/file_table.c and fs/eventpoll.c do); neither uses the other's exports
 * while it loads.
 *
 * Models: fs/eventpoll.c, include/linux/eventpoll.h, include/linux/poll.h
 * (vfs_poll), include/uapi/linux/eventpoll.h
 */
import { assertHeld } from '../checkers/api.ts';
import { EEXIST, ENOENT } from './errno.ts';
import { alloc_file_pseudo, type File, type FileOperations, fput, get_file_active } from './file.ts';
import type { Kernel } from './kernel.ts';
import { Lock, mutex_lock, mutex_unlock } from './locking.ts';
import { type KGen, KObject, kfn, type Task } from './sched.ts';

/** Poll events (include/uapi/linux/eventpoll.h). */
export const EPOLLIN = 0x001;
export const EPOLLOUT = 0x004;
export const EPOLLERR = 0x008;
export const EPOLLRDNORM = 0x040;
export const EPOLLWRNORM = 0x100;
/** `DEFAULT_POLLMASK`: what `vfs_poll` returns for a file without `f_op->poll` (always ready). */
export const DEFAULT_POLLMASK = EPOLLIN | EPOLLOUT | EPOLLRDNORM | EPOLLWRNORM;

/**
 * `vfs_poll()`: the file's `f_op->poll`, or `DEFAULT_POLLMASK` for a file
 * without one. Locking: none of its own; the caller holds a reference on the
 * file (or, for epoll before 2024, only `ep->mtx`).
 */
export function* vfs_poll(t: Task, file: File, events: number): KGen<number> {
  return file.f_op.poll ? yield* file.f_op.poll(t, file, events) : DEFAULT_POLLMASK;
}

/** `struct eventpoll`: one epoll instance. */
export class EventPoll extends KObject {
  readonly type = 'eventpoll';
  /** `ep->mtx`: serialises the set's control, its event delivery and the removal of its items. */
  readonly mtx: Lock;
  /** The set's items (`ep->rbr`); protected by `mtx`. */
  readonly items: EpItem[] = [];
  /** `ep->file`: the epoll fd's file (`eventpoll_fops`); its release frees the set. */
  readonly file: File;

  constructor(k: Kernel, name: string) {
    super(k, name);
    this.mtx = new Lock(k, `${name}->mtx`, 'ep->mtx', 'mutex');
    this.file = alloc_file_pseudo(k, `${name}->file`, eventpoll_fops, this);
  }

  override snapshot(): Record<string, unknown> {
    return { items: this.items.map((e) => e.file.name) };
  }
}

/** `struct epitem`: a file watched by a set; holds no reference to the file. */
export class EpItem {
  /** Still on the file's `f_ep` and in the set. */
  linked = true;

  constructor(
    readonly ep: EventPoll,
    readonly file: File,
    /** `epi->event.events`: what the set waits for. */
    readonly events: number,
  ) {}
}

/**
 * `ep_item_poll()`: polls the item's file for its events (`vfs_poll`). With
 * `epiFget` (since 2024) only under a temporary reference, taken with
 * `epi_fget` (`get_file_active`) — no events when the file's count already
 * dropped to 0 — and dropped with `fput` after the poll ([LT1]).
 * Locking: `ep->mtx` held.
 */
export const ep_item_poll = kfn('ep_item_poll', function* (t: Task, epi: EpItem, epiFget: boolean): KGen<number> {
  const file = epi.file;
  // epi_fget(): file_ref_get(), the count goes up only from a live (non-zero) value.
  if (epiFget && (yield* get_file_active(t, file)) === null) return 0;
  const revents = yield* vfs_poll(t, file, epi.events);
  if (epiFget) yield* fput(t, file);
  return revents & epi.events;
});

/**
 * `ep_remove()`: unlinks the item from its file (`file->f_ep`, under the
 * file's `f_lock`: a step on the file) and from its set ([C9]).
 * Locking: `ep->mtx` held.
 */
export const ep_remove = kfn('ep_remove', function* (t: Task, epi: EpItem): KGen {
  assertHeld(t, epi.ep.mtx, 'ep_remove', ['C9']);
  yield t.at('ep_remove', 'write', epi.file);
  if (!epi.linked) return;
  epi.linked = false;
  const f = epi.file.f_ep.indexOf(epi);
  if (f >= 0) epi.file.f_ep.splice(f, 1);
  const i = epi.ep.items.indexOf(epi);
  if (i >= 0) epi.ep.items.splice(i, 1);
});

/**
 * `ep_alloc()` and the set's file (`anon_inode_getfile("[eventpoll]")`): a
 * new, empty set holding its file's one reference. Not a step: nobody sees it
 * until its file is installed (`fd_install`, which `epoll_create1` does).
 */
export function epoll_create(k: Kernel, name: string): EventPoll {
  return new EventPoll(k, name);
}

/**
 * `epoll_ctl(EPOLL_CTL_ADD)` → `ep_insert()`: under `ep->mtx`, watch `file`
 * for `events` and poll it once. 0, or `-EEXIST` when already watched. The
 * caller holds a reference on `file` (its `fdget`).
 * Locking: takes `ep->mtx`.
 */
export const epoll_ctl_add = kfn(
  'epoll_ctl',
  function* (t: Task, ep: EventPoll, file: File, events: number, epiFget: boolean = true): KGen<number> {
    yield* mutex_lock(t, ep.mtx);
    if (ep.items.some((e) => e.file === file)) {
      yield* mutex_unlock(t, ep.mtx);
      return -EEXIST;
    }
    // ep_insert(): link the item into the file's f_ep (under file->f_lock).
    yield t.at('ep_insert', 'write', file);
    const epi = new EpItem(ep, file, events);
    file.f_ep.push(epi);
    ep.items.push(epi);
    yield* ep_item_poll(t, epi, epiFget);
    yield* mutex_unlock(t, ep.mtx);
    return 0;
  },
);

/** `epoll_ctl(EPOLL_CTL_DEL)`: under `ep->mtx`, stop watching `file`. 0, or `-ENOENT`. Locking: takes `ep->mtx`. */
export const epoll_ctl_del = kfn('epoll_ctl', function* (t: Task, ep: EventPoll, file: File): KGen<number> {
  yield* mutex_lock(t, ep.mtx);
  const epi = ep.items.find((e) => e.file === file);
  if (epi) yield* ep_remove(t, epi);
  yield* mutex_unlock(t, ep.mtx);
  return epi ? 0 : -ENOENT;
});

/**
 * `epoll_wait()` with a zero timeout → `ep_send_events()`: under `ep->mtx`,
 * polls every item once; returns the number of items with events ready.
 * Locking: takes `ep->mtx` (the files' polls run under it).
 */
export const epoll_wait = kfn('epoll_wait', function* (t: Task, ep: EventPoll, epiFget: boolean = true): KGen<number> {
  yield* mutex_lock(t, ep.mtx);
  let ready = 0;
  for (const epi of ep.items.slice()) {
    if ((yield* ep_item_poll(t, epi, epiFget)) !== 0) ready++;
  }
  yield* mutex_unlock(t, ep.mtx);
  return ready;
});

/**
 * `ep_free()` (`ep_clear_and_put`, the epoll fd's release): under `ep->mtx`,
 * removes every item. Locking: takes `ep->mtx`.
 */
export const ep_free = kfn('ep_free', function* (t: Task, ep: EventPoll): KGen {
  yield* mutex_lock(t, ep.mtx);
  for (const epi of ep.items.slice()) yield* ep_remove(t, epi);
  yield* mutex_unlock(t, ep.mtx);
});

/** `eventpoll_fops`: the epoll fd's file; its release (`ep_eventpoll_release`) frees the set. */
export const eventpoll_fops: FileOperations = {
  name: 'eventpoll_fops',
  release: (t, file) => ep_free(t, file.private_data as EventPoll),
};

/**
 * `eventpoll_release()`, from `__fput` of a file with epoll items (every kind
 * of file): removes each item, under its set's `ep->mtx` (which waits for an
 * `epoll_wait` polling the file) ([C9], [LT2]). Called right after the final
 * put's step, before the file's release.
 * Locking: takes each set's `ep->mtx`; no other lock held (task work).
 */
export const eventpoll_release = kfn('eventpoll_release', function* (t: Task, file: File): KGen {
  for (;;) {
    yield t.at('eventpoll_release_file', 'read', file);
    const epi = file.f_ep[0];
    if (!epi) return;
    yield* mutex_lock(t, epi.ep.mtx);
    yield* ep_remove(t, epi);
    yield* mutex_unlock(t, epi.ep.mtx);
  }
});
