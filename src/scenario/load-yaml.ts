/**
 * Reads a scenario from YAML text (contract: docs/scenario-format.md).
 *
 * Pure: no file system. The caller reads the file and, when the scenario names
 * driver modules by path, loads them first ({@link driverModuleRefs}) and
 * passes them in. Every problem is reported with `file:line:col`, what was
 * found and what was expected, and the nearest valid name when it looks like a
 * typo; all problems are collected, not just the first.
 */
import {
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  type Pair,
  parseDocument,
  type Scalar,
  type YAMLError,
  type YAMLMap,
} from 'yaml';
import { FINDING_CODES, type FindingCode } from '../checkers/finding.ts';
import type { ArgSpec, DriverDef, ExporterDef, ImporterDef, OptionSpec } from '../drivers/driver.ts';
import { BUILTIN_EXPORTERS, BUILTIN_IMPORTERS } from '../drivers/registry.ts';
import { MAX_THREADS } from '../explorer/token.ts';
import { expectedOneOf, nearest, ScenarioError, type ScenarioIssue } from './errors.ts';
import { BUFFER_FILE_OPS } from './file-ops.ts';
import type {
  BufferSpec,
  ExpectSpec,
  ExploreSpec,
  ImporterSpec,
  OpSpecCall,
  ScenarioSpec,
  SourceLoc,
  ThreadSpec,
} from './spec.ts';

export const MAX_PAGES = 64;
export const MAX_SCENARIO_BYTES = 1 << 20;
/** A scenario's name. */
export const NAME_RE = /^[a-z0-9-]+$/;
/** A buffer, importer or thread name. */
export const OBJECT_RE = /^[A-Za-z][A-Za-z0-9_-]*$/;
/** `explore:` limits. */
export const MAX_EXPLORE_EXECUTIONS = 1_000_000_000;
export const MAX_SEED = 2 ** 32 - 1;

/** A driver reference that names a module (a relative path), not a built-in. */
export function isModuleRef(ref: string): boolean {
  return /[/\\]/.test(ref) || /\.(ts|mts|js|mjs)$/.test(ref);
}

class Ctx {
  readonly issues: ScenarioIssue[] = [];
  constructor(
    readonly file: string,
    readonly lc: LineCounter,
  ) {}

  loc(node: Node | Pair | null | undefined): SourceLoc {
    const n = node && 'range' in node ? node : node && 'key' in node ? (node.key as Node | null) : null;
    const off = n?.range?.[0] ?? 0;
    const p = this.lc.linePos(off);
    return { line: p.line, col: p.col };
  }

  err(node: Node | Pair | null | undefined, message: string): void {
    const l = this.loc(node);
    this.issues.push({ file: this.file, line: l.line, col: l.col, message: printable(message) });
  }
}

/** At most this many problems are listed per file; the rest are counted in one last line. */
export const MAX_ISSUES = 100;

/**
 * The issues to throw: the first {@link MAX_ISSUES}, and one more saying how
 * many follow, at the position of the first one left out (a garbled file can
 * have a problem on every line; the first ones are what the author fixes).
 */
function capped(issues: readonly ScenarioIssue[]): ScenarioIssue[] {
  if (issues.length <= MAX_ISSUES) return [...issues];
  const next = issues[MAX_ISSUES] as ScenarioIssue;
  const more = issues.length - MAX_ISSUES;
  return [
    ...issues.slice(0, MAX_ISSUES),
    {
      ...next,
      message: `${more} more problem${more === 1 ? '' : 's'} from here on, not listed; fix the ones above first`,
    },
  ];
}

/**
 * A message as printed: one line (control characters and line breaks the
 * scenario's own text brought in are escaped), names quoted in it cut at 60
 * characters and the whole at 2,000, so a megabyte-long key is not echoed
 * back whole.
 */
function printable(message: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: escaping them is the point
  const one = message.replace(/[\u0000-\u001f\u007f\u0085\u2028\u2029]/g, (c) =>
    c === '\n'
      ? '\\n'
      : c === '\t'
        ? '\\t'
        : c === '\r'
          ? '\\r'
          : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  if (one.length < 200) return one;
  // Quoted names in order, each pair of quotes taken from the left.
  const cut = one.replace(/"([^"]*)"/g, (m, q: string) => (q.length > 60 ? `"${q.slice(0, 60)}…"` : m));
  return cut.length > 2000 ? `${cut.slice(0, 2000)}…` : cut;
}

/** `o[k]` for own keys only: a scenario naming "constructor" or "__proto__" finds nothing. */
function own<T>(o: Readonly<Record<string, T>>, k: string): T | undefined {
  return Object.hasOwn(o, k) ? o[k] : undefined;
}

