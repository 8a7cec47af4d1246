/**
 * The command line end to end (bin/dmabuf-check.js): verdicts and exit codes,
 * the --json contract, bad input (exit 2, file:line:col, no stack trace),
 * limits, replay tokens and traces, determinism. Each spawn costs about half
 * a second, so results are shared between assertions.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CATALOGUE, type CliRun, catalogueFiles, ROOT, runCli } from '../helpers.ts';

const BUG = 'scenarios/kvm-unlocked-no-retry-vs-ttm-move.yaml';
const OTHER_BUG = 'scenarios/kvm-invalidate-takes-resv.yaml';
const SAFE = 'scenarios/ttm-move-vs-dma-dynamic.yaml';
const BIG = 'scenarios/vfio-revoke-vs-kvm-fault.yaml';

interface JsonFinding {
  code: string;
  message: string;
  thread: string;
  token: string;
}
interface JsonResult {
  file: string;
  name: string;
  verdict: 'safe' | 'bug' | 'unknown';
  expected: { verdict: string; finding?: string } | null;
  met: boolean;
  findings: JsonFinding[];
  stats: { executions: number; steps: number; complete: boolean; ms: number; stopped?: string | null };
}
interface JsonDoc {
  results: JsonResult[];
  errors?: { file: string; error: string; messages: string[] }[];
}

function json(r: CliRun): JsonDoc {
  return JSON.parse(r.stdout) as JsonDoc;
}

/** Exit 2 for bad input: a clear message on stderr, never a stack trace or an internal error. */
function expectBadInput(r: CliRun, ...patterns: RegExp[]): void {
  expect(r.code, r.stderr).toBe(2);
  expect(r.stderr).not.toMatch(/ {4}at /);
  expect(r.stderr).not.toMatch(/internal error/);
  for (const p of patterns) expect(r.stderr).toMatch(p);
}

