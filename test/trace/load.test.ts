/**
 * Reading a trace back (issue 7 item 5): the library loader, `dmabuf-check
 * show`, and what each says about a trace of another format version — a typed
 * error naming the file, the version found and the version supported, never
 * a crash.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { TRACE_OPEN } from '../../src/report/html-embed.ts';
import { JSON_SCHEMA_VERSION } from '../../src/report/json.ts';
import { compile } from '../../src/scenario/compile.ts';
import { parseTrace, readTrace, TraceFormatError, TraceVersionError } from '../../src/trace/load.ts';
import { replayToken } from '../../src/trace/replay.ts';
import { TRACE_FORMAT, TRACE_VERSION, type Trace } from '../../src/trace/trace.ts';
import { check, loadFile, ROOT, runCli } from '../helpers.ts';

const SCENARIO = 'scenarios/kvm-unlocked-no-retry-vs-ttm-move.yaml';

function realTrace(): Trace {
  const spec = loadFile(path.join(ROOT, SCENARIO));
  const r = check(spec);
  const { trace } = replayToken(compile(spec), r.counterexample?.token as string, SCENARIO);
  return JSON.parse(JSON.stringify(trace)) as Trace;
}

/** The error `fn` throws (fails the test when it returns). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected an error');
}

describe('readTrace / parseTrace', () => {
  const trace = realTrace();
  const text = JSON.stringify(trace);

  it('gives back a trace of this version', () => {
    expect(trace.version).toBe(TRACE_VERSION);
    expect(parseTrace(text, 't.json')).toEqual(trace);
    expect(readTrace(trace, 't.json')).toBe(trace);
  });

  it('an older version: a TraceVersionError with the file, both versions and the command that makes it again', () => {
    const e = thrown(() => parseTrace(JSON.stringify({ ...trace, version: 1 }), 'old.json'));
    expect(e).toBeInstanceOf(TraceVersionError);
    expect(e).toBeInstanceOf(TraceFormatError);
    const v = e as TraceVersionError;
    expect(v.code).toBe('DMABUF_TRACE_VERSION');
    expect(v.file).toBe('old.json');
    expect(v.found).toBe(1);
    expect(v.supported).toBe(TRACE_VERSION);
    expect(v.message).toBe(
      `old.json: the trace is format version 1, written by an older dmabuf-check; this dmabuf-check reads trace format version ${TRACE_VERSION}: make it again with dmabuf-check replay ${SCENARIO} --token ${trace.token} --trace old.json`,
    );
  });

  it('a newer version: upgrade', () => {
    const e = thrown(() => readTrace({ ...trace, version: TRACE_VERSION + 1 }, 'new.json')) as TraceVersionError;
    expect(e).toBeInstanceOf(TraceVersionError);
    expect(e.found).toBe(TRACE_VERSION + 1);
    expect(e.message).toMatch(
      new RegExp(
        `^new\\.json: the trace is format version ${TRACE_VERSION + 1}, written by a newer dmabuf-check; this dmabuf-check reads trace format version ${TRACE_VERSION}: upgrade`,
      ),
    );
  });

  it('no version, or not an integer', () => {
    for (const version of [undefined, '2', 2.5, null, -1]) {
      const e = thrown(() => readTrace({ ...trace, version }, 'v.json')) as TraceVersionError;
      expect(e, String(version)).toBeInstanceOf(TraceVersionError);
      expect(e.found).toBe(version);
      expect(e.message).toMatch(
        /^v\.json: the trace has no valid format version \(found .+\); this dmabuf-check reads/,
      );
    }
  });

  it('not a trace: another format, not an object, not JSON', () => {
    const cases: [() => unknown, RegExp][] = [
      [
        () => readTrace({ ...trace, format: 'other' }, 'a.json'),
        /^a\.json: not a dmabuf-check trace: "format" is "other"/,
      ],
      [() => readTrace({ version: 1, results: [] }, 'a.json'), /"format" is none, expected "dmabuf-check-trace"/],
      [() => readTrace([trace], 'a.json'), /^a\.json: not a dmabuf-check trace: expected a JSON object/],
      [() => parseTrace('{"format":', 'a.json'), /^a\.json: not a dmabuf-check trace: the JSON does not parse/],
    ];
    for (const [fn, message] of cases) {
      const e = thrown(fn) as TraceFormatError;
      expect(e).toBeInstanceOf(TraceFormatError);
      expect(e).not.toBeInstanceOf(TraceVersionError);
      expect(e.code).toBe('DMABUF_TRACE_INVALID');
      expect(e.message).toMatch(message);
    }
  });

  it('a trace of this version with a broken shape: where, in the schema’s words', () => {
    const steps = trace.steps.map((s, i) => (i === 2 ? { ...s, world: undefined } : s));
    const e = thrown(() => parseTrace(JSON.stringify({ ...trace, steps }), 'b.json')) as TraceFormatError;
    expect(e).toBeInstanceOf(TraceFormatError);
    expect(e.message).toMatch(
      /^b\.json: not a valid trace of format version 2: \$\.steps\[2\]: missing required property "world"/,
    );
    const e2 = thrown(() => readTrace({ ...trace, threads: 'setup' }, 'b.json')) as TraceFormatError;
    expect(e2.message).toMatch(/\$\.threads: expected array, found string/);
  });

  it('accepts fields it does not know (a field may be added within a version)', () => {
    expect(readTrace({ ...trace, added: { x: 1 } }, 't.json')).toBeTruthy();
  });

  it('anything else is a TraceFormatError, never another exception', () => {
    const mutated = fc.oneof(
      fc.jsonValue(),
      fc.record({ format: fc.constant(TRACE_FORMAT), version: fc.constant(TRACE_VERSION) }, { requiredKeys: [] }),
      fc
        .tuple(fc.constantFrom(...Object.keys(trace)), fc.jsonValue())
        .map(([k, v]) => ({ ...trace, [k]: v }) as unknown),
    );
    fc.assert(
      fc.property(mutated, (doc) => {
        try {
          readTrace(doc, 'f.json');
        } catch (e) {
          expect(e).toBeInstanceOf(TraceFormatError);
        }
      }),
      { numRuns: 300, seed: 3 },
    );
  });
});

describe('every JSON output carries its format version', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dmabuf-versions-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('check --json (also with --count): version; check --trace, replay --json and the --html page: format and version', () => {
    for (const extra of [[], ['--count']]) {
      const doc = JSON.parse(runCli(['check', SCENARIO, '--json', ...extra]).stdout);
      expect(doc.version, extra.join()).toBe(JSON_SCHEMA_VERSION);
    }
    const json = path.join(dir, 't.json');
    const html = path.join(dir, 't.html');
    const r = runCli(['check', SCENARIO, '--trace', json, '--html', html]);
    const traces = [readFileSync(json, 'utf8')];
    if (r.code === 0) {
      const page = readFileSync(html, 'utf8');
      const start = page.indexOf(TRACE_OPEN) + TRACE_OPEN.length;
      traces.push(page.slice(start, page.indexOf('</script>', start)));
    } else {
      expect(r.stderr).toMatch(/run npm run build:web/); // no built viewer here
    }
    const token = JSON.parse(traces[0] as string).token;
    traces.push(runCli(['replay', SCENARIO, '--token', token, '--json']).stdout);
    for (const t of traces) {
      const trace = parseTrace(t, 'out');
      expect([trace.format, trace.version]).toEqual([TRACE_FORMAT, TRACE_VERSION]);
    }
  });
});

describe('dmabuf-check show TRACE.json', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dmabuf-show-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const trace = realTrace();
  const write = (name: string, doc: unknown) => {
    const f = path.join(dir, name);
    writeFileSync(f, typeof doc === 'string' ? doc : JSON.stringify(doc));
    return f;
  };

  it('prints the trace as replay does, with the reports', () => {
    const replayed = runCli(['replay', SCENARIO, '--token', trace.token]);
    const r = runCli(['show', write('ok.json', trace)]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(replayed.stdout);
    expect(r.stdout).toMatch(/BUG: KASAN: use-after-free/);
  });

  it('--mermaid prints the diagram; --html writes the viewer page', () => {
    const r = runCli(['show', write('m.json', trace), '--mermaid']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^sequenceDiagram\n/);
    const html = path.join(dir, 'out.html');
    const h = runCli(['show', write('h.json', trace), '--html', html]);
    if (h.code === 2 && /run npm run build:web/.test(h.stderr)) return; // no built viewer here
    expect(h.code).toBe(0);
    expect(readFileSync(html, 'utf8')).toContain(
      `${TRACE_OPEN}{"format":"${TRACE_FORMAT}","version":${TRACE_VERSION},`,
    );
  });

  it('a trace of another version: exit 2, the file, the version found and the one supported', () => {
    const f = write('old.json', { ...trace, version: 1 });
    const r = runCli(['show', f]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      `dmabuf-check: ${f}: the trace is format version 1, written by an older dmabuf-check; this dmabuf-check reads trace format version ${TRACE_VERSION}: make it again with dmabuf-check replay ${SCENARIO} --token ${trace.token} --trace ${f}\n`,
    );
    const n = runCli(['show', write('new.json', { ...trace, version: 9 })]);
    expect(n.code).toBe(2);
    expect(n.stderr).toMatch(/new\.json: the trace is format version 9, written by a newer dmabuf-check/);
  });

  it('not a trace, not JSON, no such file: exit 2 with one line, no stack', () => {
    for (const [file, message] of [
      [write('result.json', { version: 1, results: [] }), /result\.json: not a dmabuf-check trace: "format" is none/],
      [
        write('bad.json', '{"format": "dmabuf-check-trace", '),
        /bad\.json: not a dmabuf-check trace: the JSON does not parse/,
      ],
      [path.join(dir, 'nope.json'), /nope\.json: no such file/],
    ] as const) {
      const r = runCli(['show', file]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  });
});
