/**
 * The JSON Schemas published in schemas/, each built from the code:
 * `npm run build:schemas` (scripts/gen-schemas.ts) writes them, and a test
 * fails when a committed file differs from what is built here.
 */
import { resultSchema } from '../report/result-schema.ts';
import { scenarioSchema } from '../scenario/schema.ts';
import { traceSchema } from '../trace/trace-schema.ts';
import type { SchemaObject } from './validate.ts';

export const SCHEMA_DIR = 'schemas';

/** File name (in schemas/) → schema. */
export function schemas(): Record<string, SchemaObject> {
  return {
    'scenario.schema.json': scenarioSchema(),
    'result.schema.json': resultSchema(),
    'trace.schema.json': traceSchema(),
  };
}

/** A schema file's text, as written to schemas/. */
export function schemaText(schema: SchemaObject): string {
  return `${JSON.stringify(schema, null, 2)}\n`;
}