function describe(node: unknown): string {
  if (node === null || node === undefined) return 'nothing';
  if (isAlias(node)) return `the alias *${node.source}`;
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) {
    const v = node.value;
    if (v === null) return 'null';
    if (typeof v === 'string') return `the string "${v.length > 40 ? `${v.slice(0, 40)}…` : v}"`;
    return `${typeof v} ${String(v)}`;
  }
  return 'something else';
}

function scalarString(c: Ctx, node: unknown, what: string): string | null {
  if (isScalar(node) && typeof node.value === 'string') return node.value;
  c.err(node as Node, `${what}: expected a string, found ${describe(node)}`);
  return null;
}

function pairsOf(c: Ctx, node: unknown, what: string): Pair<Scalar, Node>[] | null {
  if (!isMap(node)) {
    c.err(node as Node, `${what}: expected a mapping, found ${describe(node)}`);
    return null;
  }
  const out: Pair<Scalar, Node>[] = [];
  for (const p of (node as YAMLMap).items) {
    if (!isScalar(p.key) || typeof p.key.value !== 'string') {
      c.err(p.key as Node, `${what}: keys must be plain names, found ${describe(p.key)}`);
      continue;
    }
    out.push(p as Pair<Scalar, Node>);
  }
  return out;
}

function keyOf(p: Pair<Scalar, Node>): string {
  return p.key.value as unknown as string;
}

/** Checks that only `allowed` keys appear; returns a key → pair map. */
function fields(
  c: Ctx,
  node: unknown,
  what: string,
  allowed: readonly string[],
): Map<string, Pair<Scalar, Node>> | null {
  const pairs = pairsOf(c, node, what);
  if (!pairs) return null;
  const m = new Map<string, Pair<Scalar, Node>>();
  for (const p of pairs) {
    const k = keyOf(p);
    if (!allowed.includes(k)) {
      c.err(p.key, `${what}: unknown key "${k}"; ${expectedOneOf(k, allowed)}`);
      continue;
    }
    m.set(k, p);
  }
  return m;
}

function intValue(c: Ctx, node: unknown, what: string, min: number, max: number): number | null {
  if (isScalar(node) && typeof node.value === 'number' && Number.isInteger(node.value)) {
    const v = node.value;
    if (v < min || v > max) {
      c.err(node, `${what}: ${v} is out of range; expected an integer from ${min} to ${max}`);
      return null;
    }
    return v;
  }
  c.err(node as Node, `${what}: expected an integer from ${min} to ${max}, found ${describe(node)}`);
  return null;
}

function optionValue(c: Ctx, node: unknown, what: string, spec: OptionSpec): boolean | string | number | null {
  if (spec.type === 'boolean') {
    if (isScalar(node) && typeof node.value === 'boolean') return node.value;
    c.err(node as Node, `${what}: expected true or false, found ${describe(node)}`);
    return null;
  }
  if (spec.type === 'int') return intValue(c, node, what, spec.min, spec.max);
  if (spec.type === 'buffer') return scalarString(c, node, what);
  if (isScalar(node) && typeof node.value === 'string' && spec.values.includes(node.value)) return node.value;
  const found = isScalar(node) ? String(node.value) : '';
  c.err(node as Node, `${what}: found ${describe(node)}; ${expectedOneOf(found, spec.values)}`);
  return null;
}

/** A driver module a scenario names, with where it was first written (1-based). */
export interface DriverModuleRef {
  readonly ref: string;
  readonly line: number;
  readonly col: number;
}

/**
 * Modules named by path in `exporter:` / `driver:`, each with the position of
 * its first mention; the caller loads them before {@link loadScenario}.
 */
export function driverModuleRefsAt(text: string): DriverModuleRef[] {
  const lc = new LineCounter();
  const doc = parseDocument(text.length > MAX_SCENARIO_BYTES ? '' : text, { lineCounter: lc });
  const refs = new Map<string, DriverModuleRef>();
  const root = doc.contents;
  if (!isMap(root)) return [];
  for (const [section, key] of [
    ['buffers', 'exporter'],
    ['importers', 'driver'],
  ] as const) {
    const m = root.get(section, true);
    if (!isMap(m)) continue;
    for (const item of m.items) {
      if (!isMap(item.value)) continue;
      const r = item.value.get(key, true);
      if (!isScalar(r) || typeof r.value !== 'string' || !isModuleRef(r.value) || refs.has(r.value)) continue;
      const p = lc.linePos(r.range?.[0] ?? 0);
      refs.set(r.value, { ref: r.value, line: p.line, col: p.col });
    }
  }
  return [...refs.values()];
}

/** Modules named by path in `exporter:` / `driver:`; the caller loads them before {@link loadScenario}. */
export function driverModuleRefs(text: string): string[] {
  return driverModuleRefsAt(text).map((r) => r.ref);
}

