/**
 * Generators of malformed and adversarial input for every entry point:
 * scenario YAML (mutated catalogue scenarios, generated ones with wrong types,
 * deep nesting, alias bombs, binary garbage, enormous files), replay tokens
 * and trace files. Mutations are plain data applied by a function, so
 * fast-check shrinks a failing input to the few edits that matter.
 */
import fc from 'fast-check';
import { stringify } from 'yaml';
import { FINDING_CODES } from '../../src/checkers/finding.ts';
import type { ArgSpec, OptionSpec } from '../../src/drivers/driver.ts';
import { BUILTIN_EXPORTERS, BUILTIN_IMPORTERS } from '../../src/drivers/registry.ts';
import { BUFFER_FILE_OPS } from '../../src/scenario/file-ops.ts';
import { corpus } from './corpus.ts';

// ---------------------------------------------------------------- pieces

const EXPORTERS = [...BUILTIN_EXPORTERS.keys()];
const IMPORTERS = [...BUILTIN_IMPORTERS.keys()];

/** Every key the scenario format knows, at any level. */
const KNOWN_KEYS = [
  ...['name', 'description', 'buffers', 'importers', 'threads', 'expect', 'explore'],
  ...['exporter', 'pages', 'options', 'driver', 'buffer', 'verdict', 'finding'],
  ...['max_executions', 'strategy', 'seed', 'page', 'attach', 'pool'],
];

/** Scalars YAML reads as something surprising, numbers out of every range, tags, collections. */
export const WEIRD_VALUES = [
  ...['~', 'null', 'Null', 'NULL', 'true', 'false', 'True', 'yes', 'no', 'on', 'off', 'y', 'n'],
  ...['.nan', '.NaN', '.inf', '-.inf', '+.inf', 'NaN', 'Infinity', '-Infinity', 'nan', 'inf'],
  ...['1e309', '-1e309', '1e-400', '0', '-0', '-1', '0.0', '1.5', '64', '65', '+1', '1_000', '0x10'],
  ...['0x7fffffff', '0xffffffffffffffffffffffff', '0o777', '0b101', '2147483648', '4294967296', '4294967295'],
  ...['99999999999999999999999999999', '9007199254740993', '-9007199254740993', '1000000001', '1e3'],
  ...['""', "''", '" "', '[]', '{}', '[1, 2]', '{a: 1}', '[[[]]]', '{? a}', '- x', '[a, ]'],
  ...['!!binary aGVsbG8=', '!!timestamp 2001-12-14', '2001-12-14t21:59:43.10-05:00', '!!float 1', '!!str 1'],
  ...['!!int x', '!!map {}', '!!seq []', '!!set {a}', '!!omap [a: 1]', '!!pairs [a: 1]', '!!js/function x'],
  ...['!custom x', '!<tag:x> y', '!!null x', '!!bool maybe', '|\n  block\n', '>-\n  folded\n', '"\\u0000"'],
  ...['"\\ud800"', '"a\\tb"', '"\\x"', "'it''s'", '&x 1', '*x', '&a [*a]', '{<<: *a}', '? complex', '"unclosed'],
  ...['[unclosed', '{unclosed', '@reserved', '`reserved', '%YAML 1.2', 'a: b: c', 'x #comment', '#', '-'],
  ...['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', '../../etc/passwd', './x.ts'],
  ...['/abs/mod.ts', 'mod.js', 'C:\\\\x.ts', 'tmm', 'kmv', 'vfio', 'ttm ', ' ttm', 'TTM', 'dma-buf', 'é', '中文'],
];

/** Text pieces inserted anywhere: YAML syntax, keys, names. */
const PIECES = [
  ...['{', '}', '[', ']', ': ', ':', '- ', ',', '\n', '  ', '\t', '"', "'", '---', '...', '#', '&a ', '*a', '? '],
  ...['!!str ', '!x ', '|', '>', '%', '@', '`', '\\', '\r', '\r\n', '\u2028', '\u0085', '\u00a0'],
  ...['\uFEFF', '\u0000', '\u0007', '\u001b[31m', '\uFFFE', '\uFFFF', '\uD800', '\uDC00', '\u200B', '\u202E'],
  ...KNOWN_KEYS.map((k) => `${k}: `),
  ...EXPORTERS,
  ...IMPORTERS,
  ...WEIRD_VALUES,
];

/** Key names used where a key is renamed: known ones (duplicates), typos, unknown, hostile. */
const KEY_NAMES = [
  ...KNOWN_KEYS,
  ...['nmae', 'bufers', 'thread', 'improters', 'expcet', 'max-executions', 'Name', 'BUFFERS', ''],
  ...['__proto__', 'constructor', 'prototype', 'toString', '0', '1.5', 'null', 'true', '~', '"q"', '- x'],
  ...['a'.repeat(300), 'é', '中文', 'a b', 'a.b', 'a\tb', 'mm', 'setup', 'teardown'],
];

// ---------------------------------------------------------------- mutations of text

