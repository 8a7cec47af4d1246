/**
 * Honest verdicts (issue 7 item 4): every finding the command line reports
 * for the catalogue replays from its token in a fresh process — the same
 * code and message, with the executions a lock-order report requires
 * replayed first (`--token` repeated).
 */
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers.ts';

interface JsonFinding {
  readonly code: string;
  readonly message: string;
  readonly token: string;
  readonly requires?: readonly string[];
}

describe('every catalogue finding replays from its token in a fresh process', () => {
  const run = runCli(['scenarios', '--json']);
  const doc = JSON.parse(run.stdout) as {
    results: { file: string; findings: JsonFinding[] }[];
  };
  const cases = doc.results.flatMap((r) => r.findings.map((f) => ({ file: r.file, f })));

  it('the catalogue reports findings with tokens', () => {
    expect(run.code).toBe(0);
    expect(cases.length).toBeGreaterThan(40);
  });

  // One process per token: the findings of one token are checked together.
  const byToken = new Map<string, { file: string; findings: JsonFinding[] }>();
  for (const { file, f } of cases) {
    const key = `${file} ${f.token}`;
    const e = byToken.get(key) ?? { file, findings: [] };
    e.findings.push(f);
    byToken.set(key, e);
  }
  for (const [key, { file, findings }] of byToken) {
    it(key, () => {
      const requires = [...new Set(findings.flatMap((f) => f.requires ?? []))];
      const tokens = [...requires, findings[0]?.token ?? ''].flatMap((t) => ['--token', t]);
      const r = runCli(['replay', file, ...tokens, '--json']);
      expect(r.code, r.stderr).toBe(0);
      const trace = JSON.parse(r.stdout) as { findings: { code: string; message: string }[] };
      const got = trace.findings.map((g) => `${g.code}: ${g.message}`);
      for (const f of findings) expect(got).toContain(`${f.code}: ${f.message}`);
    });
  }
});
