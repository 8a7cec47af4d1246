/**
 * Bad scenario input through the library: every class of mistake gives a
 * ScenarioError whose issues say where (file:line:col), what was found and
 * what was expected, with the nearest valid name for a typo — never another
 * exception.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { loadDriverModules } from '../../src/cli/files.ts';
import { compile } from '../../src/scenario/compile.ts';
import { expectedOneOf, formatIssue, nearest, ScenarioError, type ScenarioIssue } from '../../src/scenario/errors.ts';
import { loadScenario } from '../../src/scenario/load-yaml.ts';
import { CATALOGUE, fromYaml, runCli } from '../helpers.ts';

const FILE = 'bad.yaml';

/** The issues loading `text` reports; fails the test if it loads or throws anything else. */
function issues(text: string): readonly ScenarioIssue[] {
  let err: unknown = null;
  try {
    loadScenario(text, FILE);
  } catch (e) {
    err = e;
  }
  expect(err, 'expected a ScenarioError').toBeInstanceOf(ScenarioError);
  const list = (err as ScenarioError).issues;
  expect(list.length).toBeGreaterThan(0);
  for (const i of list) {
    expect(i.file).toBe(FILE);
    expect(i.line).toBeGreaterThanOrEqual(1);
    expect(i.col).toBeGreaterThanOrEqual(1);
    expect(i.message).not.toMatch(/\n| {4}at /);
  }
  // The error's message is every issue as file:line:col: message.
  expect((err as ScenarioError).message).toBe(list.map(formatIssue).join('\n'));
  expect((err as ScenarioError).code).toBe('DMABUF_SCENARIO_INVALID');
  return list;
}

/** Exactly one issue, at line:col, whose message matches every pattern. */
function oneIssue(text: string, line: number, col: number, ...patterns: (string | RegExp)[]): ScenarioIssue {
  const list = issues(text);
  if (list.length !== 1) expect(list.map(formatIssue)).toEqual(['exactly one issue']);
  const i = list[0] as ScenarioIssue;
  expect({ line: i.line, col: i.col }, formatIssue(i)).toEqual({ line, col });
  for (const p of patterns) expect(i.message).toMatch(typeof p === 'string' ? contains(p) : p);
  return i;
}

