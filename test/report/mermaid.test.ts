/**
 * The trace renderers that need no browser: the Mermaid sequenceDiagram
 * (golden file for a catalogue bug, statement shapes, escaping), the links the
 * viewer and the diagram draw (lock hand-over, signal → wait), and the JSON
 * embedded in the HTML page.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadDriverModules } from '../../src/cli/files.ts';
import { embedTrace, scriptSafeJson, TRACE_PLACEHOLDER } from '../../src/report/html-embed.ts';
import { mermaidText, traceMermaid } from '../../src/report/mermaid.ts';
import { findingSteps, traceLinks } from '../../src/report/trace-links.ts';
import { compile } from '../../src/scenario/compile.ts';
import { loadScenario } from '../../src/scenario/load-yaml.ts';
import type { ScenarioSpec } from '../../src/scenario/spec.ts';
import { replayToken } from '../../src/trace/replay.ts';
import type { Trace } from '../../src/trace/trace.ts';
import { check, loadFile, ROOT } from '../helpers.ts';
import { ARG_VALUE, LOCK_NAME, STEP_NAME } from './fixtures/markup-driver.ts';

function counterexampleTrace(spec: ScenarioSpec, file: string): Trace {
  const r = check(spec);
  if (!r.counterexample) throw new Error(`${spec.name}: no counterexample`);
  return replayToken(compile(spec), r.counterexample.token, file).trace;
}

function catalogueTrace(name: string): Trace {
  const file = `scenarios/${name}.yaml`;
  return counterexampleTrace(loadFile(path.join(ROOT, file)), file);
}

async function markupTrace(): Promise<Trace> {
  const file = path.join(ROOT, 'test/report/fixtures/markup-names.yaml');
  const text = readFileSync(file, 'utf8');
  const modules = await loadDriverModules(file, text);
  return counterexampleTrace(loadScenario(text, 'markup-names.yaml', { modules }), 'markup-names.yaml');
}

/** The statements the renderer may emit, each on one line. */
const STATEMENT = [
  /^sequenceDiagram$/,
  /^ {2}title [^\n]+$/,
  /^ {2}participant T\d+ as [^\n#;<&%]+$/,
  /^ {2}T\d+(->>|-->>)T\d+: [^\n]+$/,
  /^ {2}Note (over|right of) T\d+: [^\n]+$/,
];

function expectValidMermaid(text: string, trace: Trace): void {
  expect(text.endsWith('\n')).toBe(true);
  const lines = text.slice(0, -1).split('\n');
  for (const line of lines) {
    expect(
      STATEMENT.some((re) => re.test(line)),
      `not a statement the renderer emits: ${line}`,
    ).toBe(true);
    // After the first colon, Mermaid takes the text up to "#" or ";" and would render "<" and "&" as HTML.
    const text = line.includes(': ') ? line.slice(line.indexOf(': ') + 2) : '';
    expect(text.replace(/#\d+;/g, ''), line).not.toMatch(/[#;<&%]/);
  }
  // Every participant a message or note uses is declared, one per thread, in order.
  const declared = lines.filter((l) => l.startsWith('  participant ')).map((l) => l.split(' ')[3]);
  expect(declared).toEqual(trace.threads.map((_, i) => `T${i}`));
  for (const l of lines) for (const id of l.match(/\bT\d+\b/g) ?? []) expect(declared).toContain(id);
}

describe('mermaid sequenceDiagram', () => {
  const trace = catalogueTrace('kvm-unlocked-no-retry-vs-ttm-move');
  const text = traceMermaid(trace);

  it('golden file: kvm-unlocked-no-retry-vs-ttm-move', async () => {
    await expect(text).toMatchFileSnapshot('__snapshots__/kvm-unlocked-no-retry-vs-ttm-move.mmd');
  });

  it('is made of valid statements, one participant per thread', () => {
    expectValidMermaid(text, trace);
  });

  it('shows every step of the scenario threads, folds setup and teardown, notes the findings', () => {
    for (const s of trace.steps) {
      const shown = text.includes(`: ${s.n} ${mermaidText(s.fn)}`);
      if (s.thread === 'setup' || s.thread === 'teardown') expect(shown, `step ${s.n}`).toBe(s.findings.length > 0);
      else expect(shown, `step ${s.n}`).toBe(true);
    }
    expect(text).toMatch(/^ {2}Note over T0: setup: steps 1–\d+: export bo \(ttm\), attach kvm \(kvm\)$/m);
    expect(text).toMatch(/^ {2}Note over T1: step 28 stale-mapping: /m);
    expect(text).toMatch(/^ {2}Note over T1: step 31 use-after-free: BUG: KASAN: use-after-free in vcpu_enter_guest/m);
    expect(text).toMatch(/^ {2}Note right of T2: bo\.move$/m);
  });

  it('draws a lock handed over between threads as a message from the releasing thread', () => {
    // evictor drops kvm->mmu_lock at step 16; vcpu0 takes it at 27.
    expect(text).toMatch(/^ {2}T2-->>T1: 27 read_lock \(kvm->mmu_lock\), released at 16$/m);
  });

  it('draws a fence signalled then waited for as a message from the signalling thread', () => {
    const t = catalogueTrace('vfio-revoke-importer-never-unmaps');
    const m = traceMermaid(t);
    expectValidMermaid(m, t);
    expect(m).toMatch(/^ {2}T1-->>T2: \d+ dma_fence_wait \(nic:job#35;1\), signalled at \d+$/m);
  });

  it('escapes what Mermaid cannot take: names made of markup stay text', async () => {
    const t = await markupTrace();
    const m = traceMermaid(t);
    expectValidMermaid(m, t);
    expect(m).not.toContain('<');
    expect(m).toContain(mermaidText(LOCK_NAME));
    expect(m).toContain(mermaidText(STEP_NAME));
    expect(m).toContain(mermaidText(ARG_VALUE));
    expect(mermaidText('a;b#c<d&e%f\ng')).toBe('a#59;b#35;c#60;d#38;e#37;f g');
  });
});

describe('trace links', () => {
  it('lock hand-over: a release by one thread, the next acquisition by another', () => {
    const t = catalogueTrace('kvm-unlocked-no-retry-vs-ttm-move');
    const links = traceLinks(t);
    expect(links).toContainEqual({ kind: 'lock-handover', from: 16, to: 27, object: 'kvm->mmu_lock' });
    const byN = new Map(t.steps.map((s) => [s.n, s]));
    for (const l of links) {
      const a = byN.get(l.from);
      const b = byN.get(l.to);
      expect(a?.thread).not.toBe(b?.thread);
      expect([a?.thread, b?.thread]).not.toContain('setup');
      expect([a?.thread, b?.thread]).not.toContain('teardown');
      expect(a?.object).toBe(l.object);
      expect(b?.object).toBe(l.object);
      expect(l.from).toBeLessThan(l.to);
      expect([a?.kind, b?.kind]).toEqual(l.kind === 'lock-handover' ? ['unlock', 'lock'] : ['signal', 'wait']);
    }
    // SRCU is not a lock: no hand-over is drawn for kvm->srcu.
    expect(links.some((l) => l.object === 'kvm->srcu')).toBe(false);
    expect([...findingSteps(t)]).toEqual([28, 31]);
  });

  it('signal → wait: a fence signalled by one thread, then waited for by another', () => {
    const t = catalogueTrace('vfio-revoke-importer-never-unmaps');
    const sw = traceLinks(t).filter((l) => l.kind === 'signal-wait');
    expect(sw).toHaveLength(1);
    const byN = new Map(t.steps.map((s) => [s.n, s]));
    expect(byN.get(sw[0]?.from ?? 0)).toMatchObject({ thread: 'dev', kind: 'signal', object: 'nic:job#1' });
    expect(byN.get(sw[0]?.to ?? 0)).toMatchObject({ thread: 'vmm', kind: 'wait', object: 'nic:job#1' });
  });
});

describe('the trace embedded in the HTML page', () => {
  it('JSON that cannot close the script element and parses back to the same value', () => {
    const v = { name: '</script><script>alert(1)</script>', c: '<!-- -->', amp: 'a&b', ls: 'x\u2028y\u2029z', gt: '>' };
    const s = scriptSafeJson(v);
    expect(s).not.toMatch(/[<>&\u2028\u2029]/);
    expect(s).toContain('\\u003c/script\\u003e');
    expect(JSON.parse(s)).toEqual(v);
  });

  it('replaces the placeholder, and only it', async () => {
    const t = await markupTrace();
    const page = `<html><head><script type="module">var a = 1;</script></head><body>${TRACE_PLACEHOLDER}</body></html>`;
    const html = embedTrace(page, t);
    expect(html.match(/<script/gi)).toHaveLength(2);
    expect(html.match(/<\/script/gi)).toHaveLength(2);
    const json = /<script type="application\/json" id="trace">([^<]*)<\/script>/.exec(html)?.[1] ?? '';
    expect(JSON.parse(json)).toEqual(JSON.parse(JSON.stringify(t)));
    expect(() => embedTrace('<html></html>', t)).toThrow(/placeholder/);
  });
});
