/**
 * The JSON Schemas of schemas/ (issue 7 item 5): built from the code, up to
 * date, published; every bundled scenario validates against the scenario
 * schema and scenarios the loader refuses for a local reason do not; the
 * schema is never stricter than the loader (generated scenarios); real
 * `--json` outputs and traces validate against their schemas with every
 * object closed, so a field the code emits and the schema does not name
 * fails.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import iommufd from '../../examples/iommufd-importer.ts';
import type { ArgSpec, OptionSpec } from '../../src/drivers/driver.ts';
import { BUILTIN_EXPORTERS, BUILTIN_IMPORTERS } from '../../src/drivers/registry.ts';
import { documentJson } from '../../src/report/json.ts';
import { compile } from '../../src/scenario/compile.ts';
import { ScenarioError } from '../../src/scenario/errors.ts';
import { BUFFER_FILE_OPS } from '../../src/scenario/file-ops.ts';
import { loadScenario } from '../../src/scenario/load-yaml.ts';
import { SCHEMA_DIR, schemas } from '../../src/schema/files.ts';
import { type JsonSchema, schemaProblems, validate } from '../../src/schema/validate.ts';
import { replayToken } from '../../src/trace/replay.ts';
import { check, ROOT, runCli } from '../helpers.ts';

const built = schemas();
const SCENARIO = built['scenario.schema.json'] as JsonSchema;
const RESULT = built['result.schema.json'] as JsonSchema;
const TRACE = built['trace.schema.json'] as JsonSchema;

function yamlFiles(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir))
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .map((f) => path.join(dir, f));
}

const valid = (text: string) => validate(SCENARIO, parse(text));

describe('the schema files', () => {
  it('are what the code builds (npm run build:schemas writes them)', () => {
    const dir = path.join(ROOT, SCHEMA_DIR);
    expect(readdirSync(dir).sort()).toEqual(Object.keys(built).sort());
    for (const [name, schema] of Object.entries(built)) {
      const committed = JSON.parse(readFileSync(path.join(dir, name), 'utf8'));
      expect(committed, `${SCHEMA_DIR}/${name} is out of date: run npm run build:schemas`).toEqual(schema);
    }
  });

  it('are published with the package', () => {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    expect(pkg.files).toContain(SCHEMA_DIR);
    expect(pkg.scripts['build:schemas']).toMatch(/scripts\/gen-schemas\.ts/);
  });

  it('are draft 2020-12 schemas using only keywords the validator knows, with sound patterns and references', () => {
    for (const [name, schema] of Object.entries(built)) {
      expect((schema as Record<string, unknown>).$schema, name).toBe('https://json-schema.org/draft/2020-12/schema');
      expect(schemaProblems(schema), name).toEqual([]);
    }
  });

  it('name every built-in driver, option and op', () => {
    const text = JSON.stringify(SCENARIO);
    for (const [name, d] of [...BUILTIN_EXPORTERS, ...BUILTIN_IMPORTERS]) {
      expect(text).toContain(`"${name}"`);
      for (const o of Object.keys(d.options)) expect(text, `${name}.options.${o}`).toContain(`"${o}":`);
      for (const op of Object.keys(d.ops)) expect(text, `${name} op ${op}`).toContain(`\\\\.(?:${op})$`);
    }
    for (const op of ['get', 'put', 'attach', 'detach', 'alloc', ...Object.keys(BUFFER_FILE_OPS)])
      expect(text, op).toContain(`\\\\.(?:${op})$`);
  });
});

describe('scenario schema: the bundled scenarios', () => {
  const files = [...yamlFiles('scenarios'), ...yamlFiles('examples'), ...yamlFiles('test/report/fixtures')];

  it('finds them', () => {
    expect(files.length).toBeGreaterThan(80);
  });

  for (const f of files) {
    it(f, () => {
      expect(valid(readFileSync(path.join(ROOT, f), 'utf8'))).toEqual([]);
    });
  }
});

interface Base {
  name: string;
  description: string;
  buffers: { bo: { exporter: string; pages: number; options: Record<string, unknown> } };
  importers: { k: { driver: string; buffer?: string; options: Record<string, unknown> } };
  threads: { t0: unknown[]; t1: unknown[] };
  expect: { verdict: string; finding?: string };
  explore: { max_executions?: number; strategy?: string; seed?: number };
}

/** A valid scenario with only built-in drivers, to edit. */
const BASE: Base = {
  name: 'base',
  description: 'a base scenario',
  buffers: { bo: { exporter: 'ttm', pages: 2, options: { placement: 'vram' } } },
  importers: { k: { driver: 'kvm', buffer: 'bo', options: { get_pfn: 'unlocked', attach: 'manual' } } },
  threads: {
    t0: ['k.attach', { 'k.access': { page: 1 } }, 'k.detach'],
    t1: ['bo.move', { 'bo.dma_buf_fd': { put: 'always' } }, { 'mm.alloc': { pages: 2, pool: 'system' } }],
  },
  expect: { verdict: 'bug', finding: 'use-after-free' },
  explore: { max_executions: 1000, strategy: 'random', seed: 7 },
};