/** One edit of a scenario's text; applied by {@link mutate}. Positions are taken modulo what exists. */
export type Mutation =
  | { readonly kind: 'insert'; readonly at: number; readonly piece: string }
  | { readonly kind: 'delete'; readonly at: number; readonly len: number }
  | { readonly kind: 'value'; readonly which: number; readonly value: string }
  | { readonly kind: 'key'; readonly which: number; readonly key: string }
  | { readonly kind: 'dup-line'; readonly line: number; readonly times: number }
  | { readonly kind: 'del-lines'; readonly line: number; readonly count: number }
  | { readonly kind: 'swap-lines'; readonly a: number; readonly b: number }
  | { readonly kind: 'indent'; readonly line: number; readonly by: string }
  | { readonly kind: 'truncate'; readonly at: number }
  | { readonly kind: 'nest'; readonly which: number; readonly depth: number; readonly flow: 'seq' | 'map' }
  | { readonly kind: 'big-number'; readonly which: number; readonly digits: number };

const VALUE_RE = /(:[ \t]+)([^\s{}[\],#&*!|>'"][^\n,{}[\]#]*)/g;
const KEY_RE = /(^|[\s{,])([A-Za-z_][\w-]*)(\s*:)/gm;

function nth(re: RegExp, text: string, which: number): RegExpExecArray | null {
  const all = [...text.matchAll(re)];
  if (all.length === 0) return null;
  return all[which % all.length] as RegExpExecArray;
}

function lines(text: string): string[] {
  return text.split('\n');
}

export function mutate(text: string, m: Mutation): string {
  switch (m.kind) {
    case 'insert': {
      const at = m.at % (text.length + 1);
      return text.slice(0, at) + m.piece + text.slice(at);
    }
    case 'delete': {
      const at = m.at % (text.length + 1);
      return text.slice(0, at) + text.slice(at + m.len);
    }
    case 'truncate':
      return text.slice(0, m.at % (text.length + 1));
    case 'value': {
      const hit = nth(VALUE_RE, text, m.which);
      if (!hit) return text;
      const start = hit.index + (hit[1] as string).length;
      return text.slice(0, start) + m.value + text.slice(start + (hit[2] as string).length);
    }
    case 'big-number': {
      const hit = nth(VALUE_RE, text, m.which);
      if (!hit) return text;
      const start = hit.index + (hit[1] as string).length;
      return `${text.slice(0, start)}${'9'.repeat(m.digits)}${text.slice(start + (hit[2] as string).length)}`;
    }
    case 'key': {
      const hit = nth(KEY_RE, text, m.which);
      if (!hit) return text;
      const start = hit.index + (hit[1] as string).length;
      return text.slice(0, start) + m.key + text.slice(start + (hit[2] as string).length);
    }
    case 'nest': {
      const hit = nth(VALUE_RE, text, m.which);
      if (!hit) return text;
      const start = hit.index + (hit[1] as string).length;
      const v = hit[2] as string;
      const open = m.flow === 'seq' ? '['.repeat(m.depth) : '{a: '.repeat(m.depth);
      const close = m.flow === 'seq' ? ']'.repeat(m.depth) : '}'.repeat(m.depth);
      return text.slice(0, start) + open + v + close + text.slice(start + v.length);
    }
    case 'dup-line': {
      const ls = lines(text);
      const i = m.line % ls.length;
      ls.splice(i, 0, ...Array.from({ length: m.times }, () => ls[i] as string));
      return ls.join('\n');
    }
    case 'del-lines': {
      const ls = lines(text);
      ls.splice(m.line % ls.length, m.count);
      return ls.join('\n');
    }
    case 'swap-lines': {
      const ls = lines(text);
      const a = m.a % ls.length;
      const b = m.b % ls.length;
      [ls[a], ls[b]] = [ls[b] as string, ls[a] as string];
      return ls.join('\n');
    }
    case 'indent': {
      const ls = lines(text);
      const i = m.line % ls.length;
      ls[i] = m.by + (ls[i] as string).replace(/^\s{0,2}/, '');
      return ls.join('\n');
    }
  }
}

const pos = fc.nat({ max: 1 << 20 });

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant('insert' as const), at: pos, piece: fc.constantFrom(...PIECES) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('insert' as const), at: pos, piece: fc.string({ maxLength: 8 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('insert' as const),
      at: pos,
      piece: fc.string({ unit: 'binary', maxLength: 6 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('delete' as const), at: pos, len: fc.integer({ min: 1, max: 12 }) }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('value' as const),
      which: fc.nat(),
      value: fc.oneof(fc.constantFrom(...WEIRD_VALUES, ...EXPORTERS, ...IMPORTERS), fc.string({ maxLength: 12 })),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('big-number' as const),
      which: fc.nat(),
      digits: fc.integer({ min: 10, max: 400 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('key' as const), which: fc.nat(), key: fc.constantFrom(...KEY_NAMES) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('dup-line' as const),
      line: fc.nat(),
      times: fc.integer({ min: 1, max: 3 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('del-lines' as const),
      line: fc.nat(),
      count: fc.integer({ min: 1, max: 3 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('swap-lines' as const), a: fc.nat(), b: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('indent' as const),
      line: fc.nat(),
      by: fc.constantFrom('', ' ', '   ', '    ', '\t', '  \t', '\u00a0', '      '),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), at: pos }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('nest' as const),
      which: fc.nat(),
      // Deep nesting is slow to parse (deepNestingArb covers it): rare here.
      depth: fc.oneof(
        { weight: 30, arbitrary: fc.integer({ min: 1, max: 20 }) },
        { weight: 1, arbitrary: fc.integer({ min: 100, max: 1500 }) },
      ),
      flow: fc.constantFrom('seq' as const, 'map' as const),
    }),
  },
);

/** A catalogue scenario with 1–6 edits: half-written, mistyped, garbled. */
export const mutatedScenarioArb: fc.Arbitrary<string> = fc
  .tuple(fc.nat(), fc.array(mutationArb, { minLength: 1, maxLength: 6 }))
  .map(([i, ms]) => {
    const cat = corpus().catalogue;
    let t = (cat[i % cat.length] as { text: string }).text;
    for (const m of ms) t = mutate(t, m);
    return t;
  });

/** Mild edits that often still load: other values, repeated or reordered ops and lines. */
export const mildMutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('dup-line' as const),
      line: fc.nat(),
      times: fc.integer({ min: 1, max: 2 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('swap-lines' as const), a: fc.nat(), b: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('del-lines' as const), line: fc.nat(), count: fc.constant(1) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('value' as const),
      which: fc.nat(),
      value: fc.constantFrom('0', '1', '2', '3', 'true', 'false', ...EXPORTERS, ...IMPORTERS),
    }),
  },
);

// ---------------------------------------------------------------- generated scenarios

/** A value of the wrong type, for any slot. */
const wrongValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, true, false, 0, -1, 1.5, 65, 2 ** 53, Number.NaN, Number.POSITIVE_INFINITY, -0),
  fc.constantFrom('', ' ', 'x', '中文', '\u0000', 'a'.repeat(200), '__proto__', '1e309', '.nan'),
  fc.string({ maxLength: 10 }),
  fc.integer(),
  fc.double(),
  fc.array(fc.oneof(fc.integer(), fc.string({ maxLength: 4 })), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 6 }), fc.oneof(fc.integer(), fc.string({ maxLength: 4 })), { maxKeys: 3 }),
);

