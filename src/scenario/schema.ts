/**
 * The JSON Schema (draft 2020-12) of the scenario format, built from the code:
 * the built-in exporters and importers of the driver registry with their
 * options and ops, the ops every buffer and importer has, `mm.alloc`, the
 * finding codes and the loader's limits. `npm run build:schemas`
 * (scripts/gen-schemas.ts) writes it to schemas/scenario.schema.json; a test
 * fails when that file differs from what this builds.
 *
 * A scenario the loader accepts always validates. The schema cannot check
 * what depends on other parts of the file: that an op's object exists and
 * has that op (it checks the op name against every built-in op, and its
 * arguments against every built-in op of that name, only when the scenario
 * names no driver module), page numbers against the buffer's size, buffer
 * names in `importers.*.buffer`, `mm.alloc` and options of type buffer, that
 * buffers and importers share one namespace, and option combinations a
 * driver refuses (`checkOptions`, `checkOp`). Driver modules named by path
 * get no option or argument checks beyond the value types.
 */
import { FINDING_CODES } from '../checkers/finding.ts';
import type { ArgSpec, ExporterDef, ImporterDef, OpSpec, OptionSpec } from '../drivers/driver.ts';
import { BUILTIN_EXPORTERS, BUILTIN_IMPORTERS } from '../drivers/registry.ts';
import { MAX_THREADS } from '../explorer/token.ts';
import { JSON_SCHEMA_DIALECT, type SchemaObject } from '../schema/validate.ts';
import { BUFFER_FILE_OPS } from './file-ops.ts';
import {
  ATTACH_OPTION,
  MAX_EXPLORE_EXECUTIONS,
  MAX_PAGES,
  MAX_SEED,
  MM_OPS,
  NAME_RE,
  OBJECT_RE,
  TOP_KEYS,
} from './load-yaml.ts';

/** The drivers the schema knows by name (default: the built-in ones). */
export interface SchemaDrivers {
  readonly exporters: ReadonlyMap<string, ExporterDef>;
  readonly importers: ReadonlyMap<string, ImporterDef>;
}

const OBJECT = OBJECT_RE.source;
const OBJECT_NAME = { type: 'string', pattern: OBJECT } as const;
/** `<object>.<op>`: the loader splits at the first dot. */
const OP_CALL = `^${OBJECT.slice(1, -1)}\\..+$`;
const VALUE = { type: ['boolean', 'integer', 'string'] } as const;

/**
 * A driver module: a path relative to the scenario file (it has a `/` or `\`,
 * or a module extension). The command line resolves it and refuses one
 * outside the scenario's directory tree (src/cli/files.ts); the schema
 * refuses what is never inside: an absolute path, a path starting with `..`,
 * a URL.
 */
const MODULE_PATH = {
  type: 'string',
  pattern: '^(?![A-Za-z][A-Za-z0-9+.-]*:)(?![/\\\\])(?!\\.\\.(?:[/\\\\]|$))(?:.*[/\\\\].*|.*\\.(?:ts|mts|js|mjs))$',
  description:
    'A driver module: a path relative to the scenario file, inside the scenario\'s directory tree ("./my-importer.ts"). Only the command line loads modules; their options and ops are checked when they are loaded, not by this schema.',
} as const;

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

function optionSchema(s: OptionSpec): SchemaObject {
  const doc = { description: s.doc };
  switch (s.type) {
    case 'boolean':
      return { type: 'boolean', default: s.default, ...doc };
    case 'int':
      return { type: 'integer', minimum: s.min, maximum: s.max, default: s.default, ...doc };
    case 'enum':
      return { enum: [...s.values], default: s.default, ...doc };
    case 'buffer':
      return { ...OBJECT_NAME, description: `${s.doc} (the name of one of the scenario's buffers)` };
  }
}

function optionsSchema(what: string, options: Readonly<Record<string, OptionSpec>>): SchemaObject {
  const properties: Record<string, SchemaObject> = {};
  for (const [k, s] of Object.entries(options)) properties[k] = optionSchema(s);
  return { description: what, type: ['object', 'null'], properties, additionalProperties: false };
}

function argSchema(s: ArgSpec): SchemaObject {
  const extra = {
    ...(s.default !== undefined ? { default: s.default } : {}),
    ...(s.doc ? { description: s.doc } : {}),
  };
  switch (s.type) {
    case 'page':
      return { type: 'integer', minimum: 0, maximum: MAX_PAGES - 1, ...extra };
    case 'int':
      return { type: 'integer', minimum: s.min, maximum: s.max, ...extra };
    case 'boolean':
      return { type: 'boolean', ...extra };
    case 'enum':
      // An enum with no values is filled in by the loader (mm.alloc's buffer: the scenario's buffers).
      return s.values.length ? { enum: [...s.values], ...extra } : { ...OBJECT_NAME, ...extra };
  }
}