function duplicateKey(key: string | null): string {
  return `duplicate key${key === null ? '' : ` "${key}"`}: a key may appear only once in a mapping`;
}

/**
 * Keys that appear twice in one mapping, each at its second occurrence. The
 * YAML parser's own check (`uniqueKeys`) compares every pair of keys of a
 * mapping: a file of 20,000 keys took seconds, a megabyte of them minutes.
 * Scalar keys are compared by value, as that check does.
 */
function duplicateKeys(doc: ReturnType<typeof parseDocument>): { pos: number; message: string }[] {
  const out: { pos: number; message: string }[] = [];
  eachNode(doc.contents, (node) => {
    if (!isMap(node)) return;
    const seen = new Set<unknown>();
    for (const pair of node.items) {
      if (!isScalar(pair.key)) continue;
      const v = pair.key.value;
      if (seen.has(v)) out.push({ pos: pair.key.range?.[0] ?? 0, message: duplicateKey(String(v)) });
      else seen.add(v);
    }
  });
  return out;
}

/**
 * Calls `f` on every node under `root`, in file order. Iterative: the
 * `yaml` package's `visit` recurses and copies the path to every node, so a
 * file nesting mappings 5,000 deep took seconds (quadratic in the depth) or
 * overflowed the stack.
 */
function eachNode(root: unknown, f: (node: Node, depth: number) => void): void {
  const stack: [unknown, number][] = [[root, 1]];
  while (stack.length > 0) {
    const [n, depth] = stack.pop() as [unknown, number];
    if (isPair(n)) {
      stack.push([n.value, depth], [n.key, depth]);
    } else if (isMap(n) || isSeq(n)) {
      f(n, depth);
      for (let i = n.items.length - 1; i >= 0; i--) stack.push([n.items[i], depth + 1]);
    } else if (isScalar(n) || isAlias(n)) {
      f(n, depth);
    }
  }
}

/**
 * Mappings and lists nested deeper than this are refused. A scenario needs
 * five levels; how deep the YAML parser can go depends on the stack it runs
 * on (a worker thread's, the command line's), so a fixed limit makes the
 * same file load, or not, everywhere.
 */
export const MAX_NESTING = 32;

/** A YAML parse error in words a scenario author reads. */
function yamlMessage(e: YAMLError): string {
  switch (e.code) {
    case 'DUPLICATE_KEY':
      return duplicateKey(null);
    case 'RESOURCE_EXHAUSTION':
      return 'mappings and lists are nested too deeply here for the YAML parser to follow; a scenario needs only a few levels';
    case 'MULTIPLE_DOCS':
      return 'a scenario file holds one YAML document, but a second one starts here ("---"); put each scenario in its own file';
    default:
      return `YAML: ${e.message.split('\n')[0]}`;
  }
}

export interface LoadOptions {
  /** Driver modules already loaded, by the reference the scenario wrote. */
  readonly modules?: ReadonlyMap<string, DriverDef>;
}

/** Parses and validates a scenario; throws {@link ScenarioError} listing every problem. */
export function loadScenario(text: string, file: string, opts: LoadOptions = {}): ScenarioSpec {
  if (text.length > MAX_SCENARIO_BYTES) {
    throw new ScenarioError([
      {
        file,
        line: 1,
        col: 1,
        message: `file is ${text.length} bytes; a scenario may be at most ${MAX_SCENARIO_BYTES}`,
      },
    ]);
  }
  const lc = new LineCounter();
  // Duplicate keys are found below (duplicateKeys), in linear time.
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: false, prettyErrors: false });
  const c = new Ctx(file, lc);
  try {
    const found: { pos: number; message: string }[] = [];
    let deep = false;
    for (const e of doc.errors) {
      // One stack overflow is reported once, not at every level it unwound through.
      if (e.code === 'RESOURCE_EXHAUSTION' && deep) continue;
      if (e.code === 'RESOURCE_EXHAUSTION') deep = true;
      found.push({ pos: e.pos[0], message: yamlMessage(e) });
    }
    found.push(...duplicateKeys(doc));
    found.sort((a, b) => a.pos - b.pos);
    for (const f of found) {
      const p = lc.linePos(f.pos);
      c.issues.push({ file, line: p.line, col: p.col, message: printable(f.message) });
    }
    if (c.issues.length) throw new ScenarioError(capped(c.issues));
    // Aliases would let a small file expand without bound and make every message point
    // at the anchor; a scenario is short enough to write values out.
    let deepest: Node | null = null;
    eachNode(doc.contents, (node, depth) => {
      if (isAlias(node))
        c.err(
          node,
          `the alias *${node.source} is not supported in a scenario; write the value out (anchors and aliases are not allowed)`,
        );
      if (depth > MAX_NESTING && !deepest && (isMap(node) || isSeq(node))) deepest = node;
    });
    if (deepest)
      c.err(
        deepest,
        `mappings and lists are nested more than ${MAX_NESTING} levels deep here; a scenario needs only a few levels`,
      );
    if (c.issues.length) throw new ScenarioError(capped(c.issues));
    const spec = validate(c, doc.contents, opts.modules ?? new Map());
    if (c.issues.length || !spec)
      throw new ScenarioError(
        c.issues.length ? capped(c.issues) : [{ file, line: 1, col: 1, message: 'empty scenario' }],
      );
    return spec;
  } catch (e) {
    // Nesting the parser could just follow can still overflow the stack of a walk over it.
    if (e instanceof RangeError && /call stack/i.test(e.message)) {
      throw new ScenarioError([
        {
          file,
          line: 1,
          col: 1,
          message:
            'mappings and lists are nested too deeply to read; a scenario needs only a few levels (a generated file?)',
        },
      ]);
    }
    throw e;
  }
}

