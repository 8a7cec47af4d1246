/** The small JSON Schema validator (src/schema/validate.ts): each keyword it knows, and what it refuses to guess. */
import { describe, expect, it } from 'vitest';
import { type SchemaObject, schemaProblems, validate } from '../../src/schema/validate.ts';

const ok = (schema: SchemaObject, v: unknown) => expect(validate(schema, v), JSON.stringify(v)).toEqual([]);
const bad = (schema: SchemaObject, v: unknown, message: RegExp) =>
  expect(validate(schema, v).join('\n')).toMatch(message);

describe('validate', () => {
  it('type: integer is a number, number includes integers, several types', () => {
    ok({ type: 'integer' }, 3);
    bad({ type: 'integer' }, 3.5, /expected integer, found number/);
    ok({ type: 'number' }, 3);
    ok({ type: ['object', 'null'] }, null);
    bad({ type: ['object', 'null'] }, [], /expected object or null, found array/);
  });

  it('enum, const, minimum, maximum, pattern, minLength', () => {
    ok({ enum: ['a', 1] }, 1);
    bad({ enum: ['a', 1] }, 'b', /"b" is not one of/);
    bad({ const: 2 }, 3, /expected 2/);
    bad({ minimum: 1, maximum: 3 }, 0, /0 < minimum 1/);
    bad({ minimum: 1, maximum: 3 }, 4, /4 > maximum 3/);
    bad({ pattern: '^a+$' }, 'ab', /does not match/);
    bad({ minLength: 2 }, 'é', /shorter than 2/);
  });

  it('objects: properties, patternProperties, additionalProperties, required, propertyNames, sizes', () => {
    const s = {
      type: 'object',
      properties: { a: { type: 'integer' } },
      patternProperties: { '^x-': { type: 'string' } },
      additionalProperties: false,
      required: ['a'],
      propertyNames: { pattern: '^[a-z-]+$' },
      maxProperties: 2,
    };
    ok(s, { a: 1, 'x-y': 'z' });
    bad(s, {}, /missing required property "a"/);
    bad(s, { a: 1, b: 2 }, /\$\.b: unknown property/);
    bad(s, { a: 1, 'x-y': 3 }, /\$\.x-y: expected string/);
    bad(s, { a: 1, B: 'x' }, /\$\.B \(name\)/);
    bad(s, { a: 1, 'x-a': '', 'x-b': '' }, /more than 2 properties/);
  });

  it('arrays: items, minItems, maxItems', () => {
    ok({ items: { type: 'string' }, minItems: 1 }, ['a']);
    bad({ items: { type: 'string' } }, ['a', 1], /\$\[1\]: expected string/);
    bad({ minItems: 1 }, [], /fewer than 1 items/);
    bad({ maxItems: 1 }, [1, 2], /more than 1 items/);
  });

  it('allOf, anyOf, oneOf (exactly one), not, if/then/else', () => {
    bad({ allOf: [{ type: 'integer' }, { minimum: 5 }] }, 4, /4 < minimum 5/);
    ok({ anyOf: [{ type: 'string' }, { type: 'integer' }] }, 1);
    bad({ anyOf: [{ type: 'string' }, { type: 'integer' }] }, true, /matches none of anyOf/);
    bad({ oneOf: [{ type: 'integer' }, { type: 'number' }] }, 1, /matches 2 of oneOf/);
    ok({ oneOf: [{ type: 'integer' }, { type: 'string' }] }, 1);
    bad({ not: { const: 'mm' } }, 'mm', /must not/);
    const cond = Object.fromEntries([
      ['if', { const: 'a' }],
      ['then', { minLength: 2 }],
      ['else', { type: 'integer' }],
    ]);
    bad(cond, 'a', /shorter than 2/);
    bad(cond, 'b', /expected integer/);
  });

  it('$ref to $defs, with JSON pointer escapes', () => {
    const s = { $defs: { 'a/b': { type: 'integer' } }, $ref: '#/$defs/a~1b' };
    ok(s, 1);
    bad(s, 'x', /expected integer/);
    expect(() => validate({ $ref: 'other.json#/x' }, 1)).toThrow(/only local references/);
  });

  it('strict: an object schema listing properties is closed; explicit additionalProperties wins', () => {
    const s = { type: 'object', properties: { a: {} } };
    ok(s, { a: 1, b: 2 });
    expect(validate(s, { a: 1, b: 2 }, { strict: true })).toEqual(['$.b: unknown property']);
    expect(validate({ ...s, additionalProperties: true }, { b: 2 }, { strict: true })).toEqual([]);
    // A condition (no type) stays open: strict is about the emitted documents, not if/then tests.
    expect(validate({ properties: { a: {} } }, { b: 1 }, { strict: true })).toEqual([]);
  });

  it('an unknown keyword throws rather than being ignored; schemaProblems finds it, bad patterns and dangling refs', () => {
    expect(() => validate({ format: 'email' }, 'x')).toThrow(/schema keyword "format" is not supported/);
    expect(
      schemaProblems({
        $defs: { a: { uniqueItems: true } },
        properties: { p: { pattern: '(' }, q: { $ref: '#/$defs/nope' } },
      }),
    ).toEqual([
      '#/$defs/a: unknown keyword "uniqueItems"',
      expect.stringMatching(/^#\/properties\/p: pattern \(: /),
      '#/properties/q: $ref #/$defs/nope: not found',
    ]);
  });
});
