/**
 * Putting a trace into the built viewer page (dist/web/viewer/index.html):
 * the page holds `<script type="application/json" id="trace">null</script>`
 * and reads that element's text on load. Browser-safe (no file system).
 */
import type { Trace } from '../trace/trace.ts';

export const TRACE_OPEN = '<script type="application/json" id="trace">';
export const TRACE_PLACEHOLDER = `${TRACE_OPEN}null</script>`;

/**
 * JSON that can sit inside a `<script>` element: `<`, `>` and `&` become
 * `\u003c`, `\u003e`, `\u0026`, so no scenario string can close the element
 * (`</script>`) or open a comment (`<!--`); U+2028 and U+2029 are escaped
 * too. `JSON.parse` gives back the same value.
 */
export function scriptSafeJson(value: unknown): string {
  return JSON.stringify(value).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** The viewer page with `trace` embedded. Throws when the page has no placeholder. */
export function embedTrace(page: string, trace: Trace): string {
  const at = page.indexOf(TRACE_PLACEHOLDER);
  if (at < 0) throw new Error('the viewer page has no trace placeholder (was it built by npm run build:web?)');
  return `${page.slice(0, at)}${TRACE_OPEN}${scriptSafeJson(trace)}</script>${page.slice(at + TRACE_PLACEHOLDER.length)}`;
}