/**
 * Builds scenarios from the format's own vocabulary; `noisy`: now and then a
 * value of the wrong type, an unknown op, a value out of range.
 */
class Gen {
  constructor(readonly noisy: boolean) {}

  /** Usually `good`; when noisy, sometimes a value of the wrong type. */
  mostly<T>(good: fc.Arbitrary<T>, rate = 12): fc.Arbitrary<T | unknown> {
    return this.noisy ? fc.oneof({ weight: rate, arbitrary: good }, { weight: 1, arbitrary: wrongValue }) : good;
  }

  /** `good`, and when noisy also the `bad` values. */
  or<T>(good: readonly T[], ...bad: T[]): fc.Arbitrary<T> {
    return fc.constantFrom(...good, ...(this.noisy ? bad : []));
  }

  optionValue(s: OptionSpec, buffers: readonly string[]): fc.Arbitrary<unknown> {
    switch (s.type) {
      case 'boolean':
        return fc.boolean();
      case 'int':
        return this.noisy
          ? fc.oneof(fc.integer({ min: s.min, max: s.max }), fc.constantFrom(s.min - 1, s.max + 1))
          : fc.integer({ min: s.min, max: s.max });
      case 'enum':
        return this.or(s.values, 'nope');
      case 'buffer':
        return this.or(buffers, 'nope');
    }
  }

  argValue(s: ArgSpec, pages: number): fc.Arbitrary<unknown> {
    switch (s.type) {
      case 'page':
        return this.noisy
          ? fc.oneof(
              { weight: 6, arbitrary: fc.integer({ min: 0, max: pages - 1 }) },
              { weight: 1, arbitrary: fc.constantFrom(pages, -1) },
            )
          : fc.integer({ min: 0, max: pages - 1 });
      case 'int':
        return this.noisy
          ? fc.oneof(fc.integer({ min: s.min, max: s.max }), fc.constant(s.max + 1))
          : fc.integer({ min: s.min, max: s.max });
      case 'boolean':
        return fc.boolean();
      case 'enum':
        return this.or(s.values.length ? s.values : ['x'], 'nope');
    }
  }

  options(specs: Readonly<Record<string, OptionSpec>>, buffers: readonly string[]): fc.Arbitrary<unknown> {
    const keys = Object.keys(specs);
    if (keys.length === 0) return fc.constant(undefined);
    return fc
      .subarray(keys, { maxLength: Math.min(3, keys.length) })
      .chain((ks) =>
        fc.record(
          Object.fromEntries(ks.map((k) => [k, this.mostly(this.optionValue(specs[k] as OptionSpec, buffers))])),
        ),
      );
  }

