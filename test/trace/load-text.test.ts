/**
 * Reading a trace file back (src/trace/load.ts): a trace the command line
 * writes reads back as it was; anything else is a TraceError naming the file,
 * the line:col in the JSON text and the field.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkScenario } from '../../src/check.ts';
import { compile } from '../../src/scenario/compile.ts';
import { loadScenario } from '../../src/scenario/load-yaml.ts';
import { loadTrace, pathText, TraceError } from '../../src/trace/load-text.ts';
import { replayToken } from '../../src/trace/replay.ts';
import type { Trace } from '../../src/trace/trace.ts';
import { CATALOGUE } from '../helpers.ts';

const FILE = 'scenarios/cpu-access-vmap-without-resv.yaml';

function trace(): Trace {
  const spec = loadScenario(readFileSync(path.join(CATALOGUE, path.basename(FILE)), 'utf8'), FILE);
  const r = checkScenario(spec, FILE);
  const token = r.counterexample?.token;
  if (!token) throw new Error('expected a counterexample');
  return replayToken(compile(spec), token, FILE).trace;
}

const TEXT = `${JSON.stringify(trace(), null, 2)}\n`;

function refusal(text: string, file = 'out.json'): TraceError {
  try {
    loadTrace(text, file);
  } catch (e) {
    if (e instanceof TraceError) return e;
    throw e;
  }
  throw new Error('it loaded');
}

/** Line and column (1-based) of the first occurrence of `s` in TEXT. */
function at(s: string): [number, number] {
  const i = TEXT.indexOf(s);
  const before = TEXT.slice(0, i).split('\n');
  return [before.length, (before[before.length - 1]?.length ?? 0) + 1];
}

describe('loadTrace', () => {
  it('reads back a trace the command line writes, as it was', () => {
    expect(loadTrace(TEXT, 'out.json')).toEqual(JSON.parse(TEXT));
    expect(loadTrace(JSON.stringify(JSON.parse(TEXT)), 'out.json').steps.length).toBeGreaterThan(10);
  });

  it('reads version 1 (no world per step) and ignores fields it does not know', () => {
    const o = JSON.parse(TEXT);
    o.version = 1;
    for (const s of o.steps) delete s.world;
    o.later = { added: 'in a later version' };
    expect(loadTrace(JSON.stringify(o), 'v1.json').version).toBe(1);
  });

  it('malformed JSON: where the text stops making sense', () => {
    const e = refusal('{\n  "format": "dmabuf-check-trace",\n  "version": 2,\n  "steps": [1, 2,]\n}\n');
    expect([e.line, e.col]).toEqual([4, 18]);
    expect(e.message).toBe(
      'out.json:4:18: not valid JSON: expected a value (an object, list, string, number, true, false or null), found "]"',
    );
    // Cut off: at the end, wherever it is.
    const cut = refusal(TEXT.slice(0, 4000));
    expect(cut.problem).toMatch(/^not valid JSON: /);
    expect(cut.line).toBe(TEXT.slice(0, 4000).split('\n').length);
    expect(refusal('').message).toBe(
      'out.json:1:1: not valid JSON: expected a value (an object, list, string, number, true, false or null), found the end of the text',
    );
  });

  it('a field of the wrong type, at the field', () => {
    const text = TEXT.replace('"kind": "read"', '"kind": 7');
    const e = refusal(text);
    const [line, col] = at('"kind": "read"');
    expect([e.line, e.col]).toEqual([line, col + '"kind": '.length]);
    expect(e.problem).toMatch(
      /^steps\[\d+\]\.kind: expected one of read, write, lock, unlock, wait, signal, alloc, free, found number 7$/,
    );
  });

  it('a missing field, at the object that lacks it', () => {
    const o = JSON.parse(TEXT);
    delete o.steps[0].fn;
    expect(refusal(JSON.stringify(o)).problem).toBe('steps[0]: missing field "fn"');
  });

  it('a finding index that does not exist', () => {
    const o = JSON.parse(TEXT);
    o.steps[0].findings = [99];
    expect(refusal(JSON.stringify(o)).problem).toMatch(
      /^steps\[0\]\.findings\[0\]: finding 99 does not exist \(the trace has \d+ findings?\)$/,
    );
  });

  it('another document, another version', () => {
    expect(refusal('[1, 2]').problem).toBe('the trace: expected an object, found a list');
    expect(refusal('{"format": "dmabuf-check-report"}').problem).toMatch(
      /^not a dmabuf-check trace: expected "format": "dmabuf-check-trace", found the string "dmabuf-check-report"/,
    );
    expect(refusal(TEXT.replace('"version": 2', '"version": 3')).problem).toBe(
      'version: trace format version 3 is newer than this dmabuf-check reads (1 to 2); read it with a newer dmabuf-check',
    );
    expect(refusal('{"format": "dmabuf-check-trace"}').problem).toBe(
      'missing field "version" (the trace format version, 1 to 2)',
    );
    expect(refusal(TEXT.replace('"version": 2', '"version": "2"')).problem).toBe(
      'version: expected the trace format version, an integer from 1 to 2, found the string "2"',
    );
  });

  it('paths as messages write them', () => {
    expect(pathText(['steps', 3, 'accesses', 0, 'mode'])).toBe('steps[3].accesses[0].mode');
    expect(pathText([])).toBe('the trace');
  });
});
