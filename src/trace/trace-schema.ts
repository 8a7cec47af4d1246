/**
 * The JSON Schema (draft 2020-12) of a trace (docs/trace-format.md), written
 * next to the types in trace.ts and world.ts. The loader (load.ts) checks a
 * trace against it; a test validates real traces with every object closed, so
 * a field the code emits and the schema does not name fails. The published
 * schema leaves objects open (a field may be added within a version). Object
 * snapshots (`state`) and findings follow the model: only their common fields
 * are described. `npm run build:schemas` writes it to schemas/trace.schema.json.
 */
import { JSON_SCHEMA_DIALECT, type SchemaObject } from '../schema/validate.ts';
import { TRACE_FORMAT, TRACE_VERSION } from './version.ts';

const STR = { type: 'string' } as const;
const INT = { type: 'integer' } as const;
const COUNT = { type: 'integer', minimum: 0 } as const;
const BOOL = { type: 'boolean' } as const;
const STRINGS = { type: 'array', items: STR } as const;
const NULLABLE_STR = { type: ['string', 'null'] } as const;

/** An object with these fields, all required. */
function record(properties: Readonly<Record<string, unknown>>, description?: string): SchemaObject {
  return {
    ...(description ? { description } : {}),
    type: 'object',
    required: Object.keys(properties),
    properties,
  };
}

function list(items: unknown, description?: string): SchemaObject {
  return { ...(description ? { description } : {}), type: 'array', items };
}

/** The published schema. */
export function traceSchema(): SchemaObject {
  return { $schema: JSON_SCHEMA_DIALECT, ...traceShape() };
}

/**
 * The schema without `$schema`: what the loader checks with (the viewer page
 * then holds no URL at all, not even the dialect's identifier).
 */
export function traceShape(): SchemaObject {
  return {
    title: `dmabuf-check trace (format version ${TRACE_VERSION})`,
    description:
      'One execution, step by step (docs/trace-format.md): what "dmabuf-check replay --json" prints and --trace writes. Written in src/trace/trace-schema.ts next to the trace types: do not edit. Objects are open: a field may be added within a version, and readers ignore fields they do not know.',
    type: 'object',
    required: ['format', 'version', 'scenario', 'token', 'threads', 'status', 'steps', 'findings'],
    properties: {
      format: { const: TRACE_FORMAT },
      version: { const: TRACE_VERSION, description: 'the trace format version' },
      scenario: record({ name: STR, file: STR, hash: { type: 'string', pattern: '^[0-9a-f]{8}$' } }),
      token: STR,
      after: list(STR, 'present only when --token was repeated: the tokens replayed first'),
      threads: STRINGS,
      status: { enum: ['complete', 'deadlock', 'setup-failed', 'step-limit', 'abandoned'] },
      steps: list({ $ref: '#/$defs/step' }),
      findings: list({ $ref: '#/$defs/finding' }),
    },
    $defs: {
      step: record({
        n: { type: 'integer', minimum: 1 },
        thread: STR,
        fn: STR,
        kind: { enum: ['read', 'write', 'lock', 'unlock', 'wait', 'signal', 'alloc', 'free'] },
        object: NULLABLE_STR,
        accesses: list(record({ object: STR, type: STR, mode: { enum: ['read', 'write'] } })),
        global: BOOL,
        op: STR,
        stack: STRINGS,
        state: {
          description: 'a snapshot of every object the step declared, by name (fields follow the model)',
          type: 'object',
          additionalProperties: { type: 'object' },
        },
        findings: list(COUNT, 'indexes into findings'),
        world: { $ref: '#/$defs/world' },
      }),
      finding: {
        description: 'a finding: the common fields; each code adds its own (docs/finding-codes.md)',
        type: 'object',
        required: ['code', 'message', 'step', 'thread', 'fn', 'stack', 'rules'],
        properties: { code: STR, message: STR, step: INT, thread: STR, fn: STR, stack: STRINGS, rules: STRINGS },
        additionalProperties: true,
      },
      world: record({
        jiffies: COUNT,
        threads: list(record({ name: STR, op: STR, done: BOOL, held: STRINGS })),
        buffers: list(
          record({
            name: STR,
            exporter: STR,
            refcount: INT,
            released: BOOL,
            frames: { anyOf: [list(record({ pfn: STR, gen: COUNT })), { type: 'null' }] },
            attachments: list(record({ name: STR, dynamic: BOOL, pins: INT, mappings: INT })),
            vmaps: INT,
          }),
        ),
        frames: list(record({ pfn: STR, pool: STR, state: STR, gen: COUNT, owner: STR })),
        locks: list(record({ name: STR, class: STR, owner: NULLABLE_STR, readers: STRINGS })),
        fences: list(record({ name: STR, signaled: BOOL, error: INT, refcount: INT })),
        resv: list(record({ name: STR, fences: list(record({ fence: STR, usage: STR, signaled: BOOL })) })),
        translations: list(
          record({
            kind: { enum: ['spte', 'pte', 'dma'] },
            importer: STR,
            buffer: STR,
            page: COUNT,
            pfn: STR,
            gen: COUNT,
            state: STR,
            stale: BOOL,
          }),
        ),
      }),
    },
  };
}