  op(targets: readonly Target[]): fc.Arbitrary<unknown> {
    return fc.constantFrom(...targets).chain((t) =>
      this.or(Object.keys(t.ops), 'nope').chain((op) => {
        const specs = t.ops[op] ?? {};
        const keys = Object.keys(specs);
        const call = `${t.name}.${op}`;
        if (keys.length === 0) return this.mostly(fc.constant(call), 8);
        return fc
          .record(
            Object.fromEntries(keys.map((k) => [k, this.mostly(this.argValue(specs[k] as ArgSpec, t.pages), 20)])),
          )
          .map((args) => ({ [call]: args }));
      }),
    );
  }

  /** A whole scenario, serialised as YAML (block or flow) or JSON. */
  scenario(): fc.Arbitrary<string> {
    return fc
      .record({
        bufs: fc.uniqueArray(fc.constantFrom('bo', 'b2', 'buf', 'x'), { minLength: 1, maxLength: 2 }),
        exporters: fc.array(fc.constantFrom(...EXPORTERS), { minLength: 2, maxLength: 2 }),
        pages: fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 2, maxLength: 2 }),
        imps: fc.uniqueArray(fc.constantFrom('k', 'imp', 'dev'), { maxLength: 2 }),
        importers: fc.array(fc.constantFrom(...IMPORTERS), { minLength: 2, maxLength: 2 }),
        impBuf: fc.array(fc.nat(), { minLength: 2, maxLength: 2 }),
        manual: fc.array(fc.boolean(), { minLength: 2, maxLength: 2 }),
      })
      .chain((g) => {
        const buffers = g.bufs.map((name, i) => {
          const def = BUILTIN_EXPORTERS.get(g.exporters[i] as string);
          return { name, def, pages: g.pages[i] as number };
        });
        const importers = g.imps.map((name, i) => {
          const def = BUILTIN_IMPORTERS.get(g.importers[i] as string);
          const buf = buffers[(g.impBuf[i] as number) % buffers.length] as (typeof buffers)[number];
          return { name, def, buf, manual: g.manual[i] as boolean };
        });
        const targets: Target[] = [
          ...buffers.map((b) => {
            const ops: Record<string, Readonly<Record<string, ArgSpec>>> = { get: {}, put: {} };
            for (const [o, s] of Object.entries(b.def?.ops ?? {})) ops[o] = s.args ?? {};
            for (const [o, s] of Object.entries(BUFFER_FILE_OPS)) if (!Object.hasOwn(ops, o)) ops[o] = s.args ?? {};
            return { name: b.name, ops, pages: b.pages };
          }),
          ...importers.map((i) => {
            const ops: Record<string, Readonly<Record<string, ArgSpec>>> = { detach: {} };
            if (i.manual) ops.attach = {};
            for (const [o, s] of Object.entries(i.def?.ops ?? {})) ops[o] = s.args ?? {};
            return { name: i.name, ops, pages: i.buf.pages };
          }),
        ];
        const names = buffers.map((b) => b.name);
        return fc.record({
          name: this.mostly(fc.constantFrom('fuzz', 'fuzz-1', 'a')),
          description: fc.option(fc.string({ maxLength: 20 }), { nil: undefined }),
          buffers: fc.record(
            Object.fromEntries(
              buffers.map((b) => [
                b.name,
                this.mostly(
                  fc.record({
                    exporter: this.mostly(fc.constant(b.def?.name ?? 'ttm'), 30),
                    pages: this.mostly(fc.constant(b.pages), 30),
                    options: this.options(b.def?.options ?? {}, names),
                  }),
                  30,
                ),
              ]),
            ),
          ),
          importers: importers.length
            ? fc.record(
                Object.fromEntries(
                  importers.map((i) => [
                    i.name,
                    fc
                      .tuple(this.options(i.def?.options ?? {}, names), this.mostly(fc.constant(i.buf.name), 30))
                      .map(([o, buffer]) => ({
                        driver: i.def?.name,
                        buffer,
                        options: i.manual ? { ...((o as object) ?? {}), attach: 'manual' } : o,
                      })),
                  ]),
                ),
              )
            : fc.constant(undefined),
          threads: fc
            .uniqueArray(fc.constantFrom('t1', 't2', 't3', 'main'), { minLength: 1, maxLength: 3 })
            .chain((ts) =>
              fc.record(
                Object.fromEntries(ts.map((t) => [t, fc.array(this.op(targets), { minLength: 1, maxLength: 3 })])),
              ),
            ),
          expect: fc.option(
            fc.oneof(
              fc.constant({ verdict: 'safe' }),
              fc.record({ verdict: fc.constant('bug'), finding: fc.constantFrom(...FINDING_CODES) }),
              ...(this.noisy ? [wrongValue] : []),
            ),
            { nil: undefined },
          ),
          explore: fc.option(
            fc.record(
              {
                max_executions: this.mostly(fc.integer({ min: 1, max: 50 })),
                strategy: this.mostly(fc.constantFrom('dfs', 'random')),
                seed: this.mostly(fc.nat()),
              },
              { requiredKeys: [] },
            ),
            { nil: undefined },
          ),
          style: fc.constantFrom('block', 'flow', 'json'),
        });
      })
      .map(({ style, ...o }) => {
        const clean = JSON.parse(JSON.stringify(o));
        if (style === 'json') return JSON.stringify(clean, null, 1);
        return stringify(clean, style === 'flow' ? { collectionStyle: 'flow' } : {});
      });
  }
}

