/**
 * Re-runs exactly the execution a replay token names, recording its trace.
 */
import { LockGraph } from '../checkers/lockdep.ts';
import { type ExecResult, runExecution } from '../explorer/execution.ts';
import type { Program } from '../explorer/program.ts';
import { Replay, ReplayMismatchError } from '../explorer/replay.ts';
import { decodeToken } from '../explorer/token.ts';
import { TRACE_FORMAT, TRACE_VERSION, type Trace, TraceRecorder } from './trace.ts';

export interface Replayed {
  readonly result: ExecResult;
  readonly trace: Trace;
}

function decodeFor(program: Program, token: string, file: string): number[] {
  const { hash, schedule } = decodeToken(token);
  if (hash !== program.hash) {
    throw new ReplayMismatchError(
      `the token was made for a different scenario (fingerprint ${hash}; ${file} has ${program.hash}): was the scenario edited since the token was printed?`,
    );
  }
  return schedule;
}

/**
 * Throws TokenError (malformed) or ReplayMismatchError (made for another
 * scenario). `before`: tokens of executions to run first on the same lockdep
 * graph — a lock-order report closed with dependencies from other executions
 * lists them (`requires`).
 */
export function replayToken(program: Program, token: string, file: string, before: readonly string[] = []): Replayed {
  const schedule = decodeFor(program, token, file);
  const lockGraph = new LockGraph();
  before.forEach((b, i) => {
    runExecution(program, new Replay(decodeFor(program, b, file), true), { lockGraph, execution: i });
  });
  const rec = new TraceRecorder();
  const result = runExecution(program, new Replay(schedule), { observer: rec, lockGraph, execution: before.length });
  if (result.schedule.length !== schedule.length) {
    throw new ReplayMismatchError(
      `the token has ${schedule.length} scheduling choices but the execution ended after ${result.schedule.length}: it was made for a different version of the scenario`,
    );
  }
  const trace: Trace = {
    format: TRACE_FORMAT,
    version: TRACE_VERSION,
    scenario: { name: program.name, file, hash: program.hash },
    token,
    ...(before.length ? { after: [...before] } : {}),
    threads: result.kernel.tasks.map((t) => t.name),
    status: result.status,
    steps: rec.steps,
    findings: result.findings,
  };
  return { result, trace };
}
