/**
 * The counterexample as files and diagrams from the command line: `check
 * --trace/--html/--mermaid`, `replay --html/--mermaid`; one file per scenario
 * when several are checked; nothing for a safe scenario; a lock-order trace
 * replays the executions it requires first; scenario strings made of markup
 * cannot run in the HTML page. Needs the built viewer (npm run build:web).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageError } from '../../src/cli/files.ts';
import { counterexampleTrace, outputPath, VIEWER_PAGE, viewerPage } from '../../src/cli/outputs.ts';
import {
  defineImporter,
  type ImporterEnv,
  type KGen,
  Lock,
  mutex_lock,
  mutex_unlock,
  SharedObject,
  type Task,
} from '../../src/index.ts';
import { TRACE_FORMAT, TRACE_VERSION, type Trace } from '../../src/trace/trace.ts';
import { type CliRun, check, fromYaml, runCli } from '../helpers.ts';
import { ARG_VALUE, LOCK_NAME, STEP_NAME } from '../report/fixtures/markup-driver.ts';

const BUG = 'scenarios/kvm-unlocked-no-retry-vs-ttm-move.yaml';
const LOCKS = 'scenarios/ww-abba-without-context.yaml';
const SAFE = 'scenarios/ttm-move-vs-dma-dynamic.yaml';
const MARKUP = 'test/report/fixtures/markup-names.yaml';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'dmabuf-html-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const out = (f: string) => path.join(tmp, f);

/** The JSON inside the page's trace element. */
function embedded(html: string): unknown {
  const m = /<script type="application\/json" id="trace">([^<]*)<\/script>/.exec(html);
  if (!m) throw new Error('no trace element');
  return JSON.parse(m[1] as string);
}

function written(r: CliRun): string[] {
  return [...r.stderr.matchAll(/^wrote (.+)$/gm)].map((m) => m[1] as string);
}

beforeAll(() => {
  if (!existsSync(VIEWER_PAGE)) throw new Error(`${VIEWER_PAGE} is missing: run npm run build:web first`);
});

describe('check --trace --html', () => {
  let run: CliRun;
  let token: string;
  beforeAll(() => {
    run = runCli(['check', BUG, '--trace', out('bug.json'), '--html', out('bug.html')]);
    token = /^replay: (\S+)$/m.exec(run.stdout)?.[1] ?? '';
  });

  it('writes the versioned trace of the counterexample and says so on stderr', () => {
    expect(run.code, run.stderr).toBe(0);
    expect(written(run)).toEqual([out('bug.json'), out('bug.html')]);
    const trace = JSON.parse(readFileSync(out('bug.json'), 'utf8')) as Trace;
    expect(trace).toMatchObject({ format: TRACE_FORMAT, version: TRACE_VERSION, token });
    expect(trace.scenario.file).toBe(BUG);
    expect(trace.findings.map((f) => f.code)).toEqual(['stale-mapping', 'use-after-free']);
    expect(trace.steps.every((s) => s.world !== undefined)).toBe(true);
  });

  it('the trace is the one replay prints for the token', () => {
    const replay = runCli(['replay', BUG, '--token', token, '--json']);
    expect(JSON.parse(replay.stdout)).toEqual(JSON.parse(readFileSync(out('bug.json'), 'utf8')));
  });

  it('the HTML page is one self-contained file with the trace embedded', () => {
    const html = readFileSync(out('bug.html'), 'utf8');
    expect(embedded(html)).toEqual(JSON.parse(readFileSync(out('bug.json'), 'utf8')));
    // Everything inline: no script or style loaded from elsewhere, no network.
    expect(html).not.toMatch(/<script[^>]*\ssrc=/i);
    expect(html).not.toMatch(/<link[^>]*stylesheet/i);
    expect(html).not.toMatch(/https?:\/\/(?!www\.w3\.org)/);
    expect(html.match(/<script/gi)).toHaveLength(2);
  });

  it('the text output is unchanged', () => {
    expect(run.stdout).toMatch(/^PASS kvm-unlocked-no-retry-vs-ttm-move /);
    expect(run.stdout).toContain('BUG: KASAN: use-after-free in vcpu_enter_guest');
  });
});

