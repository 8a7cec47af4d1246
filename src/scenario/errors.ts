/**
 * Errors in user input: a scenario file, a replay token, a command-line
 * argument. They carry a stable code and, for scenarios, every problem found
 * with its `file:line:col`, so the command line can print them and exit 2.
 */
export interface ScenarioIssue {
  readonly file: string;
  readonly line: number;
  readonly col: number;
  readonly message: string;
}

export class ScenarioError extends Error {
  readonly code = 'DMABUF_SCENARIO_INVALID';

  constructor(readonly issues: readonly ScenarioIssue[]) {
    super(issues.map(formatIssue).join('\n'));
  }
}

export function formatIssue(i: ScenarioIssue): string {
  return `${i.file}:${i.line}:${i.col}: ${i.message}`;
}

/** Levenshtein distance, for "did you mean". */
function distance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0] as number;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j] as number;
      prev[j] = Math.min((prev[j] as number) + 1, (prev[j - 1] as number) + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length] as number;
}

/** The closest candidate, if close enough to be a likely typo. */
export function nearest(word: string, candidates: Iterable<string>): string | null {
  let best: string | null = null;
  let bestD = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const d = distance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  if (best === null) return null;
  return bestD <= Math.max(2, Math.floor(best.length / 3)) ? best : null;
}

/** "expected one of a, b, c (did you mean b?)". */
export function expectedOneOf(word: string, candidates: readonly string[]): string {
  const n = nearest(word, candidates);
  const list = candidates.length ? `expected one of ${candidates.join(', ')}` : 'nothing is expected here';
  return n ? `${list} (did you mean "${n}"?)` : list;
}