interface Broken {
  readonly names: Set<string>;
  /** A whole section (buffers, importers) could not be read. */
  all: boolean;
}

export const TOP_KEYS = ['name', 'description', 'buffers', 'importers', 'threads', 'expect', 'explore'] as const;

function validate(c: Ctx, root: unknown, modules: ReadonlyMap<string, DriverDef>): ScenarioSpec | null {
  if (root === null || root === undefined) {
    c.err(null, 'the file is empty; expected a scenario with name, buffers and threads');
    return null;
  }
  const top = fields(c, root, 'scenario', TOP_KEYS);
  if (!top) return null;
  for (const k of ['name', 'buffers', 'threads'] as const) {
    if (!top.has(k)) c.err(root as Node, `scenario: missing required key "${k}"`);
  }

  let name = '';
  const nameP = top.get('name');
  if (nameP) {
    const n = scalarString(c, nameP.value, 'name');
    if (n !== null) {
      if (!NAME_RE.test(n)) c.err(nameP.value, `name: "${n}" must use only a-z, 0-9 and "-"`);
      name = n;
    }
  }
  let description = '';
  const descP = top.get('description');
  if (descP) description = scalarString(c, descP.value, 'description') ?? '';

  const names = new Map<string, string>();
  const claim = (node: Node | Pair, n: string, what: string): boolean => {
    if (n === 'mm') {
      c.err(node, `${what} "${n}": the name "mm" is reserved for memory ops (mm.alloc)`);
      return false;
    }
    if (!OBJECT_RE.test(n)) {
      c.err(node, `${what} "${n}": names start with a letter and use letters, digits, "_" and "-"`);
      return false;
    }
    const prev = names.get(n);
    if (prev) {
      c.err(node, `${what} "${n}": the name is already used by a ${prev}`);
      return false;
    }
    names.set(n, what);
    return true;
  };

  // Objects the scenario declares but that failed validation (already reported):
  // ops on them are not reported again as calls to an object that does not exist.
  const broken: Broken = { names: new Set<string>(), all: false };
  const buffers: BufferSpec[] = [];
  const bufP = top.get('buffers');
  if (bufP) {
    const pairs = pairsOf(c, bufP.value, 'buffers');
    if (!pairs) broken.all = true;
    if (pairs && pairs.length === 0) {
      c.err(bufP.value, 'buffers: expected at least one buffer');
      broken.all = true;
    }
    for (const p of pairs ?? []) {
      const b = bufferSpec(c, p, modules);
      if (b && claim(p.key, b.name, 'buffer')) buffers.push(b);
      else broken.names.add(keyOf(p));
    }
  } else {
    broken.all = true;
  }

  const importers: ImporterSpec[] = [];
  const impP = top.get('importers');
  if (impP && !(isScalar(impP.value) && impP.value.value === null)) {
    const pairs = pairsOf(c, impP.value, 'importers');
    if (!pairs) broken.all = true;
    for (const p of pairs ?? []) {
      const i = importerSpec(c, p, modules, buffers, broken);
      if (i && claim(p.key, i.name, 'importer')) importers.push(i);
      else broken.names.add(keyOf(p));
    }
  }

  const threads: ThreadSpec[] = [];
  const thrP = top.get('threads');
  if (thrP) {
    const pairs = pairsOf(c, thrP.value, 'threads');
    if (pairs && pairs.length === 0) c.err(thrP.value, 'threads: expected at least one thread');
    if (pairs && pairs.length > MAX_THREADS)
      c.err(thrP.value, `threads: ${pairs.length} threads; at most ${MAX_THREADS} are supported`);
    const seen = new Set<string>();
    for (const p of pairs ?? []) {
      const tn = keyOf(p);
      if (seen.has(tn)) c.err(p.key, `thread "${tn}" is defined twice`);
      seen.add(tn);
      const th = threadSpec(c, p, buffers, importers, broken);
      if (th) threads.push(th);
    }
  }

  const expect = top.get('expect') ? expectSpec(c, top.get('expect')?.value) : null;
  const explore = top.get('explore') ? exploreSpec(c, top.get('explore')?.value) : {};
  return { name, description, buffers, importers, threads, expect, explore };
}

