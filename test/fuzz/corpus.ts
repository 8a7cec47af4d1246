/**
 * Real inputs the fuzzer mutates: the catalogue's scenarios, replay tokens of
 * executions of them, and traces of those executions. Built once per
 * process, deterministically (the same tokens and traces every run).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runExecution } from '../../src/explorer/execution.ts';
import type { Program } from '../../src/explorer/program.ts';
import { RandomWalk } from '../../src/explorer/random.ts';
import { encodeToken } from '../../src/explorer/token.ts';
import { compile } from '../../src/scenario/compile.ts';
import { loadScenario } from '../../src/scenario/load-yaml.ts';
import { replayToken } from '../../src/trace/replay.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface CatalogueEntry {
  /** As the command line shows it: `scenarios/<name>.yaml`. */
  readonly file: string;
  readonly text: string;
}

export interface TokenEntry {
  /** The catalogue scenario the token was made for (an index into {@link Corpus.programs}). */
  readonly scenario: number;
  readonly token: string;
}

export interface Corpus {
  readonly catalogue: readonly CatalogueEntry[];
  /** Every catalogue scenario, compiled (same order). */
  readonly programs: readonly Program[];
  /** A few tokens per scenario, of seeded random executions. */
  readonly tokens: readonly TokenEntry[];
  /** Traces (JSON text, as `--trace` writes them) of short executions. */
  readonly traces: readonly string[];
}

let cached: Corpus | null = null;

/** Traces longer than this (characters) are left out: mutating them costs more than it finds. */
const MAX_TRACE_CHARS = 200_000;

export function corpus(): Corpus {
  if (cached) return cached;
  const dir = path.join(ROOT, 'scenarios');
  const catalogue = readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => ({ file: `scenarios/${f}`, text: readFileSync(path.join(dir, f), 'utf8') }));
  const programs = catalogue.map((c) => compile(loadScenario(c.text, c.file)));
  const tokens: TokenEntry[] = [];
  const traces: string[] = [];
  programs.forEach((p, i) => {
    for (let e = 0; e < 3; e++) {
      const r = runExecution(p, new RandomWalk(7, e));
      tokens.push({ scenario: i, token: encodeToken(p.hash, r.schedule) });
    }
    // One trace for every few scenarios keeps the set varied and small.
    if (i % 4 === 0) {
      const t = tokens[tokens.length - 1] as TokenEntry;
      const text = `${JSON.stringify(replayToken(p, t.token, catalogue[i]?.file ?? '').trace, null, 2)}\n`;
      if (text.length <= MAX_TRACE_CHARS) traces.push(text);
    }
  });
  cached = { catalogue, programs, tokens, traces };
  return cached;
}
