/** Plain-text tables with aligned columns, and the number formats the benchmark prints. */

export type Row = Readonly<Record<string, string>>;

/** Columns in the order of the first row's keys; numbers (and "> …", "–") right-aligned. */
export function table(rows: readonly Row[]): string {
  const first = rows[0];
  if (!first) return '(no rows)\n';
  const cols = Object.keys(first);
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => (r[c] ?? '').length)));
  const right = cols.map((c) =>
    rows.every((r) => /^(?:[>≥<~] ?)?(?:[\d.,]+(?:x| s| ms)?°?|cap\*|\?)$|^[–-]?$/.test(r[c] ?? '')),
  );
  const line = (cells: readonly string[]) =>
    cells
      .map((s, i) => (right[i] ? s.padStart(width[i] as number) : s.padEnd(width[i] as number)))
      .join('  ')
      .trimEnd();
  const out = [line(cols), line(width.map((w) => '-'.repeat(w)))];
  for (const r of rows) out.push(line(cols.map((c) => r[c] ?? '')));
  return `${out.join('\n')}\n`;
}

/** 1234567 → "1,234,567". */
export function int(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** Milliseconds, with sensible precision. */
export function ms(n: number): string {
  if (n >= 10_000) return `${(n / 1000).toFixed(1)} s`;
  if (n >= 100) return `${Math.round(n)}`;
  if (n >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

/** A rate, rounded to 3 significant figures. */
export function rate(n: number): string {
  if (!Number.isFinite(n) || n <= 0) return '–';
  const p = 10 ** Math.max(0, Math.floor(Math.log10(n)) - 2);
  return int(Math.round(n / p) * p);
}

/** A ratio: "12.3x", "0.05x". */
export function ratio(n: number): string {
  if (!Number.isFinite(n)) return '–';
  if (n >= 100) return `${int(n)}x`;
  if (n >= 1) return `${n.toFixed(n >= 10 ? 1 : 2)}x`;
  return `${n.toPrecision(2)}x`;
}
