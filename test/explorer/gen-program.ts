/**
 * Small programs built directly on the kernel primitives, with fast-check
 * generators: 2–3 threads, each a short list of ops over a few shared
 * objects. What a thread read flows into what it writes and into its own
 * register, so the final state shows the order of every dependent pair.
 *
 * Shared objects: fields `x0`, `x1`; mutexes `m0`, `m1`; spin lock `s0`;
 * rw_semaphore `r0`; fences `f0` (no driver ops) and `f1` (driver
 * `enable_signaling` and `signaled` functions, so its steps turn global);
 * one page slot, where a page is published, looked up and freed.
 */
import fc from 'fast-check';
import { kasan_check } from '../../src/checkers/kasan.ts';
import { origin } from '../../src/checkers/lockdep.ts';
import type { Program, World } from '../../src/explorer/program.ts';
import {
  DmaFence,
  type DmaFenceCb,
  dma_fence_add_callback,
  dma_fence_is_signaled,
  dma_fence_signal,
  dma_fence_wait,
  dma_fence_wait_timeout,
} from '../../src/kernel/dma-fence.ts';
import type { Kernel } from '../../src/kernel/kernel.ts';
import { EXCLUSIVE, Lock, lock_acquire, lock_release, lock_try, SHARED } from '../../src/kernel/locking.ts';
import { alloc_pages, type Frame, free_pages, type PagePool, Translation } from '../../src/kernel/page-alloc.ts';
import { type KGen, KObject, type Task } from '../../src/kernel/sched.ts';

export type Leaf =
  | { readonly op: 'read' | 'write'; readonly x: number }
  | { readonly op: 'signal' | 'wait' | 'is_signaled'; readonly f: number }
  | { readonly op: 'wait_timeout'; readonly f: number; readonly timeout: number }
  | { readonly op: 'add_cb'; readonly f: number; readonly x: number }
  | { readonly op: 'alloc' | 'free' | 'access' };

/** A lock and how it is taken: `m0`/`m1` mutex or trylock, `s0` spin lock, `r0` read or write. */
export type LockUse =
  | { readonly lock: 'm0' | 'm1'; readonly how: 'lock' | 'trylock' }
  | { readonly lock: 's0'; readonly how: 'lock' }
  | { readonly lock: 'r0'; readonly how: 'read' | 'write' };

export type Block = LockUse & { readonly op: 'locked'; readonly body: readonly Op[] };
export type Op = Leaf | Block;
export type ThreadOps = readonly Op[];

const M = 1_000_003;

/** A shared field: a number. */
class Field extends KObject {
  readonly type = 'field';
  value = 0;
  override snapshot(): Record<string, unknown> {
    return { value: this.value };
  }
}

/** A thread's private register (never declared: only its thread touches it). */
class Reg extends KObject {
  readonly type = 'register';
  value = 0;
  override snapshot(): Record<string, unknown> {
    return { value: this.value };
  }
}

/** Where a page is published: the frame and the generation it was published at. */
class PageSlot extends KObject {
  readonly type = 'page_slot';
  ref: { readonly frame: Frame; readonly gen: number } | null = null;
  override snapshot(): Record<string, unknown> {
    return { pfn: this.ref?.frame.pfn ?? null, gen: this.ref?.gen ?? null };
  }
}

class GenWorld implements World {
  readonly x: Field[];
  readonly locks: Record<LockUse['lock'], Lock>;
  readonly f: DmaFence[];
  readonly slot: PageSlot;
  readonly pool: PagePool;
  readonly regs: Reg[];

  constructor(
    readonly k: Kernel,
    readonly threads: readonly ThreadOps[],
  ) {
    this.x = [new Field(k, 'x0'), new Field(k, 'x1')];
    this.locks = {
      m0: new Lock(k, 'm0', 'm0_class', 'mutex'),
      m1: new Lock(k, 'm1', 'm1_class', 'mutex'),
      s0: new Lock(k, 's0', 's0_class', 'spinlock'),
      r0: new Lock(k, 'r0', 'r0_class', 'rwsem'),
    };
    const x0 = this.x[0] as Field;
    this.f = [
      new DmaFence(k, 'f0', { driverName: 'gen', timelineName: 'gen' }, k.fenceContextAlloc(), 1),
      new DmaFence(
        k,
        'f1',
        {
          driverName: 'gen',
          timelineName: 'gen',
          enable_signaling: () => true,
          // Peeks at "hardware": a shared field (the step is global while unsignalled).
          signaled: () => x0.value % 2 === 1,
        },
        k.fenceContextAlloc(),
        1,
      ),
    ];
    this.slot = new PageSlot(k, 'slot');
    this.pool = k.physmem.pools.get('system') as PagePool;
    this.regs = threads.map((_, i) => new Reg(k, `reg${i}`));
  }