interface Target {
  readonly name: string;
  readonly ops: Readonly<Record<string, Readonly<Record<string, ArgSpec>>>>;
  readonly pages: number;
}

/**
 * A scenario built as data from the format's own vocabulary (drivers, their
 * options, ops and arguments), with a wrong type here and there, serialised
 * as YAML (block or flow) or JSON.
 */
export const generatedScenarioArb: fc.Arbitrary<string> = new Gen(true).scenario();

/** The same without wrong values: it mostly loads, so it reaches the compiler and the explorer. */
export const cleanScenarioArb: fc.Arbitrary<string> = new Gen(false).scenario();

// ---------------------------------------------------------------- hostile shapes

/** Mappings or lists nested 1–5000 deep, in flow or block style, somewhere in a scenario. */
export const deepNestingArb: fc.Arbitrary<string> = fc
  .record({
    depth: fc.oneof(
      { weight: 3, arbitrary: fc.integer({ min: 1, max: 50 }) },
      { weight: 1, arbitrary: fc.integer({ min: 50, max: 5000 }) },
    ),
    style: fc.constantFrom('flow-seq', 'flow-map', 'block-map', 'block-seq', 'mixed'),
    where: fc.constantFrom('name', 'buffers', 'threads', 'options', 'top'),
  })
  .map(({ depth, style, where }) => {
    let v: string;
    if (style === 'flow-seq') v = `${'['.repeat(depth)}1${']'.repeat(depth)}`;
    else if (style === 'flow-map') v = `${'{a: '.repeat(depth)}1${'}'.repeat(depth)}`;
    else if (style === 'mixed') v = `${'[{a: '.repeat(depth)}1${'}]'.repeat(depth)}`;
    else {
      // Block style: every level one space deeper (bounded so the file stays under a megabyte).
      const d = Math.min(depth, 300);
      v = `\n${Array.from({ length: d }, (_, i) => `${' '.repeat(i + 4)}${style === 'block-map' ? 'a:' : '-'}`).join('\n')} 1`;
    }
    switch (where) {
      case 'name':
        return `name: ${v}\nbuffers: { bo: { exporter: ttm } }\nthreads: { t: [bo.put] }\n`;
      case 'buffers':
        return `name: deep\nbuffers:\n  bo: ${v}\nthreads: { t: [bo.put] }\n`;
      case 'threads':
        return `name: deep\nbuffers: { bo: { exporter: ttm } }\nthreads:\n  t: ${v}\n`;
      case 'options':
        return `name: deep\nbuffers:\n  bo: { exporter: ttm, options: ${v.startsWith('\n') ? '' : v} }\nthreads: { t: [bo.put] }\n`;
      default:
        return v.trimStart();
    }
  });

/** "Billion laughs": anchors each aliasing the previous one several times. */
export const aliasBombArb: fc.Arbitrary<string> = fc
  .record({
    levels: fc.integer({ min: 1, max: 12 }),
    fan: fc.integer({ min: 2, max: 10 }),
    at: fc.constantFrom('top', 'name', 'threads'),
  })
  .map(({ levels, fan, at }) => {
    const out = ['a0: &a0 ["lol", "lol"]'];
    for (let l = 1; l <= levels; l++)
      out.push(`a${l}: &a${l} [${Array.from({ length: fan }, () => `*a${l - 1}`).join(', ')}]`);
    const bomb = out.join('\n');
    if (at === 'top') return `${bomb}\nname: x\n`;
    if (at === 'name')
      return `name: x\nbuffers:\n  bo: { exporter: ttm, options: { x: &b0 [1, 2], y: [*b0, *b0] } }\nthreads: { t: [bo.put] }\n`;
    return `name: x\nbuffers: { bo: { exporter: ttm } }\nthreads:\n  t: &t0 [bo.put]\n  u: *t0\n${bomb.replace(/^/gm, '  # ')}\n`;
  });

/** Bytes that are not text: random code units (lone surrogates too), random bytes read as UTF-8 or Latin-1. */
export const garbageArb: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 300 }).map((a) => String.fromCharCode(...a)),
  fc.uint8Array({ maxLength: 600 }).map((b) => new TextDecoder('utf-8').decode(b)),
  fc.uint8Array({ maxLength: 600 }).map((b) => Buffer.from(b).toString('latin1')),
  fc
    .tuple(fc.nat(), fc.constantFrom('\uFEFF', '\uFEFF\uFEFF', '\uFFFE', 'ï»¿', '\u0000', '\r', '\t'))
    .map(([i, bom]) => {
      const cat = corpus().catalogue;
      const t = (cat[i % cat.length] as { text: string }).text;
      return i % 2 ? bom + t : t.replace(/\n/g, `${bom}\n`);
    }),
  fc.tuple(fc.nat(), fc.constantFrom('\r\n', '\r', '\u2028', '\u0085')).map(([i, nl]) => {
    const cat = corpus().catalogue;
    return (cat[i % cat.length] as { text: string }).text.replace(/\n/g, nl);
  }),
);