function resolveDriver<K extends 'exporter' | 'importer'>(
  c: Ctx,
  node: Node,
  ref: string,
  kind: K,
  modules: ReadonlyMap<string, DriverDef>,
): (K extends 'exporter' ? ExporterDef : ImporterDef) | null {
  type D = K extends 'exporter' ? ExporterDef : ImporterDef;
  const builtins = kind === 'exporter' ? BUILTIN_EXPORTERS : BUILTIN_IMPORTERS;
  if (isModuleRef(ref)) {
    const m = modules.get(ref);
    if (!m) {
      c.err(
        node,
        `${kind} module "${ref}" was not loaded (only the command line loads driver modules, by a path relative to the scenario)`,
      );
      return null;
    }
    if (m.kind !== kind) {
      c.err(node, `"${ref}" defines an ${m.kind} "${m.name}", but an ${kind} is expected here`);
      return null;
    }
    return m as D;
  }
  const d = builtins.get(ref);
  if (!d) {
    c.err(
      node,
      `unknown ${kind} "${ref}"; ${expectedOneOf(ref, [...builtins.keys()])}, or a path to a TypeScript module ("./my-${kind}.ts")`,
    );
    return null;
  }
  return d as D;
}

function optionsOf(
  c: Ctx,
  node: unknown,
  what: string,
  specs: Readonly<Record<string, OptionSpec>>,
  extra: Readonly<Record<string, OptionSpec>> = {},
): Record<string, boolean | string | number> {
  const all = { ...specs, ...extra };
  const out: Record<string, boolean | string | number> = {};
  for (const [k, s] of Object.entries(all)) if (!s.late) out[k] = s.default;
  if (node === undefined || (isScalar(node) && node.value === null)) return out;
  const keys = Object.keys(all);
  for (const p of pairsOf(c, node, what) ?? []) {
    const k = keyOf(p);
    const s = own(all, k);
    if (!s) {
      c.err(p.key, `${what}: unknown option "${k}"; ${expectedOneOf(k, keys)}`);
      continue;
    }
    const v = optionValue(c, p.value, `${what}.${k}`, s);
    if (v !== null) out[k] = v;
  }
  return out;
}

function bufferSpec(c: Ctx, p: Pair<Scalar, Node>, modules: ReadonlyMap<string, DriverDef>): BufferSpec | null {
  const name = keyOf(p);
  const what = `buffers.${name}`;
  const f = fields(c, p.value, what, ['exporter', 'pages', 'options']);
  if (!f) return null;
  const exP = f.get('exporter');
  if (!exP) {
    c.err(
      p.key,
      `${what}: missing required key "exporter"; expected ${[...BUILTIN_EXPORTERS.keys()].join(', ')} or a module path`,
    );
    return null;
  }
  const ref = scalarString(c, exP.value, `${what}.exporter`);
  if (ref === null) return null;
  const exporter = resolveDriver(c, exP.value as Node, ref, 'exporter', modules);
  const pagesP = f.get('pages');
  const pages = pagesP ? (intValue(c, pagesP.value, `${what}.pages`, 1, MAX_PAGES) ?? 1) : 1;
  if (!exporter) return null;
  const options = optionsOf(c, f.get('options')?.value, `${what}.options`, exporter.options);
  return { name, exporter, exporterRef: ref, pages, options };
}

/** The option every importer has besides its driver's. */
export const ATTACH_OPTION: Readonly<Record<string, OptionSpec>> = {
  attach: {
    type: 'enum',
    values: ['auto', 'manual'],
    default: 'auto',
    doc: 'manual: not attached at setup; a thread calls <importer>.attach',
  },
};