  *setup(): KGen {}

  *teardown(): KGen {}

  *thread(i: number, t: Task): KGen {
    for (const op of this.threads[i] as ThreadOps) yield* this.run(i, t, op);
  }

  private mix(i: number, v: number): void {
    const r = this.regs[i] as Reg;
    r.value = (r.value * 31 + v + 7) % M;
  }

  private *run(i: number, t: Task, op: Op): KGen {
    const reg = this.regs[i] as Reg;
    switch (op.op) {
      case 'read': {
        const x = this.x[op.x] as Field;
        yield t.at(`read_${x.name}`, 'read', x);
        this.mix(i, x.value);
        return;
      }
      case 'write': {
        const x = this.x[op.x] as Field;
        yield t.at(`write_${x.name}`, 'write', x);
        // Not commutative: two writes in either order leave different values.
        x.value = (x.value * 5 + 100 * (i + 1) + reg.value * 7) % M;
        return;
      }
      case 'signal':
        yield* dma_fence_signal(t, this.f[op.f] as DmaFence);
        return;
      case 'wait':
        this.mix(i, yield* dma_fence_wait(t, this.f[op.f] as DmaFence, false));
        return;
      case 'wait_timeout':
        this.mix(i, yield* dma_fence_wait_timeout(t, this.f[op.f] as DmaFence, false, op.timeout));
        return;
      case 'is_signaled':
        this.mix(i, (yield* dma_fence_is_signaled(t, this.f[op.f] as DmaFence)) ? 1 : 0);
        return;
      case 'add_cb': {
        const x = this.x[op.x] as Field;
        const cb: DmaFenceCb = { func: null, queued: false };
        const r = yield* dma_fence_add_callback(t, this.f[op.f] as DmaFence, cb, () => {
          x.value = (x.value * 3 + i + 1) % M;
        });
        this.mix(i, r);
        return;
      }
      case 'alloc': {
        const [frame] = yield* alloc_pages(t, this.pool, 1, () => `page of ${t.name}`);
        yield t.at('publish_page', 'write', this.slot);
        if (this.slot.ref === null) {
          this.slot.ref = { frame: frame as Frame, gen: (frame as Frame).gen };
          this.mix(i, 1);
        } else {
          yield* free_pages(t, [frame as Frame]);
          this.mix(i, 2);
        }
        return;
      }
      case 'free': {
        yield t.at('unpublish_page', 'write', this.slot);
        const ref = this.slot.ref;
        this.slot.ref = null;
        if (ref) yield* free_pages(t, [ref.frame]);
        this.mix(i, ref ? 3 : 4);
        return;
      }
      case 'access': {
        yield t.at('lookup_page', 'read', this.slot);
        const ref = this.slot.ref;
        if (!ref) {
          this.mix(i, 5);
          return;
        }
        yield t.at('page_access', 'read', ref.frame);
        const tr = new Translation('pte', t.name, 'slot', 0, ref.frame, ref.gen, origin(t));
        this.mix(i, kasan_check(t, tr, 'cpu') ? 6 : 8);
        return;
      }
      case 'locked':
        yield* this.locked(i, t, op);
        return;
    }
  }

  private *locked(i: number, t: Task, b: Block): KGen {
    const l = this.locks[b.lock];
    if (b.how === 'trylock') {
      const ok = yield* lock_try(t, l, EXCLUSIVE, 'mutex_trylock');
      this.mix(i, ok ? 9 : 10);
      if (!ok) return;
    } else {
      const [mode, fn] =
        b.how === 'read'
          ? [SHARED, 'down_read']
          : b.how === 'write'
            ? [EXCLUSIVE, 'down_write']
            : b.lock === 's0'
              ? [EXCLUSIVE, 'spin_lock']
              : [EXCLUSIVE, 'mutex_lock'];
      yield* lock_acquire(t, l, mode, fn);
    }
    for (const op of b.body) yield* this.run(i, t, op);
    const unlock =
      b.how === 'read' ? 'up_read' : b.how === 'write' ? 'up_write' : b.lock === 's0' ? 'spin_unlock' : 'mutex_unlock';
    yield* lock_release(t, l, unlock);
  }
}

