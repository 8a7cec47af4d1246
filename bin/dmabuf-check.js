#!/usr/bin/env node
// The command line runs the bundle dist/cli/main.js, which `npm run build:cli`
// makes from src/ (part of `npm ci`), while src/ still matches it: it starts
// several times faster than the TypeScript sources, which it runs otherwise,
// through tsx (and always with DMABUF_CHECK_SOURCES=1). tsx also lets a
// scenario name a driver written as a TypeScript module; such a module imports
// the model from the sources, so a command whose scenarios name one hands over
// to the sources before printing anything: one copy of the model.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const argv = process.argv.slice(2);

async function sources() {
  const { register } = await import('tsx/esm/api');
  register();
  return import('../src/cli/main.ts');
}

/** Every file under ROOT/dir, relative to ROOT with `/` separators. */
function walk(dir, out) {
  for (const e of readdirSync(ROOT + dir, { withFileTypes: true })) {
    if (e.isDirectory()) walk(`${dir}/${e.name}`, out);
    else if (e.isFile()) out.push(`${dir}/${e.name}`);
  }
  return out;
}

/** Whether dist/cli was built from src/ as it is now (same files, same sizes, same contents). */
async function builtFromSources() {
  let built;
  try {
    built = JSON.parse(readFileSync(`${ROOT}dist/cli/sources.json`, 'utf8')).files;
    statSync(`${ROOT}dist/cli/main.js`);
  } catch {
    return false;
  }
  const files = walk('src', []);
  if (files.length !== Object.keys(built).length) return false;
  let hash = null;
  for (const f of files) {
    const was = built[f];
    if (!was) return false;
    const st = statSync(ROOT + f);
    if (st.size !== was[0]) return false;
    if (st.mtimeMs === was[1]) continue;
    // Touched (or unpacked with other times): compare the contents.
    hash ??= (await import('node:crypto')).createHash;
    if (
      hash('sha256')
        .update(readFileSync(ROOT + f))
        .digest('hex') !== was[2]
    )
      return false;
  }
  return true;
}

if (!process.env.DMABUF_CHECK_SOURCES && (await builtFromSources())) {
  const cli = await import('../dist/cli/main.js');
  cli.run(argv, async () => (await sources()).main(argv));
} else {
  (await sources()).run(argv);
}
