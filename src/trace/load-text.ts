/**
 * Reading a trace file (docs/trace-format.md) back: the trace viewer reads the
 * trace embedded in its page with it, and tools reading `--trace` files can.
 *
 * Browser-safe and pure. Every problem is a {@link TraceError} naming the
 * file, the `line:col` in the JSON text and the field (`steps[3].kind`):
 * malformed JSON, another document, a version this reader does not know, a
 * field of the wrong type. Fields this version does not know are ignored
 * (the compatibility rule: fields may be added within a version). Version 1
 * (no `world` per step) is read too.
 */
import type { TRACE_FORMAT, TRACE_VERSION, Trace } from './trace.ts';

/** Kept here, not imported: trace.ts brings the model's world snapshot code with it. */
const FORMAT: typeof TRACE_FORMAT = 'dmabuf-check-trace';
const VERSION: typeof TRACE_VERSION = 2;

export class TraceError extends Error {
  readonly code = 'DMABUF_TRACE_INVALID';

  constructor(
    readonly file: string,
    readonly line: number,
    readonly col: number,
    /** What is wrong, without the position. */
    readonly problem: string,
  ) {
    super(`${file}:${line}:${col}: ${problem}`);
  }
}

type Path = readonly (string | number)[];

/** A field's path as written in messages: `steps[3].accesses[0].mode`. */
export function pathText(path: Path): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${p}` : p;
  return out || 'the trace';
}

/** A value as a message shows it: its type, and short scalars themselves. */
function found(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  return `${typeof v} ${String(v)}`;
}

class Bad {
  constructor(
    readonly path: Path,
    readonly message: string,
  ) {}
}

type Check = (v: unknown, path: Path) => void;

function fail(path: Path, expected: string, v: unknown): never {
  throw new Bad(path, `${pathText(path)}: expected ${expected}, found ${found(v)}`);
}

const str: Check = (v, p) => {
  if (typeof v !== 'string') fail(p, 'a string', v);
};
const bool: Check = (v, p) => {
  if (typeof v !== 'boolean') fail(p, 'true or false', v);
};
const num: Check = (v, p) => {
  if (typeof v !== 'number') fail(p, 'a number', v);
};
const nat: Check = (v, p) => {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) fail(p, 'an integer ≥ 0', v);
};
const strOrNull: Check = (v, p) => {
  if (v !== null && typeof v !== 'string') fail(p, 'a string or null', v);
};
const anyObject: Check = (v, p) => {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) fail(p, 'an object', v);
};

function oneOf(...values: readonly string[]): Check {
  return (v, p) => {
    if (typeof v !== 'string' || !values.includes(v)) fail(p, `one of ${values.join(', ')}`, v);
  };
}

function list(item: Check): Check {
  return (v, p) => {
    if (!Array.isArray(v)) fail(p, 'a list', v);
    for (let i = 0; i < v.length; i++) item(v[i], [...p, i]);
  };
}

function orNull(c: Check): Check {
  return (v, p) => {
    if (v !== null) c(v, p);
  };
}

/** An object with these fields (a `?` after a name: optional); other fields are ignored. */
function record(fields: Readonly<Record<string, Check>>): Check {
  const entries = Object.entries(fields).map(([k, c]) => [k.replace(/\?$/, ''), c, k.endsWith('?')] as const);
  return (v, p) => {
    anyObject(v, p);
    const o = v as Record<string, unknown>;
    for (const [k, c, optional] of entries) {
      if (!Object.hasOwn(o, k)) {
        if (optional) continue;
        throw new Bad(p, `${pathText(p)}: missing field "${k}"`);
      }
      c(o[k], [...p, k]);
    }
  };
}

const strings = list(str);

/** The whole machine after a step (src/trace/world.ts), version 2. */
const world = record({
  jiffies: num,
  threads: list(record({ name: str, op: str, done: bool, held: strings })),
  buffers: list(
    record({
      name: str,
      exporter: str,
      refcount: num,
      released: bool,
      frames: orNull(list(record({ pfn: str, gen: num }))),
      attachments: list(record({ name: str, dynamic: bool, pins: num, mappings: num })),
      vmaps: num,
    }),
  ),
  frames: list(record({ pfn: str, pool: str, state: str, gen: num, owner: str })),
  locks: list(record({ name: str, class: str, owner: strOrNull, readers: strings })),
  fences: list(record({ name: str, signaled: bool, error: num, refcount: num })),
  resv: list(record({ name: str, fences: list(record({ fence: str, usage: str, signaled: bool })) })),
  translations: list(
    record({
      kind: str,
      importer: str,
      buffer: str,
      page: num,
      pfn: str,
      gen: num,
      state: str,
      stale: bool,
    }),
  ),
});

const KINDS = ['read', 'write', 'lock', 'unlock', 'wait', 'signal', 'alloc', 'free'] as const;

function step(version: number): Check {
  return record({
    n: nat,
    thread: str,
    fn: str,
    kind: oneOf(...KINDS),
    object: strOrNull,
    accesses: list(record({ object: str, type: str, mode: oneOf('read', 'write') })),
    global: bool,
    op: str,
    stack: strings,
    state: anyObject,
    findings: list(nat),
    [version >= 2 ? 'world' : 'world?']: world,
  });
}

/** The fields every finding has (src/checkers/finding.ts); a code's own fields follow the model. */
const finding = record({
  code: str,
  message: str,
  step: nat,
  thread: str,
  'op?': str,
  fn: str,
  stack: strings,
  rules: strings,
});

function envelope(v: unknown): Trace {
  anyObject(v, []);
  const o = v as Record<string, unknown>;
  if (o.format !== FORMAT) {
    throw new Bad(
      Object.hasOwn(o, 'format') ? ['format'] : [],
      `not a dmabuf-check trace: expected "format": "${FORMAT}", found ${Object.hasOwn(o, 'format') ? found(o.format) : 'no "format" field'} (traces are written by dmabuf-check replay --trace FILE or check --trace FILE)`,
    );
  }
  const version = o.version;
  if (!Object.hasOwn(o, 'version'))
    throw new Bad([], `missing field "version" (the trace format version, 1 to ${VERSION})`);
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 1) {
    fail(['version'], `the trace format version, an integer from 1 to ${VERSION}`, version);
  }
  if (version > VERSION) {
    throw new Bad(
      ['version'],
      `version: trace format version ${version} is newer than this dmabuf-check reads (1 to ${VERSION}); read it with a newer dmabuf-check`,
    );
  }
  record({
    scenario: record({ name: str, file: str, hash: str }),
    token: str,
    'after?': strings,
    threads: strings,
    status: str,
    steps: list(step(version)),
    findings: list(finding),
  })(o, []);
  const steps = o.steps as { findings: number[] }[];
  const nf = (o.findings as unknown[]).length;
  for (let i = 0; i < steps.length; i++) {
    const fs = (steps[i] as { findings: number[] }).findings;
    for (let j = 0; j < fs.length; j++) {
      const f = fs[j] as number;
      if (f >= nf)
        throw new Bad(
          ['steps', i, 'findings', j],
          `steps[${i}].findings[${j}]: finding ${f} does not exist (the trace has ${nf} finding${nf === 1 ? '' : 's'})`,
        );
    }
  }
  return o as unknown as Trace;
}

/** Parses and checks a trace; throws {@link TraceError} with where and what. */
export function loadTrace(text: string, file: string): Trace {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    const e = scanJson(text, null);
    const { line, col } = lineCol(text, e.pos);
    throw new TraceError(file, line, col, `not valid JSON: ${e.message}`);
  }
  try {
    return envelope(value);
  } catch (e) {
    if (!(e instanceof Bad)) throw e;
    const at = scanJson(text, e.path).pos;
    const { line, col } = lineCol(text, at);
    throw new TraceError(file, line, col, e.message);
  }
}

/** 1-based line and column (in UTF-16 units, as editors count) of an offset. */
function lineCol(text: string, pos: number): { line: number; col: number } {
  let line = 1;
  let start = 0;
  for (let i = text.indexOf('\n'); i >= 0 && i < pos; i = text.indexOf('\n', i + 1)) {
    line++;
    start = i + 1;
  }
  return { line, col: pos - start + 1 };
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const WS = /[ \t\n\r]*/y;

interface Frame {
  readonly object: boolean;
  /** The current key (object) or index (list). */
  key: string | number;
  /** Items read so far. */
  n: number;
}

/**
 * Walks JSON text without building it (iteratively: any nesting depth).
 * With `target`, stops at the start of the value at that path and returns
 * its offset; otherwise returns the offset and description of the first
 * syntax error (or the end, when there is none).
 */
function scanJson(text: string, target: Path | null): { pos: number; message: string } {
  const stack: Frame[] = [];
  let i = 0;
  const ws = () => {
    WS.lastIndex = i;
    WS.exec(text);
    i = WS.lastIndex;
  };
  const here = (): string => (i >= text.length ? 'the end of the text' : `${JSON.stringify(text[i])}`);
  const err = (what: string) => ({ pos: Math.min(i, text.length), message: `expected ${what}, found ${here()}` });
  const atTarget = (): boolean => {
    if (!target || target.length !== stack.length) return false;
    for (let d = 0; d < stack.length; d++) if ((stack[d] as Frame).key !== target[d]) return false;
    return true;
  };
  /** Why {@link string} returned null. */
  const st: { bad: { pos: number; message: string } } = { bad: { pos: 0, message: '' } };
  /** Reads a string starting at `i` (a `"`); returns it, or null after setting `st.bad`. */
  const string = (): string | null => {
    let out = '';
    i++;
    for (;;) {
      if (i >= text.length) {
        st.bad = { pos: i, message: 'the string is not closed (a " is missing)' };
        return null;
      }
      const c = text.charCodeAt(i);
      if (c === 34) {
        i++;
        return out;
      }
      if (c < 0x20) {
        st.bad = { pos: i, message: 'a control character inside a string (write it as an escape, \\n, \\u0000)' };
        return null;
      }
      if (c === 92) {
        const e = text[i + 1];
        if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) {
          out += String.fromCharCode(Number.parseInt(text.slice(i + 2, i + 6), 16));
          i += 6;
          continue;
        }
        const simple: Record<string, string> = {
          '"': '"',
          '\\': '\\',
          '/': '/',
          b: '\b',
          f: '\f',
          n: '\n',
          r: '\r',
          t: '\t',
        };
        if (e === undefined || !Object.hasOwn(simple, e)) {
          st.bad = { pos: i, message: 'an invalid escape in a string' };
          return null;
        }
        out += simple[e];
        i += 2;
        continue;
      }
      out += text[i];
      i++;
    }
  };

  // Each turn reads one value at `i`, then what follows it in its container.
  for (;;) {
    ws();
    if (atTarget()) return { pos: i, message: '' };
    const c = text[i];
    if (c === '{' || c === '[') {
      i++;
      ws();
      const object = c === '{';
      const close = object ? '}' : ']';
      if (text[i] === close) {
        i++;
      } else {
        const f: Frame = { object, key: 0, n: 0 };
        stack.push(f);
        if (object) {
          if (text[i] !== '"') return err('a field name in double quotes or }');
          const k = string();
          if (k === null) return st.bad;
          f.key = k;
          ws();
          if (text[i] !== ':') return err('":" after the field name');
          i++;
        }
        continue;
      }
    } else if (c === '"') {
      if (string() === null) return st.bad;
    } else if (c === 't' || c === 'f' || c === 'n') {
      const word = c === 't' ? 'true' : c === 'f' ? 'false' : 'null';
      if (!text.startsWith(word, i)) return err('a value');
      i += word.length;
    } else {
      NUMBER.lastIndex = i;
      if (!NUMBER.exec(text)) return err('a value (an object, list, string, number, true, false or null)');
      i = NUMBER.lastIndex;
    }
    // After a value: the next item of its container, or the container's end (perhaps several).
    for (;;) {
      ws();
      const f = stack[stack.length - 1];
      if (!f) {
        if (i < text.length) return err('the end of the text after the value');
        return { pos: i, message: '' };
      }
      const close = f.object ? '}' : ']';
      if (text[i] === ',') {
        i++;
        f.n++;
        if (f.object) {
          ws();
          if (text[i] !== '"') return err('a field name in double quotes');
          const k = string();
          if (k === null) return st.bad;
          f.key = k;
          ws();
          if (text[i] !== ':') return err('":" after the field name');
          i++;
        } else {
          f.key = f.n;
        }
        break;
      }
      if (text[i] === close) {
        i++;
        stack.pop();
        continue;
      }
      return err(`"," or "${close}"`);
    }
  }
}