function importerSpec(
  c: Ctx,
  p: Pair<Scalar, Node>,
  modules: ReadonlyMap<string, DriverDef>,
  buffers: readonly BufferSpec[],
  broken: Broken,
): ImporterSpec | null {
  const name = keyOf(p);
  const what = `importers.${name}`;
  const f = fields(c, p.value, what, ['driver', 'buffer', 'options']);
  if (!f) return null;
  const drvP = f.get('driver');
  const bufP = f.get('buffer');
  if (!drvP)
    c.err(
      p.key,
      `${what}: missing required key "driver"; expected ${[...BUILTIN_IMPORTERS.keys()].join(', ')} or a module path`,
    );
  if (!bufP) c.err(p.key, `${what}: missing required key "buffer" (the buffer it imports)`);
  if (!drvP || !bufP) return null;
  const ref = scalarString(c, drvP.value, `${what}.driver`);
  const bufName = scalarString(c, bufP.value, `${what}.buffer`);
  if (ref === null || bufName === null) return null;
  const driver = resolveDriver(c, drvP.value as Node, ref, 'importer', modules);
  if (!buffers.some((b) => b.name === bufName)) {
    // A buffer declared with a problem of its own is already reported.
    if (broken.all || broken.names.has(bufName)) return null;
    c.err(
      bufP.value,
      `${what}.buffer: no buffer "${bufName}"; ${
        buffers.length
          ? expectedOneOf(
              bufName,
              buffers.map((b) => b.name),
            )
          : 'the scenario declares no buffers'
      }`,
    );
    return null;
  }
  if (!driver) return null;
  const optNode = f.get('options')?.value;
  // An option of type `buffer` takes the name of one of the scenario's buffers.
  const names = buffers.map((b) => b.name);
  const specs: Record<string, OptionSpec> = {};
  for (const [k, s] of Object.entries(driver.options)) {
    specs[k] = s.type === 'buffer' ? { type: 'enum', values: names, default: s.default, doc: s.doc } : s;
  }
  const options = optionsOf(c, optNode, `${what}.options`, specs, ATTACH_OPTION);
  const bad = driver.checkOptions?.(options);
  if (bad) {
    const optPair = isMap(optNode)
      ? (optNode as YAMLMap).items.find((x) => isScalar(x.key) && x.key.value === bad.option)
      : null;
    c.err((optPair?.value as Node) ?? (optNode as Node) ?? p.key, `${what}.options.${bad.option}: ${bad.message}`);
  }
  const manual = options.attach === 'manual';
  const { attach: _attach, ...driverOptions } = options;
  return { name, driver, driverRef: ref, buffer: bufName, options: driverOptions, manual };
}

/** The ops of `mm` (`buffer`: one of the scenario's buffers). */
export const MM_OPS: Readonly<Record<string, Readonly<Record<string, ArgSpec>>>> = {
  alloc: {
    pages: { type: 'int', min: 1, max: MAX_PAGES, default: 1 },
    buffer: { type: 'enum', values: [] },
    pool: { type: 'enum', values: ['system', 'vram'] },
  },
};

interface Target {
  readonly kind: 'buffer' | 'importer' | 'mm';
  readonly ops: Readonly<Record<string, Readonly<Record<string, ArgSpec>>>>;
  readonly pages: number;
  /** Whose pages a `page` argument counts: 'buffer "bo"', 'k\'s buffer "bo"'. */
  readonly pagesOf: string;
  /** An importer's refusal of an op under its options (`ImporterDef.checkOp`). */
  readonly checkOp?: (op: string) => string | null;
}

function targets(buffers: readonly BufferSpec[], importers: readonly ImporterSpec[]): Map<string, Target> {
  const m = new Map<string, Target>();
  const bufPages = new Map(buffers.map((b) => [b.name, b.pages]));
  for (const b of buffers) {
    const ops: Record<string, Readonly<Record<string, ArgSpec>>> = { get: {}, put: {} };
    for (const [o, s] of Object.entries(b.exporter.ops)) ops[o] = s.args ?? {};
    // The fd ops (file-ops.ts); an exporter op of the same name wins.
    for (const [o, s] of Object.entries(BUFFER_FILE_OPS)) if (!Object.hasOwn(ops, o)) ops[o] = s.args ?? {};
    m.set(b.name, { kind: 'buffer', ops, pages: b.pages, pagesOf: `buffer "${b.name}"` });
  }
  for (const i of importers) {
    const ops: Record<string, Readonly<Record<string, ArgSpec>>> = { detach: {} };
    if (i.manual) ops.attach = {};
    for (const [o, s] of Object.entries(i.driver.ops)) ops[o] = s.args ?? {};
    const checkOp = i.driver.checkOp;
    m.set(i.name, {
      kind: 'importer',
      ops,
      pages: bufPages.get(i.buffer) ?? 1,
      pagesOf: `${i.name}'s buffer "${i.buffer}"`,
      ...(checkOp ? { checkOp: (op: string) => checkOp(i.options, op) } : {}),
    });
  }
  m.set('mm', {
    kind: 'mm',
    ops: { alloc: { ...MM_OPS.alloc, buffer: { type: 'enum', values: buffers.map((b) => b.name) } } },
    pages: MAX_PAGES,
    pagesOf: 'memory',
  });
  return m;
}

