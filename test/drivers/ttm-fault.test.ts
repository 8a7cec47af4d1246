/**
 * TTM's CPU fault handler against pipelined moves ([LT8] 4, [C4]):
 * `ttm_bo_vm_fault_idle` waits for a pending move fence with mmap_lock
 * dropped on the first attempt, holding a BO reference, and returns
 * VM_FAULT_RETRY (the retry, FAULT_FLAG_TRIED, waits with mmap_lock held).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { compile } from '../../src/scenario/compile.ts';
import { replayToken } from '../../src/trace/replay.ts';
import type { TraceStep } from '../../src/trace/trace.ts';
import { CATALOGUE, check, first, fromYaml } from '../helpers.ts';

const scenario = (name: string, edit: (s: string) => string = (s) => s) =>
  fromYaml(edit(readFileSync(path.join(CATALOGUE, `${name}.yaml`), 'utf8')));

/** The user thread's steps of the first fault attempt, by function name. */
const userFns = (steps: readonly TraceStep[]) => steps.filter((s) => s.thread === 'user').map((s) => s.fn);

describe('ttm_bo_vm_fault with a pending pipelined move', () => {
  it('without the BO reference a racing munmap frees the BO under the waiting fault', () => {
    const spec = scenario('ttm-pipelined-fault-retry-without-bo-ref');
    const r = check(spec);
    expect(r.verdict).toBe('bug');
    const f = first(r, 'refcount');
    expect(f.message).toContain('ttm_bo_vm_fault_idle');
    // The counterexample: the fault dropped mmap_lock, then the BO went away.
    const { trace } = replayToken(compile(spec), f.token, 'x.yaml');
    const fns = userFns(trace.steps);
    expect(fns).toContain('mmap_read_unlock');
    expect(fns).not.toContain('get_dma_buf');
    expect(trace.steps.some((s) => s.thread === 'gpu' && s.fn === 'ttm_bo_release')).toBe(true);
  });

  it('with it the same race is safe, and the first attempt drops mmap_lock holding a reference', () => {
    const spec = scenario('ttm-pipelined-fault-retry-holds-bo-ref');
    const r = check(spec);
    expect(r.verdict).toBe('safe');
    expect(r.stats.complete).toBe(true);
  });
});
