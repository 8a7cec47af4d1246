#!/usr/bin/env node
/**
 * `npm run build:cli` (part of `npm ci`, through `prepare`): bundles the
 * command line (src/cli/main.ts and everything it imports, dependencies
 * included) into dist/cli/, so `bin/dmabuf-check.js` starts without
 * compiling TypeScript. Commands load their code when they run (code
 * splitting): `--version` or `--help` never load the model or the YAML parser.
 *
 * dist/cli/sources.json records every file under src/ (size, mtime, SHA-256):
 * the bin runs the bundle only while src/ still matches it, and the sources
 * (through tsx) otherwise.
 *
 * Same transform as tsx (esbuild, the tsconfig, names kept), so the bundle
 * behaves as the sources do.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const OUT = path.join(ROOT, 'dist', 'cli');

/** Every file under `dir`, as paths relative to ROOT with `/` separators, sorted. */
function walk(dir) {
  const out = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else if (e.isFile()) out.push(path.relative(ROOT, p).split(path.sep).join('/'));
  }
  return out.sort();
}

rmSync(OUT, { recursive: true, force: true });
mkdirSync(OUT, { recursive: true });
// The manifest is taken before bundling: a source edited during the build makes the bundle stale, not wrong.
const files = {};
for (const f of walk(path.join(ROOT, 'src'))) {
  const abs = path.join(ROOT, f);
  const st = statSync(abs);
  files[f] = [st.size, st.mtimeMs, createHash('sha256').update(readFileSync(abs)).digest('hex')];
}
await build({
  absWorkingDir: ROOT,
  // worker.js: the worker threads of `check --workers N` (src/cli/workers.ts starts the one next to it).
  entryPoints: { main: 'src/cli/main.ts', worker: 'src/cli/worker.ts' },
  outdir: OUT,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  keepNames: true,
  // tsx loads driver modules written in TypeScript: it stays a dependency, loaded only then.
  external: ['tsx', 'tsx/*'],
  // Next to main.js: modules find the catalogue and dist/web relative to their own URL (`../..` is the root).
  chunkNames: '[name]-[hash]',
  // Bundled CommonJS dependencies (yaml) require Node's built-in modules.
  banner: {
    js: "import { createRequire as __dmabufCreateRequire } from 'node:module';\nconst require = __dmabufCreateRequire(import.meta.url);",
  },
  logLevel: 'warning',
});
writeFileSync(path.join(OUT, 'sources.json'), `${JSON.stringify({ files })}\n`);
