/**
 * The trace format's name and version (docs/trace-format.md), apart from the
 * recorder so that readers (the viewer, trace/load.ts) do not pull in the model.
 */
export const TRACE_FORMAT = 'dmabuf-check-trace';
/** 2: every step carries the whole machine's state after it (`world`). */
export const TRACE_VERSION = 2;
