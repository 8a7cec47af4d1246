/**
 * Precondition checks at API entry points: the model's `WARN_ON`,
 * `dma_resv_assert_held()` and `might_lock()`. They record findings and let
 * the modelled kernel carry on, as a kernel with warnings enabled would.
 */
import type { Lock } from '../kernel/locking.ts';
import type { Task } from '../kernel/sched.ts';
import type { Origin } from './finding.ts';
import { heldInfo } from './lockdep.ts';

/** A call the kernel would WARN on or reject for its arguments. */
export function apiMisuse(t: Task, call: string, reason: string, rules: readonly string[]): void {
  t.k.report(t, {
    code: 'api-misuse',
    call,
    reason,
    rules,
    message: `WARNING: ${call}: ${reason}`,
  });
}

/**
 * A use of an object after its release (a buffer after its last put, an
 * attachment after detach, a fence after its last put): `refcount` ([I7]).
 * True when the object is still alive.
 */
export function checkNotReleased(
  t: Task,
  object: { readonly name: string },
  released: Origin | null,
  call: string,
  rules: readonly string[],
  message = `${call} on ${object.name} after its release`,
): boolean {
  if (!released) return true;
  t.k.report(t, { code: 'refcount', what: 'use-after-release', object: object.name, released, rules, message });
  return false;
}

/** `dma_resv_assert_held()` / `lockdep_assert_held()`: false (and a finding) when not held. */
export function assertHeld(t: Task, lock: Lock, call: string, rules: readonly string[]): boolean {
  if (t.holds(lock)) return true;
  t.k.report(t, {
    code: 'lock-not-held',
    lock: { name: lock.name, class: lock.cls },
    held: heldInfo(t),
    rules,
    message: `${call} called without holding ${lock.name}`,
  });
  return false;
}

/** `lockdep_assert_held_write()`: false (and `lock-not-held`) unless `t` holds `lock` exclusively. */
export function assertHeldWrite(t: Task, lock: Lock, call: string, rules: readonly string[]): boolean {
  if (lock.owner === t) return true;
  const how = t.holds(lock) ? ' for write (it is held for read)' : '';
  t.k.report(t, {
    code: 'lock-not-held',
    lock: { name: lock.name, class: lock.cls },
    held: heldInfo(t),
    rules,
    message: `${call} called without holding ${lock.name}${how}`,
  });
  return false;
}

/** The "must be called unlocked" rule ([L2]): false (and a finding) when held. */
export function assertNotHeld(t: Task, lock: Lock, call: string, rules: readonly string[]): boolean {
  if (!t.holds(lock)) return true;
  t.k.report(t, {
    code: 'lock-held',
    lock: { name: lock.name, class: lock.cls },
    held: heldInfo(t),
    rules,
    message: `${call} called with ${lock.name} held`,
  });
  return false;
}
