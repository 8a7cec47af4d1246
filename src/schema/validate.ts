/**
 * A small JSON Schema (draft 2020-12) validator: exactly the keywords the
 * schemas of schemas/ use (`$ref` to `#/$defs/…`, type, enum, const,
 * properties, patternProperties, additionalProperties, required,
 * propertyNames, min/maxProperties, items, min/maxItems, minimum, maximum,
 * minLength, pattern, allOf, anyOf, oneOf, not, if/then/else). An unknown
 * keyword throws, so a schema cannot use one it would silently ignore. The
 * trace loader (trace/load.ts) checks a trace with it; the tests check
 * scenarios and outputs. Pure: runs in the browser too.
 *
 * `strict`: an object schema (`type` includes "object") that lists
 * `properties` and says nothing about other properties is treated as closed.
 * The published result and trace schemas leave such objects open (readers
 * ignore fields they do not know, and a field may be added within a
 * version); the tests validate real outputs strictly, so the schema must name
 * every field the code emits and the two cannot drift apart.
 */

export type SchemaObject = { readonly [k: string]: unknown };
export type JsonSchema = boolean | SchemaObject;
type Schema = JsonSchema;

export const JSON_SCHEMA_DIALECT = 'https://json-schema.org/draft/2020-12/schema';

export interface ValidateOptions {
  readonly strict?: boolean;
  /** Stop after this many problems (default: all). */
  readonly max?: number;
}

const ANNOTATIONS = new Set([
  '$schema',
  '$id',
  '$comment',
  'title',
  'description',
  'default',
  'examples',
  'deprecated',
]);
const KEYWORDS = new Set([
  ...ANNOTATIONS,
  '$ref',
  '$defs',
  'type',
  'enum',
  'const',
  'properties',
  'patternProperties',
  'additionalProperties',
  'required',
  'propertyNames',
  'minProperties',
  'maxProperties',
  'items',
  'minItems',
  'maxItems',
  'minimum',
  'maximum',
  'minLength',
  'pattern',
  'allOf',
  'anyOf',
  'oneOf',
  'not',
  'if',
  'then',
  'else',
]);

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function hasType(v: unknown, t: string): boolean {
  const actual = typeOf(v);
  return actual === t || (t === 'number' && actual === 'integer');
}

