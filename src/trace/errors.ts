/**
 * Errors reading a trace back (trace/load.ts). Apart from the loader so the
 * command line can recognise them without loading the trace code.
 */

/** A document that is not a trace this version of dmabuf-check can read. */
export class TraceFormatError extends Error {
  readonly code: string = 'DMABUF_TRACE_INVALID';
  constructor(
    /** The file (or page) the trace came from. */
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
  }
}

/** A trace of another format version. */
export class TraceVersionError extends TraceFormatError {
  override readonly code = 'DMABUF_TRACE_VERSION';
  constructor(
    file: string,
    message: string,
    /** The `version` the document has (any JSON value; undefined when absent). */
    readonly found: unknown,
    /** The version this dmabuf-check reads. */
    readonly supported: number,
  ) {
    super(file, message);
  }
}
