/** A command-line usage problem (a missing file, a bad output path): exit status 2. */
export class UsageError extends Error {
  readonly code = 'DMABUF_USAGE';
}
