/**
 * What the explorer runs: a compiled scenario, independent of how it was
 * written (YAML, or built in TypeScript by a test or a library user).
 */
import type { Kernel } from '../kernel/kernel.ts';
import type { KGen, Task } from '../kernel/sched.ts';

/** The per-execution instance of a program: fresh drivers on a fresh kernel. */
export interface World {
  /** Exports buffers and attaches importers; runs alone, before any thread. */
  setup(t: Task): KGen;
  /** The body of thread `i`. */
  thread(i: number, t: Task): KGen;
  /** The owners go away, references are dropped, leaks are checked; runs alone. */
  teardown(t: Task): KGen;
}

export interface Program {
  readonly name: string;
  /** Fingerprint of what decides executions; replay tokens carry it. */
  readonly hash: string;
  readonly threads: readonly string[];
  /**
   * Groups of interchangeable threads (indices): each runs the same code on
   * the same objects, so renaming them maps executions to executions
   * (explorer/symmetry.ts). Only the state-caching search uses it.
   */
  readonly symmetry?: readonly (readonly number[])[];
  instantiate(k: Kernel): World;
}
