/**
 * Sleepable RCU, as KVM uses it for memslots: readers mark a read-side
 * section; `synchronize_srcu()` waits until no reader is inside one.
 *
 * Simplification: the grace period waits for every reader, including ones
 * that started after it began (the kernel waits only for pre-existing ones).
 * That can only add waiting, never hide a reader.
 *
 * Models: kernel/rcu/srcutree.c, include/linux/srcu.h
 */
import type { Kernel } from './kernel.ts';
import { type Blocker, type KGen, KObject, type Task } from './sched.ts';

export class SrcuStruct extends KObject implements Blocker {
  readonly type = 'srcu_struct';
  readers = 0;

  constructor(k: Kernel, name: string) {
    super(k, name);
  }

  ready(): boolean {
    return this.readers === 0;
  }

  override snapshot(): Record<string, unknown> {
    return { readers: this.readers };
  }
}

/** Read-side sections of different threads commute (shared mode); a grace period conflicts with them. */
export function* srcu_read_lock(t: Task, ssp: SrcuStruct): KGen<number> {
  yield t.at('srcu_read_lock', 'lock', ssp, null, 1);
  ssp.readers++;
  return 0;
}

export function* srcu_read_unlock(t: Task, ssp: SrcuStruct, _idx: number): KGen {
  yield t.at('srcu_read_unlock', 'unlock', ssp, null, 1);
  ssp.readers--;
}

export function* synchronize_srcu(t: Task, ssp: SrcuStruct): KGen {
  yield t.at('synchronize_srcu', 'wait', ssp, ssp).touch(ssp, 'write');
}
