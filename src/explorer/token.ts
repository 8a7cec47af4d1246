/**
 * Replay tokens: a compact, copy-pasteable string of every scheduling choice
 * of one execution, bound to the scenario it was made for.
 *
 * Format `dc1.<hash>.<runs>`: `hash` is the scenario's fingerprint (8 hex
 * digits); `runs` is the schedule run-length encoded, one letter per thread
 * (a–z, then A–Z) followed by the run length when it is more than 1.
 * Example: `dc1.3fa2c81b.a4b2a3`.
 */
export type ReplayToken = string & { readonly __brand: 'ReplayToken' };

const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
export const MAX_THREADS = 30;

export class TokenError extends Error {
  readonly code = 'DMABUF_TOKEN_INVALID';
}

export function encodeToken(hash: string, schedule: readonly number[]): ReplayToken {
  let out = '';
  let i = 0;
  while (i < schedule.length) {
    const c = schedule[i] as number;
    let j = i + 1;
    while (j < schedule.length && schedule[j] === c) j++;
    out += LETTERS[c] + (j - i > 1 ? String(j - i) : '');
    i = j;
  }
  return `dc1.${hash}.${out}` as ReplayToken;
}

export function decodeToken(token: string): { hash: string; schedule: number[] } {
  const m = /^dc1\.([0-9a-f]{8})\.([a-zA-Z0-9]*)$/.exec(token.trim());
  if (!m) {
    throw new TokenError(
      `not a replay token: expected "dc1.<8 hex digits>.<schedule>", as printed after "replay:" in a report, got ${JSON.stringify(token.length > 60 ? `${token.slice(0, 60)}…` : token)}`,
    );
  }
  const schedule: number[] = [];
  const runs = m[2] as string;
  const re = /([a-zA-Z])(\d*)/g;
  let r: RegExpExecArray | null = re.exec(runs);
  let consumed = 0;
  while (r) {
    if (r.index !== consumed) break;
    const c = LETTERS.indexOf(r[1] as string);
    const n = r[2] ? Number(r[2]) : 1;
    if (!Number.isSafeInteger(n) || n < 1 || n > 10_000_000 || schedule.length + n > 10_000_000) {
      throw new TokenError(`replay token has an impossible run length "${r[2]}"`);
    }
    for (let i = 0; i < n; i++) schedule.push(c);
    consumed = re.lastIndex;
    r = re.exec(runs);
  }
  if (consumed !== runs.length)
    throw new TokenError(`replay token is malformed at "${runs.slice(consumed, consumed + 10)}"`);
  return { hash: m[1] as string, schedule };
}
