/**
 * One modelled machine for one execution: the objects, the threads, lockdep's
 * graph, physical memory and the findings recorded so far. Every execution of
 * a scenario builds a fresh one, so executions never share state.
 */
import type { Finding, FindingDetail } from '../checkers/finding.ts';
import { callStack, LockGraph } from '../checkers/lockdep.ts';
import { PhysMem } from './page-alloc.ts';
import { type KObject, SharedObject, Task } from './sched.ts';

/** Switches for API drift between kernel versions (reference §0.2). Defaults: 2026 mainline. */
export interface KernelConfig {
  /** CONFIG_DMABUF_MOVE_NOTIFY; always on since 2026. Off: get_pfn on a dynamic exporter is -ENOENT ([P3]). */
  readonly moveNotify: boolean;
}

export const DEFAULT_CONFIG: KernelConfig = { moveNotify: true };

/** Observer of executed steps (the trace recorder); not used on the hot path. */
export interface StepObserver {
  /** `t.pending` is the step about to run. */
  beforeStep(k: Kernel, t: Task): void;
  afterStep(k: Kernel, t: Task): void;
}

export class Kernel {
  readonly objects: KObject[] = [];
  readonly tasks: Task[] = [];
  readonly findings: Finding[] = [];
  private readonly findingKeys = new Set<string>();
  readonly lockGraph = new LockGraph();
  readonly physmem: PhysMem;
  /** What lockless dma_resv readers depend on: the signalled state of every fence. */
  readonly fenceStates: SharedObject;
  /** Number of the step being executed (1-based); 0 before the first. */
  step = 0;
  nextWwStamp = 1;
  nextFenceContext = 1;
  /** Simulated clock in jiffies; advances one tick per step. */
  jiffies = 0;

  constructor(readonly config: KernelConfig = DEFAULT_CONFIG) {
    this.physmem = new PhysMem(this);
    this.fenceStates = new SharedObject(this, 'dma_fence states', 'dma_fence_states');
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
      fn: stepFn ?? t.fn,
      stack: stepFn ? callStack(t) : t.stack.slice(),
    } as Finding);
  }
}
