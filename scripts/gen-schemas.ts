/**
 * `npm run build:schemas`: writes the JSON Schemas built from the code
 * (src/schema/files.ts) to schemas/, formatted by Biome like every JSON file
 * of the repository. `--check`: writes nothing, exits 1 when a file is missing
 * or says something else than the code (test/schema/schemas.test.ts checks the
 * same). Files are compared as JSON values, so formatting does not count.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { SCHEMA_DIR, schemas, schemaText } from '../src/schema/files.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = path.join(root, SCHEMA_DIR);
const check = process.argv.includes('--check');
const written: string[] = [];
let stale = 0;
mkdirSync(dir, { recursive: true });
for (const [name, schema] of Object.entries(schemas())) {
  const file = path.join(dir, name);
  let old: unknown;
  try {
    old = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    old = undefined;
  }
  if (isDeepStrictEqual(old, schema)) continue;
  if (check) {
    process.stderr.write(
      `${SCHEMA_DIR}/${name} is ${old === undefined ? 'missing' : 'out of date'}: run npm run build:schemas\n`,
    );
    stale++;
  } else {
    writeFileSync(file, schemaText(schema));
    written.push(file);
  }
}
if (written.length) {
  const biome = createRequire(import.meta.url).resolve('@biomejs/biome/bin/biome');
  const r = spawnSync(process.execPath, [biome, 'format', '--write', ...written], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exitCode = 1;
  for (const f of written) process.stdout.write(`wrote ${path.relative(root, f)}\n`);
}
if (stale) process.exitCode = 1;