type Edit = (s: Base & Record<string, unknown>) => void;
function edited(edit: Edit): unknown {
  const s = structuredClone(BASE) as Base & Record<string, unknown>;
  edit(s);
  return s;
}

/** The loader refuses the scenario (a ScenarioError). */
function loaderRefuses(doc: unknown, modules?: ReadonlyMap<string, never>): boolean {
  try {
    loadScenario(JSON.stringify(doc), 'x.yaml', modules ? { modules } : {});
    return false;
  } catch (e) {
    expect(e).toBeInstanceOf(ScenarioError);
    return true;
  }
}

describe('scenario schema: what it refuses', () => {
  it('accepts the base scenario, as the loader does', () => {
    expect(validate(SCENARIO, BASE)).toEqual([]);
    expect(loaderRefuses(BASE)).toBe(false);
  });

  const bad: [string, Edit, RegExp][] = [
    ['no name', (s) => delete (s as Partial<typeof BASE>).name, /missing required property "name"/],
    ['a bad name', (s) => (s.name = 'Has Caps'), /\$\.name: .* does not match/],
    ['an unknown top-level key', (s) => ((s as Record<string, unknown>).extra = 1), /\$\.extra: unknown property/],
    ['no buffers', (s) => (s.buffers = {} as never), /\$\.buffers: fewer than 1 properties/],
    ['a buffer named mm', (s) => (s.buffers = { mm: { exporter: 'ttm' } } as never), /\$\.buffers\.mm \(name\)/],
    ['an unknown exporter', (s) => (s.buffers.bo.exporter = 'ttn'), /\$\.buffers\.bo\.exporter/],
    ['0 pages', (s) => (s.buffers.bo.pages = 0), /\$\.buffers\.bo\.pages: 0 < minimum 1/],
    ['65 pages', (s) => (s.buffers.bo.pages = 65), /\$\.buffers\.bo\.pages: 65 > maximum 64/],
    [
      'an option of another exporter',
      (s) => ((s.buffers.bo.options as Record<string, unknown>).get_pfn = 'locked'),
      /\$\.buffers\.bo\.options\.get_pfn: unknown property/,
    ],
    [
      'an option value outside its enum',
      (s) => (s.buffers.bo.options.placement = 'gtt'),
      /\$\.buffers\.bo\.options\.placement: "gtt" is not one of/,
    ],
    [
      'an int option out of range',
      (s) => (s.buffers = { u: { exporter: 'udmabuf', options: { folio_order: 99 } } } as never),
      /\$\.buffers\.u\.options\.folio_order: 99 > maximum/,
    ],
    [
      'an importer without a buffer',
      (s) => delete (s.importers.k as Partial<typeof s.importers.k>).buffer,
      /\$\.importers\.k: missing required property "buffer"/,
    ],
    [
      'an importer option of the wrong type',
      (s) => ((s.importers.k.options as Record<string, unknown>).invalidate_retry = 'yes'),
      /\$\.importers\.k\.options\.invalidate_retry: expected boolean/,
    ],
    [
      'attach that is neither auto nor manual',
      (s) => (s.importers.k.options.attach = 'later'),
      /\$\.importers\.k\.options\.attach/,
    ],
    ['a thread that is not a list', (s) => (s.threads.t0 = 'k.detach' as never), /\$\.threads\.t0: expected array/],
    ['an op without a dot', (s) => s.threads.t0.push('detach'), /\$\.threads\.t0\[3\]/],
    ['an op no built-in driver has', (s) => s.threads.t0.push('k.acess'), /\$\.threads\.t0\[3\]/],
    ['a required argument missing', (s) => s.threads.t0.push('k.access'), /\$\.threads\.t0\[3\]/],
    ['an unknown argument', (s) => s.threads.t0.push({ 'k.access': { page: 0, pgae: 1 } }), /\$\.threads\.t0\[3\]/],
    ['an op with two keys', (s) => s.threads.t0.push({ 'k.detach': null, 'k.attach': null }), /\$\.threads\.t0\[3\]/],
    [
      'an argument value outside its enum',
      (s) => s.threads.t1.push({ 'bo.dma_buf_fd': { put: 'sometimes' } }),
      /\$\.threads\.t1\[3\]/,
    ],
    [
      '31 threads',
      (s) => (s.threads = Object.fromEntries(Array.from({ length: 31 }, (_, i) => [`t${i}`, ['bo.get']])) as never),
      /more than 30 properties/,
    ],
    ['expect: unknown', (s) => (s.expect.verdict = 'unknown'), /\$\.expect\.verdict/],
    ['a finding with verdict safe', (s) => (s.expect.verdict = 'safe'), /\$\.expect: matches a schema it must not/],
    ['an unknown finding code', (s) => (s.expect.finding = 'use-after-fee'), /\$\.expect\.finding/],
    ['an explore strategy of the command line only', (s) => (s.explore.strategy = 'pct'), /\$\.explore\.strategy/],
    ['a seed out of range', (s) => (s.explore.seed = 2 ** 32), /\$\.explore\.seed: .* > maximum/],
    ['an absolute module path', (s) => (s.importers.k.driver = '/etc/evil.ts'), /\$\.importers\.k\.driver/],
    ['a module path going up', (s) => (s.importers.k.driver = '../evil.ts'), /\$\.importers\.k\.driver/],
    ['a URL', (s) => (s.importers.k.driver = 'https://example.com/evil.ts'), /\$\.importers\.k\.driver/],
    ['a data: URL', (s) => (s.importers.k.driver = 'data:text/javascript,1'), /\$\.importers\.k\.driver/],
  ];
  for (const [what, edit, message] of bad) {
    it(`${what}: refused by the schema and by the loader`, () => {
      const doc = edited(edit);
      const problems = validate(SCENARIO, doc);
      expect(problems.join('\n')).toMatch(message);
      expect(loaderRefuses(doc)).toBe(true);
    });
  }

  it('a scenario naming a driver module: its options and ops only as value types', () => {
    const doc = edited((s) => {
      s.importers.k.driver = './iommufd-importer.ts';
      (s.importers.k as Record<string, unknown>).options = { unmap_on_revoke: false };
      s.threads.t0 = ['k.map', { 'k.dma': { page: 0 } }, { 'k.anything': { x: 1 } }] as never;
    });
    expect(validate(SCENARIO, doc)).toEqual([]);
    const bad = edited((s) => {
      s.importers.k.driver = './iommufd-importer.ts';
      s.threads.t0 = [{ 'k.dma': { page: [0] } }] as never;
    });
    expect(validate(SCENARIO, bad).join('\n')).toMatch(/\$\.threads\.t0\[0\]/);
  });

  it('what it cannot see: an op of another object, a page past the buffer, an unknown buffer (the loader refuses them)', () => {
    for (const doc of [
      edited((s) => s.threads.t0.push({ 'bo.access': { page: 0 } })),
      edited((s) => s.threads.t0.push({ 'k.access': { page: 5 } } as never)),
      edited((s) => (s.importers.k.buffer = 'nope')),
    ]) {
      expect(validate(SCENARIO, doc)).toEqual([]);
      expect(loaderRefuses(doc)).toBe(true);
    }
  });
});