const tmp = mkdtempSync(path.join(os.tmpdir(), 'dmabuf-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function writeTmp(rel: string, text: string): string {
  const p = path.join(tmp, rel);
  mkdirSync(path.dirname(p), { recursive: true });
  writeFileSync(p, text);
  return p;
}

describe('checking the catalogue', () => {
  let text: CliRun;
  let text2: CliRun;
  let doc: JsonDoc;
  let jsonRun: CliRun;
  let jsonRun2: CliRun;
  beforeAll(() => {
    text = runCli([]);
    text2 = runCli([]);
    jsonRun = runCli(['--json']);
    jsonRun2 = runCli(['--json']);
    doc = json(jsonRun);
  });

  it('the default run checks the bundled scenarios, exits 0 and ends with a summary line', () => {
    expect(text.code, text.stderr).toBe(0);
    const n = catalogueFiles().length;
    const lines = text.stdout.trimEnd().split('\n');
    expect(lines.at(-1)).toBe(`${n} scenarios: ${n} passed, 0 failed`);
    expect(text.stdout.match(/^PASS /gm)).toHaveLength(n);
    expect(text.stdout).not.toMatch(/^FAIL /m);
    expect(text.stderr).toBe('');
  });

  it('--json prints one document with the contract shape', () => {
    expect(jsonRun.code, jsonRun.stderr).toBe(0);
    expect(doc.errors).toBeUndefined();
    expect(doc.results).toHaveLength(catalogueFiles().length);
    for (const r of doc.results) {
      expect(r).toMatchObject({
        file: expect.stringMatching(/^scenarios\/[a-z0-9-]+\.yaml$/),
        name: expect.stringMatching(/^[a-z0-9-]+$/),
        verdict: expect.stringMatching(/^(safe|bug)$/),
        met: true,
        stats: {
          executions: expect.any(Number),
          steps: expect.any(Number),
          complete: expect.any(Boolean),
          ms: expect.any(Number),
        },
      });
      expect(path.basename(r.file, '.yaml')).toBe(r.name);
      expect(r.expected).toMatchObject({ verdict: r.verdict });
      expect(r.stats.executions).toBeGreaterThanOrEqual(1);
      if (r.verdict === 'safe') {
        expect(r.findings).toEqual([]);
        expect(r.stats.complete).toBe(true);
      } else {
        expect(r.findings.length).toBeGreaterThan(0);
        if (r.expected?.finding) expect(r.findings.map((f) => f.code)).toContain(r.expected.finding);
      }
      for (const f of r.findings) {
        expect(f).toMatchObject({
          code: expect.any(String),
          message: expect.any(String),
          thread: expect.any(String),
          token: expect.stringMatching(/^dc1\.[0-9a-f]{8}\.[a-zA-Z0-9]*$/),
        });
      }
    }
  });

  it('two runs print byte-identical text', () => {
    expect(text2.code).toBe(text.code);
    expect(text2.stdout).toBe(text.stdout);
  });

  it('two --json runs are identical once stats.ms is removed', () => {
    const strip = (r: CliRun) => {
      const d = json(r);
      for (const x of d.results) delete (x.stats as { ms?: number }).ms;
      return d;
    };
    expect(strip(jsonRun2)).toEqual(strip(jsonRun));
  });

  describe('replay', () => {
    let token: string;
    let otherToken: string;
    let replayText: CliRun;
    let replayJson: CliRun;
    const traceFile = path.join(tmp, 'trace.json');
    beforeAll(() => {
      const bug = doc.results.find((r) => r.file === BUG);
      const other = doc.results.find((r) => r.file === OTHER_BUG);
      token = bug?.findings.find((f) => f.code === 'use-after-free')?.token as string;
      otherToken = other?.findings[0]?.token as string;
      replayText = runCli(['replay', BUG, '--token', token, '--trace', traceFile]);
      replayJson = runCli(['replay', BUG, '--token', token, '--json']);
    });

    it('the tokens come from the --json output', () => {
      expect(token).toMatch(/^dc1\./);
      expect(otherToken).toMatch(/^dc1\./);
      expect(otherToken.split('.')[1]).not.toBe(token.split('.')[1]);
    });

    it('replay --json prints a versioned trace', () => {
      expect(replayJson.code, replayJson.stderr).toBe(0);
      const t = JSON.parse(replayJson.stdout);
      expect(t).toMatchObject({
        format: 'dmabuf-check-trace',
        version: 2,
        scenario: { name: 'kvm-unlocked-no-retry-vs-ttm-move', file: BUG },
        token,
      });
      expect(t.steps.length).toBeGreaterThan(10);
      expect(t.steps.map((s: { n: number }) => s.n)).toEqual(t.steps.map((_: unknown, i: number) => i + 1));
      expect(t.findings.map((f: { code: string }) => f.code)).toContain('use-after-free');
      // Every step carries the whole machine: the UAF step shows the stale SPTE.
      const uaf = t.steps.find(
        (s: { findings: number[]; fn: string }) => s.findings.length > 0 && s.fn === 'vcpu_enter_guest',
      );
      expect(uaf.world.translations.some((x: { kind: string; stale: boolean }) => x.kind === 'spte' && x.stale)).toBe(
        true,
      );
      expect(uaf.world.buffers[0].frames.length).toBe(1);
    });

    it('replay prints every step and the finding, exit 0', () => {
      expect(replayText.code, replayText.stderr).toBe(0);
      const t = JSON.parse(replayJson.stdout) as { steps: { n: number; thread: string; fn: string }[] };
      const rows = replayText.stdout
        .split('\n')
        .map((l) => /^\s+(\d+)\s+(\S+)\s+(\S+)/.exec(l))
        .filter((m) => m !== null)
        .map((m) => `${m[1]} ${m[2]} ${m[3]}`);
      expect(rows).toEqual(t.steps.map((s) => `${s.n} ${s.thread} ${s.fn}`));
      expect(replayText.stdout).toMatch(/^replay of kvm-unlocked-no-retry-vs-ttm-move \(/);
      expect(replayText.stdout).toMatch(/\^\^\^ use-after-free: /);
      expect(replayText.stdout).toMatch(/BUG: KASAN: use-after-free in vcpu_enter_guest/);
      expect(replayText.stdout).toContain(`replay: ${token}`);
    });

    it('--trace FILE writes the same trace', () => {
      expect(JSON.parse(readFileSync(traceFile, 'utf8'))).toEqual(JSON.parse(replayJson.stdout));
    });

    it('a malformed token: exit 2, what a token looks like', () => {
      expectBadInput(
        runCli(['replay', BUG, '--token', 'not-a-token']),
        /^dmabuf-check: not a replay token: expected "dc1\.<8 hex digits>\.<schedule>".*got "not-a-token"/m,
      );
    });

    it('a token from another scenario: exit 2, says the fingerprints differ', () => {
      expectBadInput(
        runCli(['replay', BUG, '--token', otherToken]),
        /token was made for a different scenario \(fingerprint [0-9a-f]{8}; .*kvm-unlocked-no-retry-vs-ttm-move\.yaml has [0-9a-f]{8}\)/,
      );
    });

    it('a truncated token: exit 2, clear message', () => {
      const [, hash, runs] = token.split('.') as [string, string, string];
      expectBadInput(runCli(['replay', BUG, '--token', `dc1.${hash}.${runs.slice(0, 2)}`]), /^dmabuf-check: .*token/m);
      expectBadInput(runCli(['replay', BUG, '--token', `dc1.${hash.slice(0, 5)}`]), /not a replay token/);
    });

    it('a --trace file that cannot be written: exit 2 after printing the replay', () => {
      const r = runCli(['replay', BUG, '--token', token, '--trace', path.join(tmp, 'no-such-dir', 't.json')]);
      expectBadInput(r, /^dmabuf-check: --trace .*t\.json: cannot write the trace/m);
      expect(r.stdout).toMatch(/BUG: KASAN: use-after-free/);
    });

    it('replay of a file that does not exist, or of a directory', () => {
      expectBadInput(runCli(['replay', 'nope.yaml', '--token', token]), /nope\.yaml: no such file/);
      expectBadInput(runCli(['replay', 'scenarios', '--token', token]), /scenarios is a directory/);
    });
  });
});

describe('verdicts and exit codes', () => {
  it('a scenario whose expect is not met exits 1', () => {
    const text = readFileSync(path.join(ROOT, BUG), 'utf8').replace(/expect:[\s\S]*$/, 'expect: { verdict: safe }\n');
    const r = runCli([writeTmp('not-met.yaml', text)]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toMatch(/^FAIL kvm-unlocked-no-retry-vs-ttm-move .*: bug, expected safe/m);
    expect(r.stdout).toMatch(/1 scenario: 0 passed, 1 failed$/m);
  });

  it('--max-executions 1 on a safe scenario gives unknown (never safe) and exit 1', () => {
    const r = runCli([SAFE, '--max-executions', '1', '--json']);
    expect(r.code, r.stderr).toBe(1);
    const [res] = json(r).results;
    expect(res).toMatchObject({ verdict: 'unknown', met: false, stats: { executions: 1, complete: false } });
  });

  it('a tiny --timeout stops with unknown (or finishes), never a crash', () => {
    const r = runCli([BIG, '--timeout', '0.001', '--json']);
    expect([0, 1]).toContain(r.code);
    expect(r.stderr).toBe('');
    const [res] = json(r).results;
    expect(['unknown', 'safe']).toContain(res?.verdict);
    if (res?.verdict === 'unknown') expect(res.stats).toMatchObject({ complete: false, stopped: 'timeout' });
    else expect(res?.stats.complete).toBe(true);
  });
});

describe('bad input: exit 2, where and what, no stack trace', () => {
  const bad = writeTmp('bad/broken.yaml', 'name: broken\nbuffers: { bo: { exporter: ttm }\nthreads: []\n');

  it('malformed YAML: file:line:col on stderr', () => {
    const r = runCli([bad]);
    expectBadInput(r, /broken\.yaml:3:1: YAML: /);
    expect(r.stdout).toMatch(/1 scenario: 0 passed, 0 failed, 1 not checked \(bad input\)/);
  });

  it('with --json, good files keep their results and the bad one is listed under errors', () => {
    copyFileSync(path.join(ROOT, SAFE), path.join(tmp, 'bad', 'good.yaml'));
    const r = runCli([path.join(tmp, 'bad'), '--json']);
    expectBadInput(r, /broken\.yaml:3:1: YAML: /);
    const d = json(r);
    expect(d.results.map((x) => [x.name, x.verdict, x.met])).toEqual([['ttm-move-vs-dma-dynamic', 'safe', true]]);
    expect(d.errors).toEqual([
      {
        file: expect.stringMatching(/broken\.yaml$/),
        error: 'DMABUF_SCENARIO_INVALID',
        messages: [expect.stringMatching(/broken\.yaml:3:1: YAML: /)],
      },
    ]);
  });

  it('an unknown exporter: position and suggestion', () => {
    const f = writeTmp('tmm.yaml', 'name: tmm\nbuffers:\n  bo: { exporter: tmm }\nthreads:\n  t: [bo.move]\n');
    expectBadInput(runCli([f]), /tmm\.yaml:3:19: unknown exporter "tmm"; .*\(did you mean "ttm"\?\)/);
  });

  it('an unknown option suggests the nearest', () => {
    const r = runCli(['--jsno']);
    expectBadInput(r, /unknown option '--jsno'/, /Did you mean --json\?/);
    expect(r.stdout).toBe('');
  });

  it('a bad option value says what is expected', () => {
    expectBadInput(runCli([SAFE, '--max-executions', '0']), /--max-executions must be a positive integer, got "0"/);
    expectBadInput(
      runCli([SAFE, '--strategy', 'bfs']),
      /Allowed choices are dfs, sleep, state, naive, random, pct, portfolio/,
    );
  });

  it('two scenarios with the same name: the second is bad input, named with where the first is', () => {
    const dir = path.join(tmp, 'dup');
    mkdirSync(dir, { recursive: true });
    const src = path.join(CATALOGUE, 'ttm-move-vs-dma-static.yaml');
    copyFileSync(src, path.join(dir, 'a.yaml'));
    copyFileSync(src, path.join(dir, 'b.yaml'));
    const r = runCli([dir]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/b\.yaml:1:1: name "ttm-move-vs-dma-static" is already used by .*a\.yaml/);
    expect(r.stdout).toMatch(/PASS ttm-move-vs-dma-static/);
  });

  it('a path that does not exist: reported, and the other paths are still checked', () => {
    expectBadInput(
      runCli(['no/such/scenario.yaml']),
      /^dmabuf-check: no\/such\/scenario\.yaml: no such file or directory$/m,
    );
    const r = runCli(['no/such/scenario.yaml', SAFE, '--json']);
    expectBadInput(r, /no such file or directory/);
    const d = json(r);
    expect(d.results.map((x) => x.file)).toEqual([SAFE]);
    expect(d.errors).toEqual([
      { file: 'no/such/scenario.yaml', error: 'DMABUF_USAGE', messages: [expect.stringMatching(/no such file/)] },
    ]);
  });

  it('a misspelled command is suggested', () => {
    expectBadInput(runCli(['replya']), /replya: no such file or directory .*did you mean the command "replay"\?/);
  });

  it('replay without --token', () => {
    expectBadInput(runCli(['replay', BUG]), /required option '--token <token>' not specified/);
  });
});

describe('driver modules', () => {
  it('a .ts module in a directory without package.json "type": "module" loads', () => {
    writeTmp(
      'mod/mini-importer.ts',
      `export default {
  kind: 'importer',
  name: 'mini',
  summary: 'does nothing',
  options: {},
  ops: { poke: { doc: 'nothing' } },
  create() {
    return {
      attachCall: 'mini_attach',
      *attach() {
        return 0;
      },
      *detach() {},
      *teardown() {},
      ops: { *poke() {} },
    };
  },
};
`,
    );
    const f = writeTmp(
      'mod/mini.yaml',
      'name: mini\nbuffers:\n  bo: { exporter: system-heap }\nimporters:\n  k: { driver: ./mini-importer.ts, buffer: bo }\nthreads:\n  t: [k.poke]\nexpect: { verdict: safe }\n',
    );
    const r = runCli([f]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^PASS mini /m);
  });

  it('a module with a syntax error: the position inside the module', () => {
    writeTmp('mod/broken.ts', 'export default {\n');
    const f = writeTmp(
      'mod/broken.yaml',
      'name: broken\nbuffers:\n  bo: { exporter: ./broken.ts }\nthreads:\n  t: [bo.put]\n',
    );
    expectBadInput(runCli([f]), /broken\.yaml:3:19: driver module "\.\/broken\.ts" failed to load: .*broken\.ts:2:0/);
  });
});

describe('a closed pipe', () => {
  it('ends quietly, without a stack trace', () => {
    const r = spawnSync('sh', ['-c', `"${process.execPath}" bin/dmabuf-check.js ${BUG} | true`], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
  });
});

it('the catalogue directory the helpers use is the one the CLI checks by default', () => {
  expect(path.relative(ROOT, CATALOGUE)).toBe('scenarios');
});
