/**
 * Reading a trace back (a `--trace` file, the JSON embedded in an `--html`
 * page, a trace the playground saved): the format and version are checked
 * first, then the shape against the trace schema (trace-schema.ts), so a
 * reader never works on a document it does not understand. Every problem is a
 * {@link TraceFormatError} naming the file; a trace of another format version
 * is a {@link TraceVersionError} with the version found and the one supported.
 * Pure: the viewer uses it in the browser.
 */
import { validate } from '../schema/validate.ts';
import { TraceFormatError, TraceVersionError } from './errors.ts';
import type { Trace } from './trace.ts';
import { traceShape } from './trace-schema.ts';
import { TRACE_FORMAT, TRACE_VERSION } from './version.ts';

export { TraceFormatError, TraceVersionError };

let schema: ReturnType<typeof traceShape> | null = null;

function shown(v: unknown): string {
  const s = v === undefined ? 'none' : JSON.stringify(v);
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}

function versionMessage(doc: Record<string, unknown>, file: string): string {
  const v = doc.version;
  const reads = `this dmabuf-check reads trace format version ${TRACE_VERSION}`;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1)
    return `the trace has no valid format version (found ${shown(v)}); ${reads}`;
  if (v > TRACE_VERSION)
    return `the trace is format version ${v}, written by a newer dmabuf-check; ${reads}: upgrade dmabuf-check to read it`;
  const sc = doc.scenario as Record<string, unknown> | null | undefined;
  const scenarioFile = sc && typeof sc === 'object' && typeof sc.file === 'string' ? sc.file : 'SCENARIO.yaml';
  const tokens = [...(Array.isArray(doc.after) ? doc.after : []), doc.token].filter(
    (t): t is string => typeof t === 'string' && /^dc1\.[0-9a-f]{8}\.[a-zA-Z0-9]*$/.test(t),
  );
  const again = tokens.length
    ? `: make it again with dmabuf-check replay ${scenarioFile} ${tokens.map((t) => `--token ${t}`).join(' ')} --trace ${file}`
    : ': make it again with dmabuf-check replay';
  return `the trace is format version ${v}, written by an older dmabuf-check; ${reads}${again}`;
}

/**
 * Checks that `doc` (parsed JSON) is a trace of the supported version and
 * returns it. Throws {@link TraceVersionError} for another version and
 * {@link TraceFormatError} for anything else.
 */
export function readTrace(doc: unknown, file: string): Trace {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc))
    throw new TraceFormatError(file, `not a dmabuf-check trace: expected a JSON object, found ${shown(doc)}`);
  const d = doc as Record<string, unknown>;
  if (d.format !== TRACE_FORMAT)
    throw new TraceFormatError(
      file,
      `not a dmabuf-check trace: "format" is ${shown(d.format)}, expected "${TRACE_FORMAT}" (a trace is what replay --json prints and --trace writes)`,
    );
  if (d.version !== TRACE_VERSION) throw new TraceVersionError(file, versionMessage(d, file), d.version, TRACE_VERSION);
  schema ??= traceShape();
  const problems = validate(schema, doc, { max: 3 });
  if (problems.length)
    throw new TraceFormatError(file, `not a valid trace of format version ${TRACE_VERSION}: ${problems.join('; ')}`);
  return doc as Trace;
}

/** {@link readTrace} of JSON text. */
export function parseTrace(text: string, file: string): Trace {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new TraceFormatError(file, `not a dmabuf-check trace: the JSON does not parse: ${(e as Error).message}`);
  }
  return readTrace(doc, file);
}