describe('scenario schema: never stricter than the loader', () => {
  const exporters = [...BUILTIN_EXPORTERS.values()];
  const importers = [...BUILTIN_IMPORTERS.values()];

  /** A value for an option or argument: mostly valid, sometimes out of range or of another type. */
  function value(s: OptionSpec | ArgSpec): fc.Arbitrary<unknown> {
    const odd = fc.oneof(fc.integer({ min: -2, max: 70 }), fc.boolean(), fc.constantFrom('x', 'bo', ''));
    const good: fc.Arbitrary<unknown> =
      s.type === 'boolean'
        ? fc.boolean()
        : s.type === 'enum'
          ? fc.constantFrom(...(s.values.length ? s.values : ['bo']))
          : s.type === 'int'
            ? fc.integer({ min: s.min, max: s.max })
            : s.type === 'page'
              ? fc.integer({ min: 0, max: 3 })
              : fc.constantFrom('bo', 'b2');
    return fc.oneof({ weight: 6, arbitrary: good }, { weight: 1, arbitrary: odd });
  }

  function options(specs: Readonly<Record<string, OptionSpec>>, extra: string[] = []) {
    const keys = [...Object.keys(specs), ...extra];
    if (!keys.length) return fc.constant(undefined);
    return fc.option(
      fc
        .subarray(keys, { maxLength: Math.min(4, keys.length) })
        .chain((ks) =>
          fc.tuple(
            ...ks.map((k) =>
              (k === 'attach' ? fc.constantFrom('auto', 'manual') : value(specs[k] as OptionSpec)).map(
                (v) => [k, v] as const,
              ),
            ),
          ),
        )
        .map((pairs) => Object.fromEntries(pairs)),
      { nil: undefined },
    );
  }

  const opsOf = (target: string, names: Record<string, Readonly<Record<string, ArgSpec>> | undefined>) =>
    Object.entries(names).map(([op, args]) => ({ call: `${target}.${op}`, args: args ?? {} }));

  const scenarioArb = fc
    .record({
      exporter: fc.constantFrom(...exporters),
      pages: fc.integer({ min: 1, max: 4 }),
      importer: fc.option(fc.constantFrom(...importers), { nil: undefined }),
    })
    .chain(({ exporter, pages, importer }) => {
      const ops = [
        ...opsOf('bo', {
          get: {},
          put: {},
          ...Object.fromEntries(Object.entries(BUFFER_FILE_OPS).map(([k, v]) => [k, v.args])),
          ...Object.fromEntries(Object.entries(exporter.ops).map(([k, v]) => [k, v.args])),
        }),
        ...opsOf('mm', {
          alloc: { pages: { type: 'int', min: 1, max: 64 }, pool: { type: 'enum', values: ['system', 'vram'] } },
        }),
        ...(importer
          ? opsOf('k', {
              detach: {},
              attach: {},
              ...Object.fromEntries(Object.entries(importer.ops).map(([k, v]) => [k, v.args])),
            })
          : []),
      ];
      const op = fc.constantFrom(...ops).chain(({ call, args }) => {
        const keys = Object.keys(args);
        return fc.oneof(
          fc.constant(call),
          fc
            .subarray(keys)
            .chain((ks) => fc.tuple(...ks.map((k) => value(args[k] as ArgSpec).map((v) => [k, v] as const))))
            .map((pairs) => ({ [call]: pairs.length ? Object.fromEntries(pairs) : null })),
        );
      });
      return fc.record({
        name: fc.constant('gen'),
        buffers: options(exporter.options).map((o) => ({
          bo: { exporter: exporter.name, pages, ...(o ? { options: o } : {}) },
        })),
        importers: importer
          ? options(importer.options, ['attach']).map((o) => ({
              k: { driver: importer.name, buffer: 'bo', ...(o ? { options: o } : {}) },
            }))
          : fc.constant(null),
        threads: fc
          .array(fc.array(op, { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 2 })
          .map((ts) => Object.fromEntries(ts.map((t, i) => [`t${i}`, t]))),
      });
    });

  it('every generated scenario the loader accepts validates', () => {
    let accepted = 0;
    fc.assert(
      fc.property(scenarioArb, (doc) => {
        if (loaderRefuses(doc)) return;
        accepted++;
        expect(validate(SCENARIO, doc)).toEqual([]);
      }),
      { numRuns: 400, seed: 7 },
    );
    expect(accepted).toBeGreaterThan(50);
  });
});

describe('result schema: real --json outputs, every object closed', () => {
  const strict = (doc: unknown) => validate(RESULT, doc, { strict: true });

  it('bug, safe, an input error, and unknown (--max-executions 1)', () => {
    const bug = 'scenarios/kvm-unlocked-no-retry-vs-ttm-move.yaml';
    const safe = 'scenarios/kvm-unlocked-retry-vs-ttm-move.yaml';
    let r = runCli(['check', bug, safe, 'test/schema/no-such.yaml', '--json']);
    expect(r.code).toBe(2);
    const doc = JSON.parse(r.stdout);
    expect(doc.results.map((x: { verdict: string }) => x.verdict)).toEqual(['bug', 'safe']);
    expect(doc.errors).toHaveLength(1);
    expect(strict(doc)).toEqual([]);
    r = runCli(['check', safe, '--json', '--max-executions', '1']);
    const unknown = JSON.parse(r.stdout);
    expect(unknown.results[0].verdict).toBe('unknown');
    expect(strict(unknown)).toEqual([]);
  });

  it('a runaway driver (driver-error, with its runaway record)', () => {
    const r = runCli(['check', 'test/explorer/fixtures/runaway-throw.yaml', '--json', '--workers', '1']);
    const doc = JSON.parse(r.stdout);
    expect(doc.results[0].runaway.kind).toBe('driver-error');
    expect(strict(doc)).toEqual([]);
  });

  it('--count, --strategy state (symmetry) and a split search (--workers)', () => {
    const s = 'scenarios/ww-abba-without-context.yaml';
    const counted = JSON.parse(runCli(['check', s, '--json', '--count']).stdout);
    expect(counted.results[0].count).toBeDefined();
    expect(strict(counted)).toEqual([]);
    const state = JSON.parse(runCli(['check', s, '--json', '--strategy', 'state']).stdout);
    expect(state.results[0].stats.states).toBeDefined();
    expect(strict(state)).toEqual([]);
    const split = JSON.parse(
      runCli(['check', 'scenarios/kvm-unlocked-retry-vs-ttm-move.yaml', '--json', '--workers', '2'], ROOT, {
        DMABUF_CHECK_SMALL_FIRST: '1',
      }).stdout,
    );
    expect(split.results[0].stats.units).toBeGreaterThan(0);
    expect(strict(split)).toEqual([]);
  });

  it('a bad scenario file and a lock-order finding with requires (in-process)', () => {
    const doc = documentJson(
      [check(loadScenario(readFileSync(path.join(ROOT, 'scenarios/ww-abba-without-context.yaml'), 'utf8'), 'w.yaml'))],
      [{ file: 'bad.yaml', error: 'DMABUF_SCENARIO_INVALID', messages: ['bad.yaml:1:1: empty scenario'] }],
    );
    expect(strict(doc)).toEqual([]);
  });

  it('refuses a document of another version, or with a misspelt field', () => {
    const doc = JSON.parse(runCli(['check', 'scenarios/ww-abba-without-context.yaml', '--json']).stdout);
    expect(validate(RESULT, { ...doc, version: 2 }).join()).toMatch(/\$\.version: expected 1/);
    const r = doc.results[0];
    expect(strict({ ...doc, results: [{ ...r, verdikt: r.verdict }] }).join()).toMatch(/verdikt: unknown property/);
    // The published schema is open: a reader accepts a field added within the version.
    expect(validate(RESULT, { ...doc, results: [{ ...r, added: 1 }] })).toEqual([]);
  });
});

describe('trace schema: real traces, every object closed', () => {
  it('a catalogue counterexample, with the examples driver module', () => {
    const file = path.join(ROOT, 'examples/iommufd-no-unmap-on-revoke.yaml');
    const spec = loadScenario(readFileSync(file, 'utf8'), 'e.yaml', {
      modules: new Map([['./iommufd-importer.ts', iommufd]]),
    });
    const r = check(spec);
    const { trace } = replayToken(compile(spec), r.counterexample?.token as string, 'e.yaml');
    const doc = JSON.parse(JSON.stringify(trace));
    expect(validate(TRACE, doc, { strict: true })).toEqual([]);
  });

  it('replay --json with tokens replayed first (after)', () => {
    const s = 'scenarios/kvm-unlocked-no-retry-vs-ttm-move.yaml';
    const token = JSON.parse(runCli(['check', s, '--json']).stdout).results[0].counterexample.token;
    const r = runCli(['replay', s, '--token', token, '--token', token, '--json']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.after).toEqual([token]);
    expect(validate(TRACE, doc, { strict: true })).toEqual([]);
  });
});