/** The arguments of one op: a mapping, or nothing when no argument is required. */
function argsSchema(args: Readonly<Record<string, ArgSpec>>): SchemaObject {
  const properties: Record<string, SchemaObject> = {};
  const required: string[] = [];
  for (const [k, s] of Object.entries(args)) {
    properties[k] = argSchema(s);
    if (s.required) required.push(k);
  }
  return required.length
    ? { type: 'object', properties, required, additionalProperties: false }
    : { type: ['object', 'null'], properties, additionalProperties: false };
}

/** Every built-in op by name: where it comes from and its arguments. */
function builtinOps(d: SchemaDrivers): Map<string, { from: string[]; args: Readonly<Record<string, ArgSpec>>[] }> {
  const ops = new Map<string, { from: string[]; args: Readonly<Record<string, ArgSpec>>[] }>();
  const add = (op: string, from: string, args: Readonly<Record<string, ArgSpec>> = {}) => {
    const e = ops.get(op) ?? { from: [], args: [] };
    e.from.push(from);
    e.args.push(args);
    ops.set(op, e);
  };
  add('get', 'every buffer');
  add('put', 'every buffer');
  for (const [op, s] of Object.entries(BUFFER_FILE_OPS)) add(op, 'every buffer', s.args);
  add('detach', 'every importer');
  add('attach', 'an importer with options: { attach: manual }');
  for (const [op, args] of Object.entries(MM_OPS)) add(op, 'mm', args);
  const fromDriver = (name: string, all: Readonly<Record<string, OpSpec>>) => {
    for (const [op, s] of Object.entries(all)) add(op, name, s.args);
  };
  for (const [name, e] of d.exporters) fromDriver(`exporter ${name}`, e.ops);
  for (const [name, i] of d.importers) fromDriver(`importer ${name}`, i.ops);
  return new Map([...ops].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function unique(schemas: SchemaObject[]): SchemaObject[] {
  const seen = new Map<string, SchemaObject>();
  for (const s of schemas) seen.set(JSON.stringify(s), s);
  return [...seen.values()];
}

/** An op of a scenario that names only built-in drivers: a known op name, with arguments some built-in op of that name takes. */
function builtinOpSchema(d: SchemaDrivers): SchemaObject {
  const ops = builtinOps(d);
  const obj = OBJECT.slice(1, -1);
  const call = (names: string[]) => `^${obj}\\.(?:${names.map(escapeRe).join('|')})$`;
  const bare: string[] = [];
  const patternProperties: Record<string, SchemaObject> = {};
  for (const [op, e] of ops) {
    const variants = unique(e.args.map(argsSchema));
    if (variants.some((v) => !('required' in v))) bare.push(op);
    const description = `${op}: an op of ${[...new Set(e.from)].join(', ')}`;
    patternProperties[call([op])] =
      variants.length === 1 ? { description, ...variants[0] } : { description, anyOf: variants };
  }
  return {
    description:
      'An op of a scenario whose drivers are all built-in: "<object>.<op>" or "<object>.<op>: { args }". The op name is checked against every built-in op and the arguments against every built-in op of that name; whether the object has that op is checked by the loader.',
    anyOf: [
      { type: 'string', pattern: call(bare) },
      {
        type: 'object',
        minProperties: 1,
        maxProperties: 1,
        propertyNames: { pattern: call([...ops.keys()]) },
        patternProperties,
      },
    ],
  };
}

/** JSON Schema's `if`/`then` (a `then` key written as such makes the object look like a promise to the linter). */
function ifThen(cond: SchemaObject, then: SchemaObject): SchemaObject {
  return Object.fromEntries([
    ['if', cond],
    ['then', then],
  ]);
}

function driverIf(key: 'exporter' | 'driver', name: string, ref: string): SchemaObject {
  return ifThen(
    { properties: { [key]: { const: name } }, required: [key] },
    { properties: { options: { $ref: ref } } },
  );
}

/** The scenario schema. `drivers`: the drivers known by name (default: the built-in ones). */
export function scenarioSchema(
  drivers: SchemaDrivers = { exporters: BUILTIN_EXPORTERS, importers: BUILTIN_IMPORTERS },
): SchemaObject {
  const exporters = [...drivers.exporters.keys()];
  const importers = [...drivers.importers.keys()];
  const defs: Record<string, SchemaObject> = {
    objectName: {
      description: 'A buffer or importer name: a letter, then letters, digits, "_" and "-"; "mm" is reserved.',
      ...OBJECT_NAME,
      not: { const: 'mm' },
    },
    modulePath: MODULE_PATH,
    moduleOptions: {
      description: "A driver module's options: checked against the module's option specs when it is loaded.",
      type: ['object', 'null'],
      additionalProperties: VALUE,
    },
  };
  for (const [name, e] of drivers.exporters)
    defs[`exporterOptions.${name}`] = optionsSchema(`Options of the ${name} exporter: ${e.summary}`, e.options);
  for (const [name, i] of drivers.importers)
    defs[`importerOptions.${name}`] = optionsSchema(`Options of the ${name} importer: ${i.summary}`, {
      ...i.options,
      ...ATTACH_OPTION,
    });

  defs.buffer = {
    type: 'object',
    required: ['exporter'],
    additionalProperties: false,
    properties: {
      exporter: {
        anyOf: [{ enum: exporters, description: 'a built-in exporter' }, { $ref: '#/$defs/modulePath' }],
      },
      pages: { type: 'integer', minimum: 1, maximum: MAX_PAGES, default: 1 },
      options: { $ref: '#/$defs/moduleOptions' },
    },
    allOf: exporters.map((n) => driverIf('exporter', n, `#/$defs/exporterOptions.${n}`)),
  };
  defs.importer = {
    type: 'object',
    required: ['driver', 'buffer'],
    additionalProperties: false,
    properties: {
      driver: {
        anyOf: [{ enum: importers, description: 'a built-in importer' }, { $ref: '#/$defs/modulePath' }],
      },
      buffer: { ...OBJECT_NAME, description: 'the buffer it imports (declared under buffers)' },
      options: {
        description: "the driver's options, plus attach: auto|manual",
        $ref: '#/$defs/moduleOptions',
      },
    },
    allOf: importers.map((n) => driverIf('driver', n, `#/$defs/importerOptions.${n}`)),
  };
  defs.op = {
    description:
      'One op: "<object>.<op>" or "<object>.<op>: { args }"; the object is a buffer, an importer or mm. Which ops an object has depends on its driver: the loader checks that.',
    anyOf: [
      { type: 'string', pattern: OP_CALL },
      {
        type: 'object',
        minProperties: 1,
        maxProperties: 1,
        propertyNames: { pattern: OP_CALL },
        additionalProperties: { type: ['object', 'null'], additionalProperties: VALUE },
      },
    ],
  };
  defs.builtinOp = builtinOpSchema(drivers);
  defs.expect = {
    type: 'object',
    required: ['verdict'],
    additionalProperties: false,
    properties: {
      verdict: { enum: ['safe', 'bug'] },
      finding: { enum: [...FINDING_CODES], description: 'a finding code, with verdict bug' },
    },
    ...ifThen(
      { properties: { verdict: { const: 'safe' } }, required: ['verdict'] },
      { not: { required: ['finding'] } },
    ),
  };
  defs.explore = {
    type: 'object',
    additionalProperties: false,
    properties: {
      max_executions: { type: 'integer', minimum: 1, maximum: MAX_EXPLORE_EXECUTIONS, default: 1_000_000 },
      strategy: { enum: ['dfs', 'random'], default: 'dfs' },
      seed: { type: 'integer', minimum: 0, maximum: MAX_SEED, default: 1 },
    },
  };

  const properties: Record<string, SchemaObject> = {
    name: { type: 'string', pattern: NAME_RE.source, description: 'unique in a catalogue' },
    description: {
      type: 'string',
      description: 'which kernel behaviour the scenario models and what the answer is, citing rule ids',
    },
    buffers: {
      type: 'object',
      minProperties: 1,
      propertyNames: { $ref: '#/$defs/objectName' },
      additionalProperties: { $ref: '#/$defs/buffer' },
    },
    importers: {
      type: ['object', 'null'],
      propertyNames: { $ref: '#/$defs/objectName' },
      additionalProperties: { $ref: '#/$defs/importer' },
    },
    threads: {
      type: 'object',
      minProperties: 1,
      maxProperties: MAX_THREADS,
      propertyNames: OBJECT_NAME,
      additionalProperties: { type: 'array', items: { $ref: '#/$defs/op' } },
    },
    expect: { $ref: '#/$defs/expect' },
    explore: { $ref: '#/$defs/explore' },
  };
  if (Object.keys(properties).join() !== TOP_KEYS.join()) throw new Error('scenario schema: top-level keys differ');

  return {
    $schema: JSON_SCHEMA_DIALECT,
    title: 'dmabuf-check scenario (format version 1)',
    description:
      'A dmabuf-check scenario (docs/scenario-format.md). Generated from the code by scripts/gen-schemas.ts: do not edit. Limits: the schema does not check what depends on other parts of the file (that an object has the op, page numbers against the buffer size, buffer names, option combinations a driver refuses), and driver modules named by path only loosely.',
    type: 'object',
    required: ['name', 'buffers', 'threads'],
    additionalProperties: false,
    properties,
    // With only built-in drivers, op names and their arguments are checked too.
    ...ifThen(
      {
        properties: {
          buffers: { additionalProperties: { properties: { exporter: { enum: exporters } } } },
          importers: { additionalProperties: { properties: { driver: { enum: importers } } } },
        },
      },
      { properties: { threads: { additionalProperties: { items: { $ref: '#/$defs/builtinOp' } } } } },
    ),
    $defs: defs,
  };
}