describe('several scenarios', () => {
  let run: CliRun;
  beforeAll(() => {
    run = runCli(['check', BUG, SAFE, LOCKS, '--html', out('many.html'), '--trace', out('many')]);
  });

  it('one file per scenario with a counterexample, the name before the extension', () => {
    expect(run.code, run.stderr).toBe(0);
    expect(written(run)).toEqual([
      out('many.kvm-unlocked-no-retry-vs-ttm-move'),
      out('many.kvm-unlocked-no-retry-vs-ttm-move.html'),
      out('many.ww-abba-without-context'),
      out('many.ww-abba-without-context.html'),
    ]);
    for (const f of written(run)) expect(existsSync(f), f).toBe(true);
    const t = embedded(readFileSync(out('many.ww-abba-without-context.html'), 'utf8')) as Trace;
    expect(t.scenario.name).toBe('ww-abba-without-context');
  });

  it('a safe scenario: says there is no counterexample, writes nothing', () => {
    expect(run.stderr).toContain('ttm-move-vs-dma-dynamic: no counterexample (verdict safe): nothing written');
    expect(existsSync(out('many.ttm-move-vs-dma-dynamic.html'))).toBe(false);
    const one = runCli(['check', SAFE, '--html', out('safe.html'), '--trace', out('safe.json')]);
    expect(one.code).toBe(0);
    expect(written(one)).toEqual([]);
    expect(existsSync(out('safe.html')) || existsSync(out('safe.json'))).toBe(false);
  });

  it('outputPath', () => {
    expect(outputPath('out.html', 'x', false)).toBe('out.html');
    expect(outputPath('dir/out.html', 'x', true)).toBe('dir/out.x.html');
    expect(outputPath('dir.d/out', 'x', true)).toBe('dir.d/out.x');
  });
});

describe('--mermaid', () => {
  it('check: the diagram on stdout, the reports on stderr', () => {
    const r = runCli(['check', BUG, '--mermaid']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^sequenceDiagram\n {2}title kvm-unlocked-no-retry-vs-ttm-move/);
    expect(r.stdout).not.toContain('PASS');
    expect(r.stderr).toMatch(/^PASS kvm-unlocked-no-retry-vs-ttm-move /m);
    expect(r.stderr).toContain('BUG: KASAN: use-after-free in vcpu_enter_guest');
  });

  it('several scenarios: one diagram each, a safe one none', () => {
    const r = runCli(['check', BUG, SAFE, LOCKS, '--mermaid']);
    expect(r.stdout.match(/^sequenceDiagram$/gm)).toHaveLength(2);
    expect(r.stderr).toContain('ttm-move-vs-dma-dynamic: no counterexample');
  });

  it('cannot be combined with --json (exit 2)', () => {
    const r = runCli(['check', BUG, '--mermaid', '--json']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--mermaid.*cannot be used with.*--json/);
  });
});

