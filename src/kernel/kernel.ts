/**
 * One modelled machine for one execution: the objects, the threads, lockdep's
 * graph, physical memory and the findings recorded so far. Every execution of
 * a scenario builds a fresh one, so executions never share state.
 */
import type { Finding, FindingDetail, LockDependency } from '../checkers/finding.ts';
import { callStack, LOCK_CLASS, LockGraph } from '../checkers/lockdep.ts';
import { Lock } from './locking.ts';
import { PhysMem } from './page-alloc.ts';
import { type KGen, type KObject, SharedObject, Task } from './sched.ts';

/** Switches for API drift between kernel versions (reference §0.2). Defaults: 2026 mainline. */
export interface KernelConfig {
  /** CONFIG_DMABUF_MOVE_NOTIFY; always on since 2026. Off: get_pfn on a dynamic exporter is -ENOENT ([P3]). */
  readonly moveNotify: boolean;
}

export const DEFAULT_CONFIG: KernelConfig = { moveNotify: true };

/** Jiffies per second of the simulated clock. */
export const HZ = 100;

/** `msecs_to_jiffies()`, rounding up like the kernel. */
export function msecs_to_jiffies(ms: number): number {
  return Math.ceil((ms * HZ) / 1000);
}

/** Observer of executed steps (the trace recorder); not used on the hot path. */
export interface StepObserver {
  /** `t.pending` is the step about to run. */
  beforeStep(k: Kernel, t: Task): void;
  afterStep(k: Kernel, t: Task): void;
}

/** A shrinker: what direct reclaim calls (`scan_objects`), in the allocating thread, under fs_reclaim. */
export interface Shrinker {
  readonly name: string;
  scan(t: Task): KGen;
}

export class Kernel {
  readonly objects: KObject[] = [];
  readonly tasks: Task[] = [];
  readonly findings: Finding[] = [];
  private readonly findingKeys = new Set<string>();
  /** Lockdep's graph: shared by all the executions of one exploration. */
  readonly lockGraph: LockGraph;
  /** Dependencies this execution added to the graph (the explorer stamps them with its token). */
  readonly newEdges: LockDependency[] = [];
  /** This execution's number in the exploration. */
  execution = 0;
  /** Lockdep's pseudo-locks ([L8], [L11]). */
  readonly lockdepMaps: { readonly dma_fence_map: Lock; readonly fs_reclaim: Lock; readonly mmu_notifier: Lock };
  /**
   * Registered shrinkers (`register_shrinker`): direct reclaim runs each of
   * them in the allocating thread (page-alloc.ts `fs_reclaim`).
   */
  readonly shrinkers: Shrinker[];
  readonly physmem: PhysMem;
  /** What lockless dma_resv readers depend on: the signalled state of every fence. */
  readonly fenceStates: SharedObject;
  /** `reservation_ww_class`'s stamp counter, as an object (ww_acquire_init writes it). */
  readonly wwClass: SharedObject;
  /** The simulated clock as an object (what a plain sleep waits on). */
  readonly clock: SharedObject;
  readonly hz = HZ;
  /** Number of the step being executed (1-based); 0 before the first. */
  step = 0;
  nextWwStamp = 1;
  nextFenceContext = 1;
  /**
   * The simulated clock, in jiffies. Time passes only when every unfinished
   * thread is blocked and one of them waits with a deadline: the explorer
   * then moves the clock to the earliest deadline (see explorer/execution.ts).
   */
  jiffies = 0;

  constructor(
    readonly config: KernelConfig = DEFAULT_CONFIG,
    lockGraph: LockGraph = new LockGraph(),
  ) {
    this.lockGraph = lockGraph;
    this.lockdepMaps = {
      dma_fence_map: new Lock(this, 'dma_fence_map', LOCK_CLASS.fence_map, 'lockdep_map'),
      fs_reclaim: new Lock(this, 'fs_reclaim', LOCK_CLASS.fs_reclaim, 'lockdep_map'),
      mmu_notifier: new Lock(this, 'mmu_notifier_invalidate_range_start', LOCK_CLASS.mmu_notifier, 'lockdep_map'),
    };
    this.physmem = new PhysMem(this);
    this.shrinkers = [];
    this.fenceStates = new SharedObject(this, 'dma_fence states', 'dma_fence_states');
    this.clock = new SharedObject(this, 'jiffies', 'clock');
    this.wwClass = new SharedObject(this, 'reservation_ww_class', 'ww_class');
  }

  register(o: KObject): number {
    this.objects.push(o);
    return this.objects.length - 1;
  }

  newTask(name: string): Task {
    const t = new Task(this, this.tasks.length, name);
    this.tasks.push(t);
    return t;
  }

  /** `dma_fence_context_alloc(1)`. */
  fenceContextAlloc(): number {
    return this.nextFenceContext++;
  }

  /**
   * Records a finding raised by thread `t` while it runs its current step.
   * The same finding (code and message) is recorded once per execution.
   */
  report(t: Task, detail: FindingDetail, stepFn?: string): void {
    const key = `${detail.code}\u0000${detail.message}`;
    if (this.findingKeys.has(key)) return;
    this.findingKeys.add(key);
    this.findings.push({
      ...detail,
      step: this.step,
      thread: t.name,
      op: t.op,
      fn: stepFn ?? t.fn,
      stack: stepFn ? callStack(t) : t.stack.slice(),
    } as Finding);
  }
}
