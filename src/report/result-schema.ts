/**
 * The JSON Schema (draft 2020-12) of the `--json` document that json.ts
 * emits, written next to it and kept in sync by a test that validates real
 * outputs against it with every object closed (so a field the code emits and
 * the schema does not name fails). The published schema leaves objects open:
 * a field may be added within a version, and readers ignore fields they do
 * not know. `npm run build:schemas` writes it to schemas/result.schema.json.
 */
import { FINDING_CODES } from '../checkers/finding.ts';
import type { StopReason, Strategy, Verdict } from '../explorer/explore.ts';
import { JSON_SCHEMA_DIALECT, type SchemaObject } from '../schema/validate.ts';
import { JSON_SCHEMA_VERSION } from './json.ts';

/** Every value of a string union, checked both ways at compile time. */
function all<T extends string>() {
  return <const A extends readonly T[]>(values: A & ([T] extends [A[number]] ? unknown : never)): A => values;
}

const STRATEGIES = all<Strategy>()(['dfs', 'optimal', 'dpor', 'sleep', 'state', 'naive', 'random', 'pct', 'portfolio']);
const VERDICTS = all<Verdict>()(['safe', 'bug', 'unknown']);
const STOP_REASONS = all<StopReason>()([
  'max-executions',
  'timeout',
  'step-limit',
  'driver-error',
  'stall',
  'interrupted',
]);
/** The `error` of an `errors[]` entry: ScenarioError, UsageError, NondeterminismError. */
const INPUT_ERRORS = ['DMABUF_SCENARIO_INVALID', 'DMABUF_USAGE', 'DMABUF_NONDETERMINISTIC'] as const;

const TOKEN = { type: 'string', pattern: '^dc1\\.[0-9a-f]{8}\\.[a-zA-Z0-9]*$', description: 'a replay token' } as const;
const COUNT = { type: 'integer', minimum: 0 } as const;
const STRINGS = { type: 'array', items: { type: 'string' } } as const;

export function resultSchema(): SchemaObject {
  return {
    $schema: JSON_SCHEMA_DIALECT,
    title: `dmabuf-check --json output (version ${JSON_SCHEMA_VERSION})`,
    description:
      'What "dmabuf-check check --json" prints (docs/scenario-format.md, "--json"). Written in src/report/result-schema.ts next to the code that emits the document: do not edit. Objects are open: a field may be added within a version, and readers ignore fields they do not know.',
    type: 'object',
    required: ['version', 'results'],
    properties: {
      version: { const: JSON_SCHEMA_VERSION, description: "the document's schema version" },
      results: { type: 'array', items: { $ref: '#/$defs/result' } },
      errors: {
        description: 'present only when some file or path was bad input',
        type: 'array',
        items: { $ref: '#/$defs/inputError' },
      },
    },
    $defs: {
      result: {
        type: 'object',
        required: ['file', 'name', 'verdict', 'expected', 'met', 'findings', 'stats', 'counterexample'],
        properties: {
          file: { type: 'string' },
          name: { type: 'string' },
          verdict: { enum: [...VERDICTS] },
          expected: {
            anyOf: [
              {
                type: 'object',
                required: ['verdict'],
                properties: { verdict: { enum: ['safe', 'bug'] }, finding: { enum: [...FINDING_CODES] } },
              },
              { type: 'null' },
            ],
          },
          met: { type: 'boolean' },
          findings: { type: 'array', items: { $ref: '#/$defs/finding' } },
          stats: { $ref: '#/$defs/stats' },
          runaway: {
            description:
              'present when a thread ran away and stopped the search (verdict unknown unless a finding came first): its op threw (driver-error) or was still running at the step bound (step-limit)',
            type: 'object',
            required: ['kind', 'thread', 'op', 'steps', 'message', 'stack', 'kernel_stack'],
            properties: {
              kind: { enum: ['driver-error', 'step-limit', 'stall'] },
              thread: { type: 'string' },
              op: { type: 'string' },
              steps: COUNT,
              message: { type: 'string' },
              stack: {
                type: ['string', 'null'],
                description: "the thrown error's stack (the driver's own frames first)",
              },
              kernel_stack: STRINGS,
            },
          },
          count: {
            description: 'only with --count',
            type: 'object',
            required: ['executions', 'traces', 'redundant', 'sleep_blocked', 'equivalent', 'complete'],
            properties: {
              executions: COUNT,
              traces: COUNT,
              redundant: COUNT,
              sleep_blocked: COUNT,
              equivalent: COUNT,
              complete: { type: 'boolean' },
            },
          },
          counterexample: {
            anyOf: [
              {
                type: 'object',
                required: ['token', 'steps', 'context_switches', 'preemptions'],
                properties: { token: TOKEN, steps: COUNT, context_switches: COUNT, preemptions: COUNT },
              },
              { type: 'null' },
            ],
          },
        },
      },
      finding: {
        type: 'object',
        required: ['code', 'message', 'thread', 'token', 'step', 'fn', 'rules'],
        properties: {
          code: { enum: [...FINDING_CODES] },
          message: { type: 'string' },
          thread: { type: 'string' },
          token: TOKEN,
          step: { type: 'integer', minimum: 1 },
          fn: { type: 'string' },
          rules: STRINGS,
          requires: {
            description: 'lock-order only: tokens of the executions to replay first',
            type: 'array',
            items: TOKEN,
          },
        },
      },
      stats: {
        type: 'object',
        required: [
          'executions',
          'steps',
          'complete',
          'ms',
          'redundant',
          'extra_executions',
          'extra_steps',
          'strategy',
          'stopped',
        ],
        properties: {
          executions: COUNT,
          steps: COUNT,
          complete: { type: 'boolean' },
          ms: { type: 'number', minimum: 0, description: 'wall-clock milliseconds: the one non-deterministic field' },
          redundant: COUNT,
          extra_executions: COUNT,
          extra_steps: COUNT,
          strategy: { enum: [...STRATEGIES] },
          stopped: { anyOf: [{ enum: [...STOP_REASONS] }, { type: 'null' }] },
          states: { ...COUNT, description: 'only with --strategy state' },
          symmetry: {
            description: 'only with --strategy state: groups of interchangeable threads',
            type: 'array',
            items: STRINGS,
          },
          workers: { type: 'integer', minimum: 1, description: 'only when the search was split (--workers)' },
          units: COUNT,
          split_fallback: { enum: ['timed', 'state-dependent'] },
        },
      },
      inputError: {
        type: 'object',
        required: ['file', 'error', 'messages'],
        properties: { file: { type: 'string' }, error: { enum: [...INPUT_ERRORS] }, messages: STRINGS },
      },
    },
  };
}
