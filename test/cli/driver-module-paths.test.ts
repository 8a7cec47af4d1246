/**
 * A scenario runs code only from a driver module it names by a relative path
 * inside its own directory tree (issue 7 item 6): absolute paths, `..`
 * escapes, symbolic links leading out (the file or a directory on the way),
 * URLs and package names are refused with a message at the reference, and
 * the module they name never runs. Every module here sets a global when it
 * runs, so "never runs" is checked, not assumed.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { loadDriverModules } from '../../src/cli/files.ts';
import { ScenarioError } from '../../src/scenario/errors.ts';
import { loadScenario } from '../../src/scenario/load-yaml.ts';
import { runCli } from '../helpers.ts';

const g = globalThis as { __dmabufModuleRan?: string[] };

/** A module that records that it ran, then default-exports a do-nothing importer. */
const MODULE = (
  tag: string,
) => `globalThis.__dmabufModuleRan = [...(globalThis.__dmabufModuleRan ?? []), ${JSON.stringify(tag)}];
export default {
  kind: 'importer', name: ${JSON.stringify(tag)}, summary: 'test', options: {}, ops: {},
  create: () => ({ attachCall: 'dma_buf_attach', *attach() { return 0; }, *detach() {}, *teardown() {}, ops: {} }),
};
`;

const scenario = (ref: string) => `name: s
buffers:
  bo: { exporter: system-heap }
importers:
  k: { driver: ${JSON.stringify(ref)}, buffer: bo }
threads:
  t: [k.detach]
`;

describe('driver module paths', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'dmabuf-paths-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const write = (rel: string, text: string) => {
    const p = path.join(root, rel);
    mkdirSync(path.dirname(p), { recursive: true });
    writeFileSync(p, text);
    return p;
  };
  // root/outside/evil.mjs is outside the scenario tree root/tree/.
  const evil = write('outside/evil.mjs', MODULE('outside'));
  write('outside/pkg/index.mjs', MODULE('outside-pkg'));
  write('tree/inside.mjs', MODULE('inside'));
  write('tree/node_modules/evilpkg/package.json', '{ "name": "evilpkg", "type": "module", "main": "index.mjs" }\n');
  write('tree/node_modules/evilpkg/index.mjs', MODULE('package'));
  symlinkSync(evil, path.join(root, 'tree', 'link.mjs'));
  symlinkSync(path.join(root, 'outside'), path.join(root, 'tree', 'linkdir'));
  symlinkSync(path.join(root, 'tree', 'inside.mjs'), path.join(root, 'tree', 'sub-link.mjs'));
  const file = path.join(root, 'tree', 's.yaml');

  beforeEach(() => {
    g.__dmabufModuleRan = [];
  });

  async function refused(ref: string): Promise<string> {
    const text = scenario(ref);
    const err = await loadDriverModules(file, text).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err, ref).toBeInstanceOf(ScenarioError);
    const issues = (err as ScenarioError).issues;
    expect(issues).toHaveLength(1);
    expect([issues[0]?.line, issues[0]?.col]).toEqual([5, 16]);
    expect(g.__dmabufModuleRan, `${ref} ran`).toEqual([]);
    return issues[0]?.message ?? '';
  }

  it('a module inside the tree loads and runs (the modules here do run when allowed)', async () => {
    const m = await loadDriverModules(file, scenario('./inside.mjs'));
    expect(m.get('./inside.mjs')?.name).toBe('inside');
    expect(g.__dmabufModuleRan).toEqual(['inside']);
  });

  it('a symbolic link inside the tree to a file inside it loads', async () => {
    const m = await loadDriverModules(file, scenario('./sub-link.mjs'));
    expect(m.get('./sub-link.mjs')?.name).toBe('inside');
  });

  it('".." out of the tree', async () => {
    for (const ref of ['../outside/evil.mjs', './a/../../outside/evil.mjs', 'sub/../../outside/evil.mjs'])
      expect(await refused(ref)).toMatch(
        /is outside the scenario's directory; a scenario may only run modules from its own directory tree/,
      );
  });

  it('an absolute path', async () => {
    expect(await refused(evil)).toMatch(/give a path relative to the scenario file \("\.\/evil\.mjs"\)/);
  });

  it('a symbolic link to a file outside the tree', async () => {
    expect(await refused('./link.mjs')).toMatch(
      new RegExp(
        `is outside the scenario's directory.*through a symbolic link, link\\.mjs is ${evil.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`,
      ),
    );
  });

  it('a path through a symbolic link to a directory outside the tree', async () => {
    expect(await refused('./linkdir/evil.mjs')).toMatch(/is outside the scenario's directory.*through a symbolic link/);
  });

  it('URLs: file:, data:, http:, node:', async () => {
    for (const ref of [
      pathToFileURL(evil).href,
      'file:../outside/evil.mjs',
      `data:text/javascript,${encodeURIComponent(MODULE('data'))}`,
      'http://127.0.0.1:9/evil.mjs',
      'node:fs/promises',
    ])
      expect(await refused(ref)).toMatch(/a URL is not loaded; give a path relative to the scenario file/);
  });

  it('a package name is never resolved as a package', async () => {
    // No path: not a module reference at all, so nothing is loaded and the loader says "unknown importer".
    expect((await loadDriverModules(file, scenario('evilpkg'))).size).toBe(0);
    expect(() => loadScenario(scenario('evilpkg'), 's.yaml')).toThrow(/unknown importer "evilpkg"/);
    // With a path: a file relative to the scenario, never node_modules or the package's exports.
    expect(await refused('evilpkg/index.mjs')).toMatch(
      /driver module "evilpkg\/index\.mjs" not found \(looked for evilpkg\/index\.mjs\)/,
    );
    expect(await refused('pkg/index.mjs')).toMatch(/not found/);
  });

  it('through the command line: exit 2 at the reference, the module never runs', () => {
    const marker = path.join(root, 'ran');
    write(
      'outside/marker.mjs',
      `import { writeFileSync } from 'node:fs';\nwriteFileSync(${JSON.stringify(marker)}, 'ran');\nexport default {};\n`,
    );
    symlinkSync(path.join(root, 'outside', 'marker.mjs'), path.join(root, 'tree', 'marker.mjs'));
    const f = write('tree/cli.yaml', scenario('./marker.mjs'));
    const r = runCli([f]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/cli\.yaml:5:16: driver module "\.\/marker\.mjs" is outside the scenario's directory/);
    expect(existsSync(marker)).toBe(false);
  });
});

describe('YAML itself runs no code', () => {
  it('a js/function or js/regexp tag is a plain string, never called', () => {
    const text = (d: string) =>
      `name: s\ndescription: ${d}\nbuffers:\n  bo: { exporter: system-heap }\nthreads:\n  t: [bo.get, bo.put]\n`;
    g.__dmabufModuleRan = [];
    const fn = 'function () { globalThis.__dmabufModuleRan.push("yaml") }';
    expect(loadScenario(text(`!!js/function '${fn}'`), 's.yaml').description).toBe(fn);
    expect(loadScenario(text("!!js/regexp '/x/'"), 's.yaml').description).toBe('/x/');
    expect(g.__dmabufModuleRan).toEqual([]);
  });
});
