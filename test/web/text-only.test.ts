/**
 * The viewer and the playground render every string from a scenario, a trace
 * or a driver module as text (issue 7 item 6): a scan of web/ for the ways a
 * string becomes markup, script or a URL. Preact's JSX interpolation makes
 * text nodes and attribute values; what bypasses it is listed here. The
 * browser tests (test/browser/) check the same on pages with markup and
 * `javascript:` strings in them.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers.ts';

const WEB = path.join(ROOT, 'web');

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== 'node_modules') out.push(...sources(p));
    } else if (/\.(ts|tsx|html)$/.test(e.name) && e.name !== 'inline-plugin.ts') {
      out.push(p);
    }
  }
  return out.sort();
}

/** What turns a string into markup, script or a navigation. */
const SINKS: [string, RegExp][] = [
  ['innerHTML / outerHTML', /\.(inner|outer)HTML\b/],
  ['insertAdjacentHTML', /insertAdjacentHTML/],
  ['dangerouslySetInnerHTML', /dangerouslySetInnerHTML/],
  ['document.write', /document\.write/],
  ['DOMParser / createContextualFragment', /DOMParser|createContextualFragment/],
  ['srcdoc', /srcdoc/i],
  ['eval / new Function / string timers', /\beval\(|new Function\(|set(Timeout|Interval)\(\s*['"`]/],
  [
    'a URL attribute set from an expression (href, src, action, formAction, xlink:href)',
    /\b(href|src|action|formAction|xlinkHref|xlink:href)=\{/,
  ],
  ['setAttribute of a URL or event attribute', /setAttribute\(\s*['"](href|src|action|formaction|srcdoc|on\w+)['"]/i],
  ['location / window.open', /\b(location\s*(\.href)?\s*=|location\.(assign|replace)\(|window\.open\()/],
  ['a Markdown or Mermaid renderer', /from\s+['"](marked|markdown-it|mermaid|dompurify|sanitize-html)['"]/],
];

/** Reviewed exceptions: file, the exact line, why it is safe. */
const ALLOWED: [string, string, string][] = [
  [
    'web/playground/App.tsx',
    'a.href = url;',
    'download(): the URL is URL.createObjectURL of a Blob the page made, never a scenario string',
  ],
];

describe('web/: scenario and trace strings are rendered as text', () => {
  const files = sources(WEB);

  it('scans the viewer, the playground and their components', () => {
    const rel = files.map((f) => path.relative(ROOT, f));
    expect(rel).toContain('web/components/Viewer.tsx');
    expect(rel).toContain('web/playground/App.tsx');
    expect(rel).toContain('web/viewer/main.tsx');
  });

  it('no HTML, script or URL sink takes a string', () => {
    const found: string[] = [];
    for (const f of files) {
      const rel = path.relative(ROOT, f);
      readFileSync(f, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          const code = line.replace(/\/\/.*$|^\s*\*.*$|\/\*.*?\*\//g, '');
          for (const [what, re] of SINKS) {
            if (!re.test(code)) continue;
            if (ALLOWED.some(([file, text]) => file === rel && line.trim() === text)) continue;
            found.push(`${rel}:${i + 1}: ${what}: ${line.trim()}`);
          }
        });
    }
    expect(found).toEqual([]);
  });

  it('would catch one (the scan can fail)', () => {
    const hits = (s: string) => SINKS.filter(([, re]) => re.test(s)).map(([w]) => w);
    expect(hits('el.innerHTML = trace.scenario.name;')).toHaveLength(1);
    expect(hits('<a href={step.op}>')).toHaveLength(1);
    expect(hits('<div dangerouslySetInnerHTML={{ __html: f.message }} />')).toHaveLength(1);
    expect(hits("p.setAttribute('onclick', x)")).toHaveLength(1);
    expect(hits('p.textContent = problem;')).toEqual([]);
  });

  it('the one reviewed exception is still there (or this list is stale)', () => {
    for (const [file, text] of ALLOWED) {
      const lines = readFileSync(path.join(ROOT, file), 'utf8').split('\n');
      expect(lines.map((l) => l.trim())).toContain(text);
    }
  });
});