function contains(s: string): RegExp {
  return new RegExp(s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
}

/** A valid scenario, edited per test: buffers `bo` (ttm), importer `k` (kvm), one thread. */
function scenario(o: { importer?: string; options?: string; ops?: string[]; extra?: string; pages?: number } = {}) {
  const pages = o.pages !== undefined ? `, pages: ${o.pages}` : '';
  const opts = o.options ? `, options: ${o.options}` : '';
  const ops = (o.ops ?? ['k.access: { page: 0 }']).map((op) => `    - ${op}\n`).join('');
  return (
    'name: base\n' + // line 1
    'buffers:\n' + // line 2
    `  bo: { exporter: ttm${pages} }\n` + // line 3
    'importers:\n' + // line 4
    `  k: { driver: ${o.importer ?? 'kvm'}, buffer: bo${opts} }\n` + // line 5
    'threads:\n' + // line 6
    '  t:\n' + // line 7
    ops + // line 8…
    (o.extra ?? '')
  );
}

describe('the base scenario of these tests', () => {
  it('is valid', () => {
    const spec = fromYaml(scenario());
    expect(spec.threads[0]?.ops[0]?.text).toBe('k.access { page: 0 }');
  });
});

describe('YAML itself', () => {
  it('a syntax error gives the position where the parser stopped', () => {
    oneIssue('name: x\nbuffers: { bo: { exporter: ttm }\nthreads: []\n', 3, 1, /^YAML: /, 'end with a }');
  });

  it('a duplicate key names the key, at its second occurrence', () => {
    oneIssue(
      'name: one\nbuffers:\n  bo: { exporter: ttm }\nname: two\nthreads:\n  t: [bo.move]\n',
      4,
      1,
      'duplicate key "name"',
      'only once',
    );
    oneIssue(
      'name: x\nbuffers:\n  bo: { exporter: ttm }\n  bo: { exporter: vfio-pci }\nthreads:\n  t: [bo.put]\n',
      4,
      3,
      'duplicate key "bo"',
    );
  });

  it('tabs used for indentation', () => {
    oneIssue('name: x\n\tbuffers: 1\n', 2, 1, /[Tt]ab/);
  });

  it('a second document in the file', () => {
    oneIssue(`${scenario()}---\nname: other\n`, 9, 1, 'one YAML document', '---');
  });

  it('anchors and aliases are refused with the alias position', () => {
    oneIssue(
      scenario({ options: '&o { get_pfn: locked }', ops: ['k.access: { page: 0 }'] }).replace(
        'threads:',
        '  k2: { driver: kvm, buffer: bo, options: *o }\nthreads:',
      ),
      6,
      43,
      'alias *o',
      'not supported',
    );
  });

  it('an empty file, or one with only comments', () => {
    oneIssue('', 1, 1, 'empty', 'expected a scenario with name, buffers and threads');
    oneIssue('# nothing yet\n\n', 1, 1, 'empty');
  });

  it('the top level is not a mapping', () => {
    oneIssue('- name: x\n- buffers: {}\n', 1, 1, 'scenario: expected a mapping, found a list');
    oneIssue('just text\n', 1, 1, 'expected a mapping, found the string "just text"');
  });
});

describe('top-level keys', () => {
  it('an unknown key, with the nearest valid one', () => {
    oneIssue(
      scenario().replace('buffers:', 'bufers:\n  x: 1\nbuffers:'),
      2,
      1,
      'unknown key "bufers"',
      'expected one of name, description, buffers, importers, threads, expect, explore',
      'did you mean "buffers"?',
    );
  });

  it('missing name, buffers and threads are each reported', () => {
    const list = issues('description: nothing else\n');
    expect(list.map((i) => i.message)).toEqual([
      'scenario: missing required key "name"',
      'scenario: missing required key "buffers"',
      'scenario: missing required key "threads"',
    ]);
  });

  it('a name with characters outside a-z, 0-9 and "-"', () => {
    oneIssue(scenario().replace('name: base', 'name: My_Scenario'), 1, 7, '"My_Scenario"', 'a-z, 0-9 and "-"');
    oneIssue(scenario().replace('name: base', 'name: 42'), 1, 7, 'name: expected a string, found number 42');
  });

  it('empty buffers or threads', () => {
    oneIssue(scenario().replace(/threads:[\s\S]*/, 'threads: {}\n'), 6, 10, 'at least one thread');
    oneIssue(scenario().replace(/threads:[\s\S]*/, 'threads:\n'), 6, 9, 'threads: expected a mapping, found null');
  });

  it('too many threads (more than 30)', () => {
    const threads = Array.from({ length: 31 }, (_, i) => `  t${i}: [bo.put]\n`).join('');
    oneIssue(`name: x\nbuffers:\n  bo: { exporter: ttm }\nthreads:\n${threads}`, 5, 3, '31 threads', 'at most 30');
  });
});

describe('buffers and importers', () => {
  it('an unknown exporter suggests the nearest ("tmm" → "ttm"), and ops on the buffer add no noise', () => {
    oneIssue(
      scenario().replace('exporter: ttm', 'exporter: tmm'),
      3,
      19,
      'unknown exporter "tmm"',
      'expected one of system-heap, ttm, vfio-pci, udmabuf, cma-heap (did you mean "ttm"?)',
      'or a path to a TypeScript module',
    );
  });

  it('an unknown importer driver suggests the nearest ("kmv" → "kvm")', () => {
    oneIssue(scenario({ importer: 'kmv' }), 5, 16, 'unknown importer "kmv"', 'did you mean "kvm"?');
    oneIssue(scenario({ importer: 'dma_static' }), 5, 16, 'did you mean "dma-static"?');
  });

  it('no suggestion when nothing is close', () => {
    const i = oneIssue(scenario({ importer: 'nvidia' }), 5, 16, 'unknown importer "nvidia"');
    expect(i.message).not.toMatch(/did you mean/);
  });

  it('a buffer without an exporter, or with a page count out of range', () => {
    oneIssue(scenario().replace('{ exporter: ttm }', '{ pages: 2 }'), 3, 3, 'missing required key "exporter"');
    oneIssue(scenario({ pages: 0 }), 3, 31, 'buffers.bo.pages: 0 is out of range', 'from 1 to 64');
  });

  it('an importer naming a buffer that does not exist', () => {
    oneIssue(
      scenario().replace('buffer: bo', 'buffer: b0'),
      5,
      29,
      'importers.k.buffer: no buffer "b0"',
      'did you mean "bo"?',
    );
  });

  it('an importer without a driver or a buffer', () => {
    const list = issues(scenario().replace('driver: kvm, buffer: bo', 'options: {}'));
    expect(list.map((i) => i.message)).toEqual([
      expect.stringMatching(/importers\.k: missing required key "driver"; expected dma-static, .*kvm/),
      expect.stringMatching(/importers\.k: missing required key "buffer"/),
    ]);
  });

  it('an unknown option key, with the nearest option', () => {
    oneIssue(
      scenario({ options: '{ get_pnf: locked }' }),
      5,
      44,
      'importers.k.options: unknown option "get_pnf"',
      'get_pfn, invalidate_retry',
      'did you mean "get_pfn"?',
    );
    oneIssue(
      scenario().replace('exporter: ttm', 'exporter: ttm, options: { placment: vram }'),
      3,
      35,
      'buffers.bo.options: unknown option "placment"',
      'did you mean "placement"?',
    );
  });

  it('an option value of the wrong type or outside its enum', () => {
    const list = issues(scenario({ options: '{ get_pfn: lockd, invalidate_retry: yes }' }));
    expect(list.map(formatIssue)).toEqual([
      'bad.yaml:5:53: importers.k.options.get_pfn: found the string "lockd"; expected one of unlocked, locked (did you mean "locked"?)',
      'bad.yaml:5:78: importers.k.options.invalidate_retry: expected true or false, found the string "yes"',
    ]);
  });

  it('hold_resv_across_install: true without get_pfn: locked', () => {
    oneIssue(
      scenario({ options: '{ hold_resv_across_install: true }' }),
      5,
      70,
      'importers.k.options.hold_resv_across_install',
      'needs get_pfn: locked',
    );
    expect(() => fromYaml(scenario({ options: '{ get_pfn: locked, hold_resv_across_install: true }' }))).not.toThrow();
  });

  it('a name used by both a buffer and an importer', () => {
    oneIssue(
      scenario({ ops: ['bo.move'] }).replace('  k: { driver: kvm', '  bo: { driver: kvm'),
      5,
      3,
      'importer "bo": the name is already used by a buffer',
    );
  });

  it('the reserved name "mm"', () => {
    oneIssue(
      'name: x\nbuffers:\n  mm: { exporter: ttm }\nthreads:\n  t: [mm.alloc]\n',
      3,
      3,
      'buffer "mm"',
      'reserved for memory ops (mm.alloc)',
    );
  });

  it('a driver given by module path is reported when no module was loaded (library use)', () => {
    oneIssue(scenario({ importer: './my-importer.ts' }), 5, 16, 'importer module "./my-importer.ts" was not loaded');
  });
});

describe('thread ops', () => {
  it('an op on an object that does not exist', () => {
    oneIssue(
      scenario({ ops: ['kvm.access: { page: 0 }'] }),
      8,
      7,
      'threads.t[0]: no object "kvm"',
      'expected one of bo, k, mm',
    );
    oneIssue(scenario({ ops: ['b0.move'] }), 8, 7, 'no object "b0"', 'did you mean "bo"?');
  });

  it('an unknown op on an object, with the nearest op', () => {
    oneIssue(
      scenario({ ops: ['bo.mvoe'] }),
      8,
      7,
      'threads.t[0]: buffer "bo" has no op "mvoe"; expected one of get, put, move, copy, dma_buf_fd, close_fd, dma_buf_get, set_name, read_name (did you mean "move"?)',
    );
    oneIssue(
      scenario({ ops: ['k.acess: { page: 0 }'] }),
      8,
      7,
      'importer "k" has no op "acess"',
      'did you mean "access"?',
    );
  });

  it('the index names the op in the thread', () => {
    oneIssue(scenario({ ops: ['bo.move', 'k.access: { page: 0 }', 'bo.mvoe'] }), 10, 7, 'threads.t[2]:');
  });

  it('attach without options: { attach: manual } explains what is missing', () => {
    const i = oneIssue(scenario({ ops: ['k.attach'] }), 8, 7, 'importer "k" has no op "attach"', 'attach: manual');
    expect(i.message).not.toMatch(/did you mean "detach"/);
    expect(() => fromYaml(scenario({ options: '{ attach: manual }', ops: ['k.attach'] }))).not.toThrow();
  });

  it('an unknown argument, with the nearest one and no second "missing" message', () => {
    oneIssue(
      scenario({ ops: ['k.access: { pgae: 0 }'] }),
      8,
      19,
      'threads.t[0] k.access: unknown argument "pgae"; expected one of page (did you mean "page"?)',
    );
    oneIssue(scenario({ ops: ['bo.move: { page: 0 }'] }), 8, 18, 'unknown argument "page"', 'takes no arguments');
  });

  it('a missing required page', () => {
    oneIssue(
      scenario({ ops: ['k.access'] }),
      8,
      7,
      'threads.t[0] k.access: missing argument "page"',
      'a page of k\'s buffer "bo": 0',
      'k.access: { page: 0 }',
    );
    oneIssue(scenario({ ops: ['k.access: {}'] }), 8, 7, 'missing argument "page"');
  });

  it('a page out of range (page 5 of a 1-page buffer)', () => {
    oneIssue(
      scenario({ ops: ['k.access: { page: 5 }'] }),
      8,
      25,
      'threads.t[0] k.access.page: page 5 is out of range',
      'k\'s buffer "bo" has 1 page, so expected 0',
    );
    oneIssue(scenario({ pages: 4, ops: ['k.access: { page: 4 }'] }), 8, 25, 'has 4 pages, so expected 0 to 3');
    oneIssue(scenario({ ops: ['k.access: { page: -1 }'] }), 8, 25, 'page -1 is out of range');
    expect(() => fromYaml(scenario({ pages: 4, ops: ['k.access: { page: 3 }'] }))).not.toThrow();
  });

  it('an argument of the wrong type', () => {
    oneIssue(
      scenario({ ops: ['k.access: { page: zero }'] }),
      8,
      25,
      'k.access.page: expected a page number',
      'found the string "zero"',
    );
    oneIssue(scenario({ ops: ['k.access: { page: 0.5 }'] }), 8, 25, 'found number 0.5');
    oneIssue(scenario({ ops: ['k.access: [0]'] }), 8, 17, 'k.access: expected a mapping, found a list');
    oneIssue(scenario({ ops: ['mm.alloc: { pages: 100 }'] }), 8, 26, 'mm.alloc.pages: 100 is out of range', '1 to 64');
  });

  it('an op not of the form object.op', () => {
    oneIssue(
      scenario({ ops: ['move'] }),
      8,
      7,
      '"move" is not "<object>.<op>"',
      'objects are bo, k, mm',
      'did you mean "bo.move"?',
    );
    oneIssue(scenario({ ops: ['bo.'] }), 8, 7, '"bo." is not "<object>.<op>"');
    oneIssue(scenario({ ops: ['{ bo.move: null, bo.put: null }'] }), 8, 7, 'expected one op', 'with 2 keys');
    oneIssue(scenario({ ops: ['42'] }), 8, 7, 'found number 42');
  });

  it('a thread that is not a list of ops', () => {
    oneIssue(scenario().replace(/ {2}t:\n[\s\S]*/, '  t: bo.move\n'), 7, 6, 'threads.t: expected a list of ops');
  });

  it('names inherited from Object.prototype are not ops, options or arguments', () => {
    oneIssue(scenario({ ops: ['bo.toString'] }), 8, 7, 'buffer "bo" has no op "toString"');
    oneIssue(scenario({ ops: ['k.__proto__'] }), 8, 7, 'importer "k" has no op "__proto__"');
    oneIssue(scenario({ ops: ['constructor.move'] }), 8, 7, 'no object "constructor"');
    oneIssue(scenario({ options: '{ constructor: 1 }' }), 5, 44, 'unknown option "constructor"');
    oneIssue(
      scenario({ ops: ['k.access: { page: 0, hasOwnProperty: 1 }'] }),
      8,
      28,
      'unknown argument "hasOwnProperty"',
    );
  });
});

describe('expect and explore', () => {
  it('expect.finding with an unknown code, with the nearest code', () => {
    oneIssue(
      scenario({ extra: 'expect:\n  verdict: bug\n  finding: use-after-fre\n' }),
      11,
      12,
      'expect.finding: unknown finding code "use-after-fre"',
      'did you mean "use-after-free"?',
    );
  });

  it('a finding with verdict safe', () => {
    oneIssue(
      scenario({ extra: 'expect: { verdict: safe, finding: leak }\n' }),
      9,
      35,
      'a finding goes with verdict: bug, not safe',
    );
  });

  it('a verdict that is not safe or bug', () => {
    oneIssue(scenario({ extra: 'expect: { verdict: unknown }\n' }), 9, 20, 'is a result, not an expectation');
    oneIssue(scenario({ extra: 'expect: bug\n' }), 9, 9, 'expect: expected a mapping such as', '{ verdict: bug');
    oneIssue(scenario({ extra: 'expect: { finding: leak }\n' }), 9, 9, 'missing required key "verdict"');
  });

  it('explore.max_executions that is not a positive integer', () => {
    const at = (v: string) => scenario({ extra: `explore: { max_executions: ${v} }\n` });
    oneIssue(at('0'), 9, 28, 'explore.max_executions: 0 is out of range; expected an integer from 1 to');
    oneIssue(at('-5'), 9, 28, '-5 is out of range');
    oneIssue(at('1.5'), 9, 28, 'expected an integer from 1 to 1000000000, found number 1.5');
    oneIssue(at('many'), 9, 28, 'found the string "many"');
    expect(fromYaml(at('7')).explore.max_executions).toBe(7);
  });

  it('explore.strategy and seed', () => {
    oneIssue(scenario({ extra: 'explore: { strategy: rand }\n' }), 9, 22, 'did you mean "random"?');
    oneIssue(scenario({ extra: 'explore: { seed: -1 }\n' }), 9, 18, 'explore.seed: -1 is out of range');
    oneIssue(scenario({ extra: 'explore: { depth: 3 }\n' }), 9, 12, 'explore: unknown key "depth"');
  });
});

describe('several problems', () => {
  it('are all reported, in file order', () => {
    const list = issues(
      scenario({ importer: 'kmv', ops: ['bo.mvoe', 'k.access: { page: 0 }'], extra: 'expect: { verdict: sure }\n' }),
    );
    expect(list.map((i) => `${i.line}:${i.col}`)).toEqual(['5:16', '8:7', '10:20']);
    // "k" is declared (with a bad driver): its ops are not reported as calls to a missing object.
    expect(list.map((i) => i.message).join('\n')).not.toMatch(/no object "k"/);
  });
});

describe('driver modules (the command line loads them)', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dmabuf-bad-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const write = (rel: string, text: string) => {
    const p = path.join(dir, rel);
    mkdirSync(path.dirname(p), { recursive: true });
    writeFileSync(p, text);
    return p;
  };
  const withDriver = (ref: string) => scenario({ importer: ref, ops: ['k.detach'] });

  async function moduleIssues(file: string, text: string): Promise<ScenarioIssue[]> {
    const err = await loadDriverModules(file, text).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ScenarioError);
    return [...(err as ScenarioError).issues];
  }

  it('a module path outside the scenario directory is refused, at the path', async () => {
    write('outside.ts', 'export default {};\n');
    const text = withDriver('../outside.ts');
    const file = write('inner/s.yaml', text);
    const list = await moduleIssues(file, text);
    expect(list.map((i) => [i.line, i.col])).toEqual([[5, 16]]);
    expect(list[0]?.message).toMatch(/driver module "\.\.\/outside\.ts" is outside the scenario's directory/);
  });

  it('an absolute module path is refused', async () => {
    const text = withDriver(path.join(dir, 'outside.ts'));
    const list = await moduleIssues(write('abs.yaml', text), text);
    expect(list[0]?.message).toMatch(/give a path relative to the scenario file \("\.\/outside\.ts"\)/);
  });

  it('a module that does not exist', async () => {
    const text = withDriver('./drivers/nope.ts');
    const list = await moduleIssues(write('missing.yaml', text), text);
    expect(list.map(formatIssue)).toEqual([
      `${path.join(dir, 'missing.yaml')}:5:16: driver module "./drivers/nope.ts" not found (looked for ${path.join('drivers', 'nope.ts')})`,
    ]);
  });

  it('the position is the driver: value, not an earlier mention of the same text', async () => {
    const text = `# see ./drivers/nope.ts\n${withDriver('./drivers/nope.ts')}`;
    const list = await moduleIssues(write('mention.yaml', text), text);
    expect(list.map((i) => [i.line, i.col])).toEqual([[6, 16]]);
  });

  it('a module that does not default-export a driver', async () => {
    write('notdriver.ts', 'export default 42;\n');
    const text = withDriver('./notdriver.ts');
    const list = await moduleIssues(write('notdriver.yaml', text), text);
    expect(list[0]?.message).toMatch(/must default-export defineExporter\(\{\.\.\.\}\) or defineImporter/);
  });

  it('through the command line: both files reported with file:line:col, exit 2, no stack', () => {
    const r = runCli([path.join(dir, 'inner', 's.yaml'), path.join(dir, 'missing.yaml')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/s\.yaml:5:16: driver module "\.\.\/outside\.ts" is outside the scenario's directory/);
    expect(r.stderr).toMatch(/missing\.yaml:5:16: driver module "\.\/drivers\/nope\.ts" not found/);
    expect(r.stderr).not.toMatch(/ {4}at /);
    expect(r.stdout).toMatch(/2 scenarios: 0 passed, 0 failed, 2 not checked \(bad input\)/);
  });
});

describe('suggestions ("did you mean")', () => {
  const drivers = ['dma-static', 'dma-dynamic', 'kvm', 'cpu-mmap', 'rogue-mmap'];

  it('typos: one substitution, insertion, deletion or transposition; case; "_" for "-"', () => {
    expect(nearest('tmm', ['system-heap', 'ttm', 'vfio-pci'])).toBe('ttm');
    expect(nearest('kmv', drivers)).toBe('kvm');
    expect(nearest('KVM', drivers)).toBe('kvm');
    expect(nearest('cpu_mmap', drivers)).toBe('cpu-mmap');
    expect(nearest('hold-resv-across-install', ['hold_resv_across_install', 'get_pfn'])).toBe(
      'hold_resv_across_install',
    );
  });

  it('a unique prefix', () => {
    expect(nearest('vfio', ['system-heap', 'ttm', 'vfio-pci'])).toBe('vfio-pci');
    expect(nearest('dma', drivers)).toBeNull(); // dma-static or dma-dynamic
  });

  it('nothing when no candidate is close (short names are not "close" to everything)', () => {
    expect(nearest('kvm', ['bo', 'mm'])).toBeNull();
    expect(nearest('gpu', ['bo', 'mm'])).toBeNull();
    expect(nearest('nvidia', drivers)).toBeNull();
    expect(nearest('x', [])).toBeNull();
  });

  it('the list of what is expected', () => {
    expect(expectedOneOf('bgu', ['safe', 'bug'])).toBe('expected one of safe, bug (did you mean "bug"?)');
    expect(expectedOneOf('zzz', ['safe', 'bug'])).toBe('expected one of safe, bug');
  });
});

describe('robustness', () => {
  const texts = readdirSync(CATALOGUE)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => readFileSync(path.join(CATALOGUE, f), 'utf8'));
  const pieces = [
    ...['ttm', 'kvm', 'vfio-pci', 'move', 'put', 'access', 'attach', 'page', 'pages', 'manual', 'mm.alloc'],
    ...['{', '}', '[', ']', ': ', '- ', '\n', '  ', '&a ', '*a', '"', '---', '#', '0', '-1', '64', 'null'],
  ];

  it('edited catalogue scenarios either load (and compile) or give a ScenarioError with positions', () => {
    fc.assert(
      fc.property(
        fc.nat({ max: texts.length - 1 }),
        fc.array(fc.tuple(fc.nat(), fc.nat({ max: 8 }), fc.constantFrom(...pieces)), { minLength: 1, maxLength: 4 }),
        (ti, edits) => {
          let t = texts[ti] as string;
          for (const [pos, del, piece] of edits) {
            const p = pos % (t.length + 1);
            t = t.slice(0, p) + piece + t.slice(p + del);
          }
          try {
            compile(loadScenario(t, FILE));
          } catch (e) {
            if (!(e instanceof ScenarioError)) throw e;
            for (const i of e.issues) {
              if (!(i.line >= 1 && i.col >= 1 && i.message.length > 0)) throw new Error(`bad issue ${formatIssue(i)}`);
            }
          }
        },
      ),
      { numRuns: 400, seed: 20260101 },
    );
  });
});
