/**
 * Replays a recorded schedule exactly. A choice that names a thread which is
 * not runnable at that point means the token does not fit the scenario.
 */
import type { ChoiceSource, ExecState } from './execution.ts';

export class ReplayMismatchError extends Error {
  readonly code = 'DMABUF_REPLAY_MISMATCH';
}

export class Replay implements ChoiceSource {
  constructor(private readonly schedule: readonly number[]) {}

  choose(x: ExecState, enabled: number): number {
    const c = this.schedule[x.depth];
    if (c === undefined) {
      throw new ReplayMismatchError(
        `the token ends after ${this.schedule.length} steps but the scenario has more to run: it was made for a different version of the scenario`,
      );
    }
    if (!(enabled & (1 << c))) {
      const name = x.threads[c]?.name ?? `#${c}`;
      throw new ReplayMismatchError(
        `at step ${x.depth + 1} the token runs thread ${name}, which ${x.threads[c] ? 'cannot run there' : 'does not exist'}: it was made for a different version of the scenario`,
      );
    }
    return c;
  }
}
