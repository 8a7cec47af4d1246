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

/**
 * Edit distance with adjacent transpositions counted as one edit (optimal
 * string alignment), for "did you mean": "kmv" is one edit from "kvm".
 */
function distance(a: string, b: string): number {
  // Three rows of the table (the one before last, for transpositions), not the whole table:
  // a file with 80,000 unknown keys asks this half a million times.
  const n = b.length;
  let prev2 = new Int32Array(n + 1);
  let prev = new Int32Array(n + 1);
  let row = new Int32Array(n + 1);
  for (let j = 0; j <= n; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    row[0] = i;
    for (let j = 1; j <= n; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        v = Math.min(v, (prev2[j - 2] as number) + 1);
      row[j] = v;
    }
    [prev2, prev, row] = [prev, row, prev2];
  }
  return prev[n] as number;
}

/**
 * The closest candidate, if close enough to be a likely typo: within a third
 * of the longer name's length (at least one edit), or the only candidate the
 * word is a prefix of ("vfio" for "vfio-pci").
 */
export function nearest(word: string, candidates: Iterable<string>): string | null {
  const w = word.toLowerCase();
  const all = [...candidates];
  let best: string | null = null;
  let bestD = Number.POSITIVE_INFINITY;
  for (const c of all) {
    // A candidate whose length differs by more than the allowance cannot be
    // close (the distance is at least the difference); skipping it keeps a
    // megabyte-long word from costing a megabyte-sized table per candidate.
    if (Math.abs(w.length - c.length) > Math.max(1, Math.floor(Math.max(w.length, c.length) / 3))) continue;
    const d = distance(w, c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  if (best !== null && bestD <= Math.max(1, Math.floor(Math.max(w.length, best.length) / 3))) return best;
  if (w.length >= 3) {
    const prefixed = all.filter((c) => c.toLowerCase().startsWith(w));
    if (prefixed.length === 1) return prefixed[0] as string;
  }
  return null;
}

/** "expected one of a, b, c (did you mean b?)". */
export function expectedOneOf(word: string, candidates: readonly string[]): string {
  const n = nearest(word, candidates);
  const list = candidates.length ? `expected one of ${candidates.join(', ')}` : 'nothing is expected here';
  return n ? `${list} (did you mean "${n}"?)` : list;
}
