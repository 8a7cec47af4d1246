/**
 * Replays a recorded schedule exactly. A choice that names a thread which is
 * not runnable at that point means the token does not fit the scenario.
 */
import type { ChoiceSource, ExecState } from './execution.ts';

export class ReplayMismatchError extends Error {
  readonly code = 'DMABUF_REPLAY_MISMATCH';
}

export class Replay implements ChoiceSource {
  /**
   * With `partial`, the schedule may end before the execution does (a token
   * of an execution the explorer abandoned): the replay stops there.
   */
  constructor(
    private readonly schedule: readonly number[],
    private readonly partial = false,
  ) {}

  choose(x: ExecState, enabled: number): number {
    const c = this.schedule[x.depth];
    if (c === undefined) {
      if (this.partial) return -1;
      throw new ReplayMismatchError(
        `the token ends after ${this.schedule.length} steps but the scenario has more to run: it was made for a different version of the scenario`,
      );
    }
    // A thread index past the scenario's threads is checked before the mask:
    // `1 << c` wraps at 32, so thread #33 would test thread #1's bit.
    if (c >= x.threads.length) {
      throw new ReplayMismatchError(
        `at step ${x.depth + 1} the token runs thread #${c + 1}, but the scenario has ${x.threads.length} thread${x.threads.length === 1 ? '' : 's'}: the token does not fit this scenario (edited by hand?)`,
      );
    }
    if (!(enabled & (1 << c))) {
      throw new ReplayMismatchError(
        `at step ${x.depth + 1} the token runs thread ${x.threads[c]?.name}, which cannot run there: it was made for a different version of the scenario`,
      );
    }
    return c;
  }
}