function fnv1a(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

/** A program of the given threads (named t0, t1, …). */
export function genProgram(threads: readonly ThreadOps[]): Program {
  return {
    name: 'gen',
    hash: fnv1a(JSON.stringify(threads)),
    threads: threads.map((_, i) => `t${i}`),
    instantiate: (k) => new GenWorld(k, threads),
  };
}

/** Readable form of a program, for failure messages. */
export function showProgram(threads: readonly ThreadOps[]): string {
  const show = (op: Op): string => {
    if (op.op === 'locked') return `${op.how} ${op.lock} { ${op.body.map(show).join('; ')} }`;
    if (op.op === 'read' || op.op === 'write') return `${op.op} x${op.x}`;
    if (op.op === 'add_cb') return `add_cb f${op.f} -> x${op.x}`;
    if (op.op === 'wait_timeout') return `wait_timeout f${op.f} ${op.timeout}`;
    if ('f' in op) return `${op.op} f${op.f}`;
    return op.op;
  };
  return threads.map((ops, i) => `t${i}: ${ops.map(show).join('; ')}`).join('\n');
}

// ---------------------------------------------------------------------------
// Generators

const field = fc.integer({ min: 0, max: 1 });
const fence = fc.integer({ min: 0, max: 1 });

export const leafArb: fc.Arbitrary<Leaf> = fc.oneof(
  { arbitrary: fc.record({ op: fc.constantFrom('read' as const, 'write' as const), x: field }), weight: 4 },
  {
    arbitrary: fc.record({ op: fc.constantFrom('signal' as const, 'wait' as const, 'is_signaled' as const), f: fence }),
    weight: 3,
  },
  {
    arbitrary: fc.record({
      op: fc.constant('wait_timeout' as const),
      f: fence,
      timeout: fc.integer({ min: 1, max: 3 }),
    }),
    weight: 1,
  },
  { arbitrary: fc.record({ op: fc.constant('add_cb' as const), f: fence, x: field }), weight: 1 },
  { arbitrary: fc.record({ op: fc.constantFrom('alloc' as const, 'free' as const, 'access' as const) }), weight: 3 },
);

const lockUseArb: fc.Arbitrary<LockUse> = fc.oneof(
  fc.record({
    lock: fc.constantFrom('m0' as const, 'm1' as const),
    how: fc.constantFrom('lock' as const, 'trylock' as const),
  }),
  fc.record({ lock: fc.constant('s0' as const), how: fc.constant('lock' as const) }),
  fc.record({ lock: fc.constant('r0' as const), how: fc.constantFrom('read' as const, 'write' as const) }),
);

/** A locked section: a lock never taken again inside itself (no self-deadlock by construction). */
function blockArb(depth: number, held: readonly string[]): fc.Arbitrary<Block> {
  return lockUseArb
    .filter((u) => !held.includes(u.lock))
    .chain((u) =>
      fc
        .array(
          depth > 1
            ? fc.oneof(
                { arbitrary: leafArb, weight: 3 },
                { arbitrary: blockArb(depth - 1, [...held, u.lock]), weight: 1 },
              )
            : leafArb,
          {
            minLength: 0,
            maxLength: 2,
          },
        )
        .map((body) => ({ ...u, op: 'locked' as const, body }) as Block),
    );
}

export const opArb: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: leafArb, weight: 3 },
  { arbitrary: blockArb(2, []), weight: 1 },
);

/** 2 threads of 1–3 ops, or 3 threads of 1–2 ops. */
export const programArb: fc.Arbitrary<ThreadOps[]> = fc.oneof(
  fc.array(fc.array(opArb, { minLength: 1, maxLength: 3 }), { minLength: 2, maxLength: 2 }),
  fc.array(fc.array(opArb, { minLength: 1, maxLength: 2 }), { minLength: 3, maxLength: 3 }),
);