function threadSpec(
  c: Ctx,
  p: Pair<Scalar, Node>,
  buffers: readonly BufferSpec[],
  importers: readonly ImporterSpec[],
  broken: Broken,
): ThreadSpec | null {
  const name = keyOf(p);
  if (!OBJECT_RE.test(name))
    c.err(p.key, `thread "${name}": names start with a letter and use letters, digits, "_" and "-"`);
  const what = `threads.${name}`;
  if (!isSeq(p.value)) {
    c.err(
      p.value ?? p.key,
      `${what}: expected a list of ops ("- kvm.access: { page: 0 }"), found ${describe(p.value)}`,
    );
    return null;
  }
  const tg = targets(buffers, importers);
  const ops: OpSpecCall[] = [];
  p.value.items.forEach((item, idx) => {
    const op = opCall(c, item as Node, `${what}[${idx}]`, tg, broken);
    if (op) ops.push(op);
  });
  return { name, ops };
}

function opCall(c: Ctx, item: Node, what: string, tg: Map<string, Target>, broken: Broken): OpSpecCall | null {
  let callNode: Node = item;
  let call: string;
  let argsNode: unknown;
  if (isScalar(item) && typeof item.value === 'string') {
    call = item.value;
  } else if (isMap(item) && item.items.length === 1) {
    const pair = item.items[0] as Pair<Scalar, Node>;
    if (!isScalar(pair.key) || typeof pair.key.value !== 'string') {
      c.err(item, `${what}: expected "<object>.<op>", found ${describe(pair.key)}`);
      return null;
    }
    callNode = pair.key;
    call = pair.key.value;
    argsNode = pair.value;
  } else {
    c.err(
      item,
      `${what}: expected one op, "<object>.<op>" or "<object>.<op>: { args }", found ${describe(item)}${isMap(item) ? ` with ${item.items.length} keys` : ''}`,
    );
    return null;
  }
  const dot = call.indexOf('.');
  if (dot <= 0 || dot === call.length - 1) {
    const having = [...tg].filter(([, t]) => Object.hasOwn(t.ops, call)).map(([o]) => `${o}.${call}`);
    const hint = having.length ? ` (did you mean ${having.map((h) => `"${h}"`).join(' or ')}?)` : '';
    c.err(callNode, `${what}: "${call}" is not "<object>.<op>"; objects are ${[...tg.keys()].join(', ')}${hint}`);
    return null;
  }
  const obj = call.slice(0, dot);
  const opName = call.slice(dot + 1);
  const target = tg.get(obj);
  if (!target) {
    if (broken.all || broken.names.has(obj)) return null; // its declaration is already reported
    c.err(callNode, `${what}: no object "${obj}" (a buffer, an importer or mm); ${expectedOneOf(obj, [...tg.keys()])}`);
    return null;
  }
  const argSpecs = own(target.ops, opName);
  if (!argSpecs) {
    if (opName === 'attach' && target.kind === 'importer') {
      c.err(
        callNode,
        `${what}: importer "${obj}" has no op "attach": setup already attaches it; to attach it from a thread, give it options: { attach: manual } (its ops are ${Object.keys(target.ops).join(', ')})`,
      );
      return null;
    }
    c.err(
      callNode,
      `${what}: ${target.kind} "${obj}" has no op "${opName}"; ${expectedOneOf(opName, Object.keys(target.ops))}`,
    );
    return null;
  }
  const refused = target.checkOp?.(opName);
  if (refused) c.err(callNode, `${what}: ${call}: ${refused}`);
  const args: Record<string, boolean | string | number> = {};
  const given =
    argsNode === undefined || (isScalar(argsNode) && argsNode.value === null)
      ? []
      : pairsOf(c, argsNode, `${what} ${call}`);
  if (given === null) return null;
  const allowed = Object.keys(argSpecs);
  // Arguments written (even with a bad value) or suggested for a typo: already reported, not "missing".
  const mentioned = new Set<string>();
  for (const ap of given) {
    const k = keyOf(ap);
    const s = own(argSpecs, k);
    if (!s) {
      const near = nearest(k, allowed);
      if (near) mentioned.add(near);
      c.err(
        ap.key,
        `${what} ${call}: unknown argument "${k}"; ${allowed.length ? expectedOneOf(k, allowed) : `${call} takes no arguments`}`,
      );
      continue;
    }
    mentioned.add(k);
    const v = argValue(c, ap.value, `${what} ${call}.${k}`, s, target);
    if (v !== null) args[k] = v;
  }
  for (const [k, s] of Object.entries(argSpecs)) {
    if (args[k] !== undefined) continue;
    if (s.required && !mentioned.has(k))
      c.err(
        callNode,
        `${what} ${call}: missing argument "${k}"${s.type === 'page' ? ` (${pageRange(target)}; write "${call}: { ${k}: 0 }")` : ''}`,
      );
    else if (s.default !== undefined) args[k] = s.default;
  }
  const argText = Object.keys(args).length
    ? ` {${Object.entries(args)
        .map(([k, v]) => ` ${k}: ${v}`)
        .join(',')} }`
    : '';
  return { target: obj, op: opName, args, text: `${call}${argText}`, loc: c.loc(callNode) };
}

