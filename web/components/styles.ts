/**
 * The viewer's style sheet, rendered by the component itself in a <style>
 * element so that every page embedding the viewer gets it. Monospace, compact,
 * system fonts only (no network).
 */
export const VIEWER_CSS = `
.dv-root {
  --fg: #1f2328; --dim: #6e7781; --line: #d0d7de; --band: #f6f8fa; --sel: #ddf4ff; --sel-edge: #0969da;
  --bad: #cf222e; --bad-bg: #ffebe9; --warn: #9a6700; --good: #1a7f37; --op: #8250df; --match: #fff8c5;
  --lock: #dbe9ff; --lock-edge: #4a7bd0; --sync: #ffe7c7; --sync-edge: #c46a00; --mem: #dafbe1; --mem-edge: #3f9a55;
  --free: #f2e2ff; --free-edge: #8250df; --rw: #ffffff; --rw-edge: #8c959f;
  display: flex; flex-direction: column; height: 100%; min-height: 520px; max-height: 100vh; box-sizing: border-box;
  color: var(--fg); background: #fff;
  font: 12px/1.35 ui-monospace, 'DejaVu Sans Mono', 'Liberation Mono', Menlo, Consolas, monospace;
}
.dv-root *, .dv-root *::before, .dv-root *::after { box-sizing: border-box; }
.dv-root button, .dv-root input { font: inherit; }
.dv-dim { color: var(--dim); }
.dv-bad { color: var(--bad); }
.dv-warn { color: var(--warn); }
.dv-good { color: var(--good); }
.dv-name { font-weight: 600; }
.dv-none { color: var(--dim); margin: 4px 0; }
.dv-note { color: var(--dim); font-weight: normal; margin-left: 8px; }
.dv-count { color: var(--dim); font-weight: normal; }

.dv-top { padding: 6px 10px; border-bottom: 1px solid var(--line); background: var(--band); }
.dv-title { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.dv-bar { display: flex; align-items: center; gap: 6px; margin-top: 4px; flex-wrap: wrap; }
.dv-spacer { flex: 1; }
.dv-chip { border: 1px solid var(--bad); color: var(--bad); background: var(--bad-bg); border-radius: 10px;
  padding: 0 8px; cursor: pointer; }
.dv-search input { width: 15em; padding: 1px 4px; border: 1px solid var(--line); border-radius: 3px; }
.dv-search-count { min-width: 8em; }
.dv-btn { border: 1px solid var(--line); background: #fff; border-radius: 3px; padding: 0 6px; cursor: pointer; }
.dv-btn:disabled { opacity: .4; cursor: default; }

.dv-main { display: flex; flex: 1; min-height: 0; }
.dv-left { display: flex; flex-direction: column; flex: 1 1 auto; min-width: 0; }
.dv-diagram { position: relative; flex: 1 1 60%; min-height: 120px; overflow: auto; outline: none; }
.dv-lanes-head { position: sticky; top: 0; z-index: 2; height: 22px; background: #fff; border-bottom: 1px solid var(--line); }
.dv-lane-head { position: absolute; top: 0; height: 22px; line-height: 22px; text-align: center; font-weight: 600;
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis; padding: 0 4px; }
.dv-lane-head.is-current { color: var(--sel-edge); border-bottom: 2px solid var(--sel-edge); }
.dv-svg { display: block; font-size: 11px; overflow: visible; }
.dv-svg text { font-family: inherit; font-size: 11px; dominant-baseline: auto; }
.dv-lane-band { fill: #fafbfc; }
.dv-lane-line { stroke: var(--line); stroke-width: 1; }
.dv-row { fill: transparent; }
.dv-step { cursor: pointer; }
.dv-step text { pointer-events: none; }
.dv-step:hover .dv-row { fill: #f3f4f6; }
.dv-step.is-finding .dv-row { fill: var(--bad-bg); }
.dv-step.is-selected .dv-row { fill: var(--sel); }
.dv-n { fill: var(--dim); }
.dv-step.is-selected .dv-n { fill: var(--sel-edge); font-weight: 700; }
.dv-box { stroke-width: 1; }
.k-lock .dv-box { fill: var(--lock); stroke: var(--lock-edge); }
.k-sync .dv-box { fill: var(--sync); stroke: var(--sync-edge); }
.k-mem .dv-box { fill: var(--mem); stroke: var(--mem-edge); }
.k-free .dv-box { fill: var(--free); stroke: var(--free-edge); }
.k-rw .dv-box { fill: var(--rw); stroke: var(--rw-edge); }
.dv-step.is-finding .dv-box { stroke: var(--bad); stroke-width: 2; }
.dv-step.is-match .dv-box { fill: var(--match); stroke: var(--warn); stroke-width: 2; }
.dv-step.is-selected .dv-box { stroke: var(--sel-edge); stroke-width: 2; }
.dv-step.is-dim { opacity: .3; }
.dv-fn { fill: var(--fg); }
.dv-ann { fill: var(--dim); }
.dv-ann-op { fill: var(--op); font-weight: 600; }
.dv-ann-finding { fill: var(--bad); font-weight: 700; }
.dv-arrow { fill: none; stroke-width: 1.5; pointer-events: none; }
.dv-arrow-lock { stroke: var(--lock-edge); stroke-dasharray: 4 3; }
.dv-arrow-sync { stroke: var(--sync-edge); }
.dv-head-lock { fill: var(--lock-edge); }
.dv-head-sync { fill: var(--sync-edge); }

.dv-legend { display: flex; flex-wrap: wrap; gap: 4px 12px; padding: 3px 10px; border-top: 1px solid var(--line);
  border-bottom: 1px solid var(--line); background: var(--band); font-size: 11px; }
.dv-key { display: inline-block; width: 14px; height: 9px; border: 1px solid; border-radius: 2px; vertical-align: middle; }
.dv-key.k-lock { background: var(--lock); border-color: var(--lock-edge); }
.dv-key.k-sync { background: var(--sync); border-color: var(--sync-edge); }
.dv-key.k-mem { background: var(--mem); border-color: var(--mem-edge); }
.dv-key.k-free { background: var(--free); border-color: var(--free-edge); }
.dv-key.k-rw { background: var(--rw); border-color: var(--rw-edge); }
.dv-line { display: inline-block; width: 22px; height: 0; vertical-align: middle; border-top: 2px solid; }
.dv-line-lock { border-top-style: dashed; border-color: var(--lock-edge); }
.dv-line-sync { border-color: var(--sync-edge); }

.dv-findings { flex: 0 1 38%; min-height: 80px; overflow: auto; padding: 4px 10px; position: relative; }
.dv-report { border-left: 3px solid transparent; padding-left: 6px; margin-bottom: 6px; }
.dv-report.is-current { border-left-color: var(--bad); background: #fffafa; }
.dv-report-head { border: none; background: none; padding: 0; color: var(--bad); font-weight: 700; cursor: pointer; }
.dv-report pre { margin: 2px 0 0; white-space: pre-wrap; word-break: break-word; font: inherit; font-size: 11px; }

.dv-side { flex: 0 0 38%; max-width: 620px; min-width: 340px; overflow: auto; border-left: 1px solid var(--line);
  padding: 6px 10px; }
.dv-step-head { padding-bottom: 6px; border-bottom: 1px solid var(--line); }
.dv-sub { margin-top: 2px; }
.dv-state-title { margin: 6px 0 2px; color: var(--dim); }
.dv-section { margin-top: 6px; }
.dv-section h3 { font-size: 12px; margin: 0 0 2px; text-transform: uppercase; letter-spacing: .04em; }
.dv-section summary { cursor: pointer; color: var(--dim); }
.dv-section table { border-collapse: collapse; }
.dv-section th { text-align: left; color: var(--dim); font-weight: normal; padding: 0 9px 0 0; }
.dv-section td { padding: 0 9px 0 0; vertical-align: top; white-space: nowrap; }
.dv-section td.dv-wrap { white-space: normal; }
.dv-buf { margin-bottom: 3px; }
.dv-buf .dv-sub { padding-left: 1.5em; }
.is-changed { box-shadow: inset 3px 0 0 #d4a72c; background: #fffbe6; }
tr.is-changed td:first-child { padding-left: 5px; }
tr.is-stale { background: var(--bad-bg); color: var(--bad); }
.dv-badge { display: inline-block; padding: 0 4px; border-radius: 3px; font-size: 11px; }
.st-free { background: #eaeef2; color: var(--dim); }
.st-allocated { background: var(--mem); color: var(--good); }
.st-mmio { background: var(--lock); color: #0550ae; }
.st-mmio-revoked { background: var(--bad-bg); color: var(--bad); }
.st-stale { background: var(--bad); color: #fff; font-weight: 700; margin-left: 6px; }
.dv-held { color: var(--sel-edge); }
.dv-json { font: inherit; font-size: 11px; white-space: pre-wrap; word-break: break-word; margin: 2px 0; }
`;