describe('replay --html --mermaid', () => {
  it('writes the page and prints the diagram; --trace still works', () => {
    const token = /^replay: (\S+)$/m.exec(runCli(['check', BUG]).stdout)?.[1] ?? '';
    const r = runCli([
      'replay',
      BUG,
      '--token',
      token,
      '--html',
      out('replay.html'),
      '--mermaid',
      '--trace',
      out('replay.json'),
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^sequenceDiagram\n/);
    expect(r.stdout).toContain('T2-->>T1: 27 read_lock (kvm->mmu_lock), released at 16');
    expect(written(r)).toEqual([out('replay.html')]);
    expect(embedded(readFileSync(out('replay.html'), 'utf8'))).toEqual(
      JSON.parse(readFileSync(out('replay.json'), 'utf8')),
    );
  });

  it('an HTML file that cannot be written: exit 2', () => {
    const r = runCli(['check', BUG, '--html', out('no-such-dir/x.html')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--html .*x\.html: cannot write the file/);
  });

  it('without the built viewer: a usage error that says to run npm run build:web', () => {
    expect(() => viewerPage(out('missing/index.html'))).toThrow(UsageError);
    expect(() => viewerPage(out('missing/index.html'))).toThrow(/run npm run build:web/);
  });
});

describe('names made of markup', () => {
  let html: string;
  beforeAll(() => {
    const r = runCli(['check', MARKUP, '--html', out('markup.html'), '--trace', out('markup.json')]);
    expect(r.code, r.stderr).toBe(0);
    html = readFileSync(out('markup.html'), 'utf8');
  });

  it('the trace carries them as they are', () => {
    const t = JSON.parse(readFileSync(out('markup.json'), 'utf8')) as Trace;
    const all = JSON.stringify(t);
    for (const s of [LOCK_NAME, STEP_NAME, ARG_VALUE]) expect(all).toContain(JSON.stringify(s).slice(1, -1));
    expect(embedded(html)).toEqual(t);
  });

  it('cannot close the script element or add markup to the page', () => {
    // The page's own two script elements, and nothing else: no </script> from the trace.
    expect(html.match(/<script/gi)).toHaveLength(2);
    expect(html.match(/<\/script/gi)).toHaveLength(2);
    expect(html).not.toContain('window.__pwned = 1</script>');
    expect(html).not.toMatch(/<img|<svg onload|<!--/i);
    // The trace element holds JSON with <, > and & escaped.
    const body = /<script type="application\/json" id="trace">([^<]*)<\/script>/.exec(html)?.[1] ?? '';
    expect(body).toContain('\\u003c/script\\u003e\\u003cscript\\u003ewindow.__pwned = 1\\u003c/script\\u003e');
    expect(body).not.toMatch(/[<>&]/);
  });
});

/** Takes A then B once `set` ran, else B then A: a lock-order cycle whose halves are in two executions. */
const racy = defineImporter({
  name: 'racy',
  summary: 'lock order depends on a race',
  options: {},
  ops: { set: { doc: 'set the flag' }, racy: { doc: 'take the two locks in the order the flag says' } },
  create: (env: ImporterEnv) => {
    const a = new Lock(env.k, 'lock_a', 'class_a', 'mutex');
    const b = new Lock(env.k, 'lock_b', 'class_b', 'mutex');
    const flag = new SharedObject(env.k, 'flag', 'flag');
    let set = false;
    return {
      attachCall: 'none',
      *attach(): KGen<number> {
        return 0;
      },
      *detach(): KGen {},
      *teardown(): KGen {},
      ops: {
        *set(t: Task): KGen {
          yield t.at('set_flag', 'write', flag);
          set = true;
        },
        *racy(t: Task): KGen {
          yield t.at('read_flag', 'read', flag);
          const [x, y] = set ? [a, b] : [b, a];
          yield* mutex_lock(t, x);
          yield* mutex_lock(t, y);
          yield* mutex_unlock(t, y);
          yield* mutex_unlock(t, x);
        },
      },
    };
  },
});

describe('a lock-order finding that needs other executions', () => {
  it('its trace replays the required executions first (`after`) and shows the finding', () => {
    const spec = fromYaml(
      'name: racy\nbuffers: { bo: { exporter: system-heap } }\nimporters: { r: { driver: ./racy.ts, buffer: bo } }\nthreads:\n  t0: [r.racy]\n  t1: [r.set]\n',
      new Map([['./racy.ts', racy]]),
    );
    const r = check(spec);
    const f = r.findings.find((x) => x.code === 'lock-order');
    if (f?.code !== 'lock-order') throw new Error('no lock-order finding');
    expect(f.requires.length).toBe(1);
    const trace = counterexampleTrace(spec, r, 'racy.yaml');
    expect(trace?.after).toEqual(f.requires);
    expect(trace?.findings.map((g) => g.code)).toContain('lock-order');
  });
});