/** Many small problems or many items in a medium-sized file (up to ~100 KB): what makes validation slow. */
export const manyThingsArb: fc.Arbitrary<string> = fc
  .record({
    kind: fc.constantFrom('keys', 'dup-keys', 'buffers', 'ops', 'bad-ops', 'threads', 'lines'),
    // Thousands of items cost tens of milliseconds each (enormousArb has the megabyte ones): a few.
    n: fc.oneof(
      { weight: 9, arbitrary: fc.integer({ min: 10, max: 200 }) },
      { weight: 1, arbitrary: fc.integer({ min: 200, max: 2000 }) },
    ),
  })
  .map(({ kind, n }) => manyThings(kind, n));

export function manyThings(kind: string, n: number): string {
  const rep = (f: (i: number) => string) => Array.from({ length: n }, (_, i) => f(i)).join('');
  switch (kind) {
    case 'keys':
      return `name: x\n${rep((i) => `key${i}: ${i}\n`)}`;
    case 'dup-keys':
      return `name: x\n${rep(() => 'name: y\n')}`;
    case 'buffers':
      return `name: x\nbuffers:\n${rep((i) => `  b${i}: { exporter: ttm }\n`)}threads:\n  t: [b0.put]\n`;
    case 'ops':
      return `name: x\nbuffers:\n  bo: { exporter: ttm }\nthreads:\n  t:\n${rep(() => '    - bo.get\n')}`;
    case 'bad-ops':
      return `name: x\nbuffers:\n  bo: { exporter: ttm }\nthreads:\n  t:\n${rep((i) => `    - bo.op${i}: { page: ${i} }\n`)}`;
    case 'threads':
      return `name: x\nbuffers:\n  bo: { exporter: ttm }\nthreads:\n${rep((i) => `  t${i}: [bo.get]\n`)}`;
    default:
      return rep((i) => `${'x'.repeat(i % 60)}: [${i}\n`);
  }
}

/** Scenario text for `loadScenario`: every kind above. */
export const scenarioTextArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 14, arbitrary: mutatedScenarioArb },
  { weight: 4, arbitrary: generatedScenarioArb },
  { weight: 3, arbitrary: garbageArb },
  { weight: 1, arbitrary: deepNestingArb },
  { weight: 1, arbitrary: aliasBombArb },
  { weight: 1, arbitrary: manyThingsArb },
);

/** Scenarios likely to load, for the explorer: generated ones and lightly edited catalogue ones. */
export const loadableScenarioArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: cleanScenarioArb },
  {
    weight: 2,
    arbitrary: fc.tuple(fc.nat(), fc.array(mildMutationArb, { minLength: 1, maxLength: 3 })).map(([i, ms]) => {
      const cat = corpus().catalogue;
      let t = (cat[i % cat.length] as { text: string }).text;
      for (const m of ms) t = mutate(t, m);
      return t;
    }),
  },
);

/**
 * Enormous input: over the size limit (1.5–5 MiB), or just under it and
 * costly to read (many keys, many ops, one huge string, long lines,
 * multi-byte characters).
 */
export const enormousArb: fc.Arbitrary<string> = fc
  .record({
    kind: fc.constantFrom(
      'over',
      'keys',
      'ops',
      'bad-ops',
      'string',
      'comment',
      'lines',
      'multibyte',
      'buffers',
      'threads',
    ),
    size: fc.integer({ min: 0, max: 100 }),
  })
  .map(({ kind, size }) => enormous(kind, size));

const MIB = 1 << 20;