function equal(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function pointer(root: Schema, ref: string): Schema {
  if (!ref.startsWith('#')) throw new Error(`$ref ${ref}: only local references are supported`);
  let cur: unknown = root;
  for (const raw of ref.slice(1).split('/').slice(1)) {
    const seg = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
    if (!cur || typeof cur !== 'object' || !Object.hasOwn(cur, seg)) throw new Error(`$ref ${ref}: not found`);
    cur = (cur as Record<string, unknown>)[seg];
  }
  return cur as Schema;
}

const regexCache = new Map<string, RegExp>();
function regex(p: string): RegExp {
  let r = regexCache.get(p);
  if (!r) regexCache.set(p, (r = new RegExp(p, 'u')));
  return r;
}

/** Every problem of `data` against `schema`, as `<path>: <what>` lines; empty when valid. */
export function validate(schema: Schema, data: unknown, opts: ValidateOptions = {}): string[] {
  const errors: string[] = [];
  check(schema, schema, data, '$', errors, opts.strict ?? false);
  return opts.max !== undefined ? errors.slice(0, opts.max) : errors;
}

function check(root: Schema, s: Schema, v: unknown, at: string, out: string[], strict: boolean): void {
  if (s === true) return;
  if (s === false) {
    out.push(`${at}: not allowed`);
    return;
  }
  for (const k of Object.keys(s)) if (!KEYWORDS.has(k)) throw new Error(`schema keyword "${k}" is not supported`);
  const sub = (schema: unknown, value: unknown, path: string) => {
    const e: string[] = [];
    check(root, schema as Schema, value, path, e, strict);
    return e;
  };
  const push = (e: string[]) => out.push(...e);

  if (s.$ref !== undefined) push(sub(pointer(root, s.$ref as string), v, at));
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? (s.type as string[]) : [s.type as string];
    if (!types.some((t) => hasType(v, t))) {
      out.push(`${at}: expected ${types.join(' or ')}, found ${typeOf(v)}`);
      return;
    }
  }
  if (s.enum !== undefined && !(s.enum as unknown[]).some((e) => equal(e, v)))
    out.push(`${at}: ${JSON.stringify(v)} is not one of ${JSON.stringify(s.enum)}`);
  if (s.const !== undefined && !equal(s.const, v)) out.push(`${at}: expected ${JSON.stringify(s.const)}`);

  if (typeof v === 'number') {
    if (typeof s.minimum === 'number' && v < s.minimum) out.push(`${at}: ${v} < minimum ${s.minimum}`);
    if (typeof s.maximum === 'number' && v > s.maximum) out.push(`${at}: ${v} > maximum ${s.maximum}`);
  }
  if (typeof v === 'string') {
    if (typeof s.pattern === 'string' && !regex(s.pattern).test(v))
      out.push(`${at}: ${JSON.stringify(v)} does not match ${s.pattern}`);
    if (typeof s.minLength === 'number' && [...v].length < s.minLength)
      out.push(`${at}: shorter than ${s.minLength} characters`);
  }
  if (Array.isArray(v)) {
    if (typeof s.minItems === 'number' && v.length < s.minItems) out.push(`${at}: fewer than ${s.minItems} items`);
    if (typeof s.maxItems === 'number' && v.length > s.maxItems) out.push(`${at}: more than ${s.maxItems} items`);
    if (s.items !== undefined) for (let i = 0; i < v.length; i++) push(sub(s.items, v[i], `${at}[${i}]`));
  }
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o);
    if (typeof s.minProperties === 'number' && keys.length < s.minProperties)
      out.push(`${at}: fewer than ${s.minProperties} properties`);
    if (typeof s.maxProperties === 'number' && keys.length > s.maxProperties)
      out.push(`${at}: more than ${s.maxProperties} properties`);
    for (const r of (s.required as string[] | undefined) ?? [])
      if (!Object.hasOwn(o, r)) out.push(`${at}: missing required property "${r}"`);
    const props = (s.properties ?? {}) as Record<string, Schema>;
    const patterns = Object.entries((s.patternProperties ?? {}) as Record<string, Schema>);
    const declaresObject = s.type === 'object' || (Array.isArray(s.type) && s.type.includes('object'));
    const additional =
      s.additionalProperties !== undefined
        ? (s.additionalProperties as Schema)
        : // strict: an object schema listing properties is closed
          !(strict && declaresObject && s.properties !== undefined && s.patternProperties === undefined);
    for (const k of keys) {
      const path = `${at}.${k}`;
      if (s.propertyNames !== undefined) push(sub(s.propertyNames, k, `${path} (name)`));
      let matched = false;
      if (Object.hasOwn(props, k)) {
        matched = true;
        push(sub(props[k], o[k], path));
      }
      for (const [p, ps] of patterns) {
        if (regex(p).test(k)) {
          matched = true;
          push(sub(ps, o[k], path));
        }
      }
      if (!matched) {
        const e = sub(additional, o[k], path);
        if (additional === false) out.push(`${path}: unknown property`);
        else push(e);
      }
    }
  }

  for (const a of (s.allOf as Schema[] | undefined) ?? []) push(sub(a, v, at));
  if (s.anyOf !== undefined) {
    const results = (s.anyOf as Schema[]).map((a) => sub(a, v, at));
    if (!results.some((e) => e.length === 0))
      out.push(`${at}: matches none of anyOf (${results.map((e) => e[0]).join(' | ')})`);
  }
  if (s.oneOf !== undefined) {
    const results = (s.oneOf as Schema[]).map((a) => sub(a, v, at));
    const n = results.filter((e) => e.length === 0).length;
    if (n !== 1)
      out.push(
        n === 0
          ? `${at}: matches none of oneOf (${results.map((e) => e[0]).join(' | ')})`
          : `${at}: matches ${n} of oneOf`,
      );
  }
  if (s.not !== undefined && sub(s.not, v, at).length === 0) out.push(`${at}: matches a schema it must not`);
  if (s.if !== undefined) {
    if (sub(s.if, v, at).length === 0) {
      if (s.then !== undefined) push(sub(s.then, v, at));
    } else if (s.else !== undefined) {
      push(sub(s.else, v, at));
    }
  }
}

const SUBSCHEMA = ['additionalProperties', 'propertyNames', 'items', 'not', 'if', 'then', 'else'];
const SUBSCHEMA_LISTS = ['allOf', 'anyOf', 'oneOf'];
const SUBSCHEMA_MAPS = ['$defs', 'properties', 'patternProperties'];

/** What is wrong with a schema itself: unknown keywords, patterns that do not compile, references that do not resolve. */
export function schemaProblems(root: JsonSchema): string[] {
  const out: string[] = [];
  const walk = (s: unknown, at: string): void => {
    if (typeof s === 'boolean') return;
    if (!s || typeof s !== 'object' || Array.isArray(s)) {
      out.push(`${at}: not a schema`);
      return;
    }
    const o = s as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!KEYWORDS.has(k)) out.push(`${at}: unknown keyword "${k}"`);
    const patterns = [
      ...(typeof o.pattern === 'string' ? [o.pattern] : []),
      ...Object.keys((o.patternProperties ?? {}) as object),
    ];
    for (const p of patterns) {
      try {
        regex(p);
      } catch (e) {
        out.push(`${at}: pattern ${p}: ${(e as Error).message}`);
      }
    }
    if (typeof o.$ref === 'string') {
      try {
        pointer(root, o.$ref);
      } catch (e) {
        out.push(`${at}: ${(e as Error).message}`);
      }
    }
    for (const k of SUBSCHEMA) if (o[k] !== undefined) walk(o[k], `${at}/${k}`);
    for (const k of SUBSCHEMA_LISTS)
      for (const [i, x] of ((o[k] as unknown[] | undefined) ?? []).entries()) walk(x, `${at}/${k}/${i}`);
    for (const k of SUBSCHEMA_MAPS)
      for (const [n, x] of Object.entries((o[k] ?? {}) as object)) walk(x, `${at}/${k}/${n}`);
  };
  walk(root, '#');
  return out;
}