/** "a page of k's buffer "bo": 0, its only page" / "... from 0 to 3". */
function pageRange(t: Target): string {
  return t.pages === 1
    ? `a page of ${t.pagesOf}: 0, its only page`
    : `a page of ${t.pagesOf}, from 0 to ${t.pages - 1}`;
}

function argValue(c: Ctx, node: unknown, what: string, s: ArgSpec, t: Target): boolean | string | number | null {
  switch (s.type) {
    case 'page':
      if (isScalar(node) && typeof node.value === 'number' && Number.isInteger(node.value)) {
        if (node.value >= 0 && node.value < t.pages) return node.value;
        c.err(
          node,
          `${what}: page ${node.value} is out of range: ${t.pagesOf} has ${t.pages} page${t.pages === 1 ? '' : 's'}, so expected ${t.pages === 1 ? '0' : `0 to ${t.pages - 1}`}`,
        );
        return null;
      }
      c.err(node as Node, `${what}: expected a page number (${pageRange(t)}), found ${describe(node)}`);
      return null;
    case 'int':
      return intValue(c, node, what, s.min, s.max);
    case 'boolean':
      if (isScalar(node) && typeof node.value === 'boolean') return node.value;
      c.err(node as Node, `${what}: expected true or false, found ${describe(node)}`);
      return null;
    case 'enum': {
      if (isScalar(node) && typeof node.value === 'string' && s.values.includes(node.value)) return node.value;
      c.err(
        node as Node,
        `${what}: found ${describe(node)}; ${expectedOneOf(isScalar(node) ? String(node.value) : '', s.values)}`,
      );
      return null;
    }
  }
}

function expectSpec(c: Ctx, node: unknown): ExpectSpec | null {
  if (!isMap(node)) {
    c.err(
      node as Node,
      `expect: expected a mapping such as "expect: { verdict: bug, finding: use-after-free }", found ${describe(node)}`,
    );
    return null;
  }
  const f = fields(c, node, 'expect', ['verdict', 'finding']);
  if (!f) return null;
  const vP = f.get('verdict');
  if (!vP) {
    c.err(node as Node, 'expect: missing required key "verdict" (safe or bug)');
    return null;
  }
  const v = scalarString(c, vP.value, 'expect.verdict');
  if (v !== 'safe' && v !== 'bug') {
    if (v !== null)
      c.err(
        vP.value,
        `expect.verdict: "${v}"${v === 'unknown' ? ' is a result, not an expectation' : ''}; ${expectedOneOf(v, ['safe', 'bug'])}`,
      );
    return null;
  }
  const fP = f.get('finding');
  if (!fP) return { verdict: v };
  const code = scalarString(c, fP.value, 'expect.finding');
  if (code === null) return null;
  if (!(FINDING_CODES as readonly string[]).includes(code)) {
    c.err(fP.value, `expect.finding: unknown finding code "${code}"; ${expectedOneOf(code, FINDING_CODES)}`);
    return null;
  }
  if (v === 'safe') {
    c.err(fP.value, 'expect.finding: a finding goes with verdict: bug, not safe');
    return null;
  }
  return { verdict: v, finding: code as FindingCode };
}

function exploreSpec(c: Ctx, node: unknown): ExploreSpec {
  const f = fields(c, node, 'explore', ['max_executions', 'strategy', 'seed']);
  const out: { max_executions?: number; strategy?: 'dfs' | 'random'; seed?: number } = {};
  if (!f) return out;
  const m = f.get('max_executions');
  if (m) {
    const v = intValue(c, m.value, 'explore.max_executions', 1, MAX_EXPLORE_EXECUTIONS);
    if (v !== null) out.max_executions = v;
  }
  const s = f.get('strategy');
  if (s) {
    const v = scalarString(c, s.value, 'explore.strategy');
    if (v === 'dfs' || v === 'random') out.strategy = v;
    else if (v !== null) c.err(s.value, `explore.strategy: "${v}"; ${expectedOneOf(v, ['dfs', 'random'])}`);
  }
  const sd = f.get('seed');
  if (sd) {
    const v = intValue(c, sd.value, 'explore.seed', 0, MAX_SEED);
    if (v !== null) out.seed = v;
  }
  return out;
}