export function enormous(kind: string, size: number): string {
  /** Repeats `unit` to just under a megabyte (size: 0–100 % of the way from 0.9 to 1 MiB). */
  const fill = (head: string, unit: (i: number) => string, tail = '') => {
    const target = Math.floor(MIB * (0.9 + size / 1000)) - head.length - tail.length;
    const parts: string[] = [];
    let n = 0;
    for (let i = 0; n < target; i++) {
      const u = unit(i);
      if (n + u.length > target) break;
      parts.push(u);
      n += u.length;
    }
    return head + parts.join('') + tail;
  };
  switch (kind) {
    case 'over': {
      const t = corpus().catalogue[size % 10]?.text ?? 'name: x\n';
      return t.repeat(Math.ceil((MIB * (1.5 + (size / 100) * 3.5)) / t.length));
    }
    case 'keys':
      return fill('name: x\n', (i) => `key${i}: ${i}\n`);
    case 'ops':
      return fill('name: x\nbuffers:\n  bo: { exporter: ttm }\nthreads:\n  t:\n', () => '    - bo.get\n');
    case 'bad-ops':
      return fill(
        'name: x\nbuffers:\n  bo: { exporter: ttm }\nthreads:\n  t:\n',
        (i) => `    - bo.op${i}: { page: ${i} }\n`,
      );
    case 'string':
      return fill(
        'name: x\ndescription: "',
        () => 'lorem ipsum ',
        '"\nbuffers: { bo: { exporter: ttm } }\nthreads: { t: [bo.put] }\n',
      );
    case 'comment':
      return fill('name: x\nbuffers: { bo: { exporter: ttm } }\nthreads: { t: [bo.put] }\n#', () => 'x');
    case 'lines':
      return fill('', (i) => `${'y'.repeat(i % 2000)}: [${i}\n`);
    case 'multibyte':
      return fill('name: x\ndescription: ', () => 'é中🙂');
    case 'buffers':
      return fill('name: x\nthreads: { t: [b0.put] }\nbuffers:\n', (i) => `  b${i}: { exporter: ttm, pages: 2 }\n`);
    default:
      return fill('name: x\nbuffers: { bo: { exporter: ttm } }\nthreads:\n', (i) => `  t${i}: [bo.get, bo.put]\n`);
  }
}

// ---------------------------------------------------------------- tokens

const hex8 = fc.stringMatching(/^[0-9a-f]{8}$/);
const runs = fc
  .array(
    fc.tuple(
      fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'),
      fc.oneof(
        { weight: 60, arbitrary: fc.constant('') },
        { weight: 40, arbitrary: fc.integer({ min: 0, max: 30 }).map(String) },
        { weight: 10, arbitrary: fc.constantFrom('00', '01', '99999999999999999999', '1e3', '-1') },
        // Runs of ten million choices (the most a token may hold) are slow to decode: rare.
        { weight: 1, arbitrary: fc.constantFrom('9999999', '10000000', '10000001') },
      ),
    ),
    { maxLength: 12 },
  )
  .map((rs) => rs.map(([l, n]) => l + n).join(''));

/** A token edit: insert, delete or replace characters. */
const tokenEdit = fc.record({
  at: fc.nat(),
  del: fc.nat({ max: 3 }),
  ins: fc.oneof(
    fc.constantFrom('', '.', 'a', 'Z', '0', '9', ' ', '\n', 'dc1.', 'é', '\u0000'),
    fc.string({ maxLength: 3 }),
  ),
});

export interface TokenInput {
  /** The catalogue scenario the token is replayed on. */
  readonly scenario: number;
  readonly token: string;
  /** Tokens to replay first (`--token` repeated). */
  readonly before: readonly string[];
}

/** A replay token: random text, token-shaped text, real tokens edited, real tokens of other scenarios. */
export const tokenTextArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 2, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  {
    weight: 3,
    arbitrary: fc
      .tuple(fc.constantFrom('dc1', 'dc2', 'DC1', 'dc1 ', ''), fc.oneof(hex8, fc.string({ maxLength: 9 })), runs)
      .map(([v, h, r]) => `${v}.${h}.${r}`),
  },
  {
    weight: 4,
    arbitrary: fc.tuple(fc.nat(), fc.array(tokenEdit, { maxLength: 3 })).map(([i, edits]) => {
      const toks = corpus().tokens;
      let t = (toks[i % toks.length] as { token: string }).token;
      for (const e of edits) {
        const at = e.at % (t.length + 1);
        t = t.slice(0, at) + e.ins + t.slice(at + e.del);
      }
      return t;
    }),
  },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.nat(), fc.constantFrom(' ', '\n', '\t', '  \n')).map(([i, ws]) => {
      const toks = corpus().tokens;
      return `${ws}${(toks[i % toks.length] as { token: string }).token}${ws}`;
    }),
  },
);

/** A token to replay on a catalogue scenario: often with that scenario's own fingerprint, so the schedule is what is tested. */
export const tokenInputArb: fc.Arbitrary<TokenInput> = fc
  .record({
    scenario: fc.nat(),
    kind: fc.constantFrom('text', 'own-hash', 'own-hash', 'real-own', 'real-other'),
    text: tokenTextArb,
    r: runs,
    pick: fc.nat(),
    before: fc.array(fc.oneof(tokenTextArb, fc.constant('')), { maxLength: 2 }),
    ownBefore: fc.boolean(),
  })
  .map((x) => {
    const c = corpus();
    const scenario = x.scenario % c.programs.length;
    const hash = (c.programs[scenario] as { hash: string }).hash;
    const own = c.tokens.filter((t) => t.scenario === scenario);
    const pick = <T>(a: readonly T[]) => a[x.pick % a.length] as T;
    let token: string;
    if (x.kind === 'own-hash') token = `dc1.${hash}.${x.r}`;
    else if (x.kind === 'real-own') token = pick(own).token;
    else if (x.kind === 'real-other') token = pick(c.tokens).token;
    else token = x.text;
    const before = x.ownBefore ? x.before.map((b, i) => (i % 2 ? b : pick(own).token)) : x.before;
    return { scenario, token, before };
  });

// ---------------------------------------------------------------- traces

/** Every path in a JSON value, breadth first, at most `limit` of them. */
function paths(v: unknown, limit: number): (string | number)[][] {
  const out: (string | number)[][] = [];
  const queue: [unknown, (string | number)[]][] = [[v, []]];
  while (queue.length && out.length < limit) {
    const [x, p] = queue.shift() as [unknown, (string | number)[]];
    out.push(p);
    if (Array.isArray(x)) for (let i = 0; i < x.length; i++) queue.push([x[i], [...p, i]]);
    else if (x && typeof x === 'object') for (const [k, y] of Object.entries(x)) queue.push([y, [...p, k]]);
  }
  return out;
}

let tracePaths: (string | number)[][][] | null = null;

let traceObjs: unknown[] | null = null;

function traceObjects(): { objects: unknown[]; paths: (string | number)[][][] } {
  traceObjs ??= corpus().traces.map((t) => JSON.parse(t) as unknown);
  tracePaths ??= traceObjs.map((o) => paths(o, 3000));
  return { objects: traceObjs, paths: tracePaths };
}

type JsonEdit =
  | { readonly kind: 'set'; readonly path: number; readonly value: unknown }
  | { readonly kind: 'delete'; readonly path: number }
  | { readonly kind: 'version'; readonly value: unknown }
  | { readonly kind: 'v1' }
  | { readonly kind: 'format'; readonly value: unknown };

const jsonEdit: fc.Arbitrary<JsonEdit> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('set' as const),
      path: fc.nat(),
      value: fc.oneof(wrongValue, fc.jsonValue({ maxDepth: 2 }), fc.constantFrom(-1, 1e308, 2 ** 53 + 2)),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('delete' as const), path: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('version' as const),
      value: fc.constantFrom(0, 1, 2, 3, 99, -1, 1.5, '2', null, true, Number.POSITIVE_INFINITY, [2]),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'v1' as const }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('format' as const),
      value: fc.constantFrom('dmabuf-check-trace ', 'dmabuf-check-report', '', null, 1),
    }),
  },
);

function applyJsonEdit(o: unknown, ps: (string | number)[][], e: JsonEdit): unknown {
  const root = o as Record<string, unknown>;
  if (!root || typeof root !== 'object') return o;
  if (e.kind === 'version') root.version = e.value;
  else if (e.kind === 'format') root.format = e.value;
  else if (e.kind === 'v1') {
    root.version = 1;
    for (const s of (Array.isArray(root.steps) ? root.steps : []) as Record<string, unknown>[])
      if (s && typeof s === 'object') delete s.world;
  } else {
    const p = ps[e.path % ps.length] as (string | number)[];
    if (p.length === 0) return e.kind === 'set' ? e.value : undefined;
    let parent: unknown = o;
    for (const k of p.slice(0, -1)) parent = (parent as Record<string | number, unknown> | null)?.[k];
    if (!parent || typeof parent !== 'object') return o;
    const last = p[p.length - 1] as string | number;
    if (e.kind === 'set') (parent as Record<string | number, unknown>)[last] = e.value;
    else if (Array.isArray(parent) && typeof last === 'number') parent.splice(last, 1);
    else delete (parent as Record<string | number, unknown>)[last];
  }
  return o;
}

/**
 * A trace file: a real trace with fields changed, removed or of the wrong
 * type, another version, edited as text (truncated, garbled), any JSON, or
 * not JSON at all.
 */
export const traceTextArb: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc
      .tuple(fc.nat(), fc.array(jsonEdit, { minLength: 1, maxLength: 3 }), fc.constantFrom(0, 1, 2))
      .map(([i, edits, indent]) => {
        const { objects, paths: ps } = traceObjects();
        const n = i % objects.length;
        let o: unknown = structuredClone(objects[n]);
        for (const e of edits) o = applyJsonEdit(o, ps[n] as (string | number)[][], e);
        return JSON.stringify(o, null, indent) ?? 'undefined';
      }),
  },
  {
    weight: 3,
    arbitrary: fc.tuple(fc.nat(), fc.array(mutationArb, { minLength: 1, maxLength: 3 })).map(([i, ms]) => {
      const texts = corpus().traces;
      let t = texts[i % texts.length] as string;
      for (const m of ms) if (m.kind === 'insert' || m.kind === 'delete' || m.kind === 'truncate') t = mutate(t, m);
      return t;
    }),
  },
  { weight: 1, arbitrary: fc.json({ maxDepth: 3 }) },
  { weight: 1, arbitrary: garbageArb },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '',
      'null',
      '{}',
      '[]',
      '"dmabuf-check-trace"',
      '{"format":"dmabuf-check-trace"}',
      '{"format":"dmabuf-check-trace","version":2}',
      '{"format":"dmabuf-check-trace","version":2,"steps":{}}',
      `${'['.repeat(100000)}${']'.repeat(100000)}`,
      `{"a":${'['.repeat(5000)}`,
    ),
  },
);
