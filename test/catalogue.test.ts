/**
 * The bundled catalogue: every scenario's verdict is computed by the explorer
 * and compared with its `expect`; every finding's replay token reproduces it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import iommufd from '../examples/iommufd-importer.ts';
import { compile } from '../src/scenario/compile.ts';
import { loadScenario } from '../src/scenario/load-yaml.ts';
import { replayToken } from '../src/trace/replay.ts';
import { catalogueFiles, check, loadFile, ROOT } from './helpers.ts';

/** The examples name their driver module by path: load it as the command line would. */
function loadExample(file: string) {
  return loadScenario(readFileSync(file, 'utf8'), path.relative(ROOT, file), {
    modules: new Map([['./iommufd-importer.ts', iommufd]]),
  });
}

describe('catalogue', () => {
  const files = catalogueFiles();
  const examples = readdirSync(path.join(ROOT, 'examples'))
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => path.join(ROOT, 'examples', f));

  it('answers every question of the seed thread (at least the 14 listed in the issue)', () => {
    expect(files.length).toBeGreaterThanOrEqual(14);
  });

  it('has unique scenario names', () => {
    const names = files.map((f) => loadFile(f).name);
    expect(new Set(names).size).toBe(names.length);
  });

  for (const file of [...files, ...examples]) {
    describe(path.relative(ROOT, file), () => {
      const spec = file.includes(`${path.sep}examples${path.sep}`) ? loadExample(file) : loadFile(file);
      const r = check(spec);

      it('has a description saying which message it answers', () => {
        expect(spec.description.length).toBeGreaterThan(40);
        expect(spec.expect).not.toBeNull();
      });

      it(`explores to the expected verdict (${spec.expect?.verdict}${spec.expect?.finding ? `: ${spec.expect.finding}` : ''})`, () => {
        expect(r.verdict).toBe(spec.expect?.verdict);
        if (spec.expect?.finding) expect(r.findings.map((f) => f.code)).toContain(spec.expect.finding);
        expect(r.met).toBe(true);
        if (r.verdict === 'safe') expect(r.stats.complete).toBe(true);
      });

      it('replays every finding from its token', () => {
        for (const f of r.findings) {
          const { result } = replayToken(compile(spec), f.token, 'x.yaml', f.code === 'lock-order' ? f.requires : []);
          expect(result.findings.map((g) => `${g.code} ${g.message} @${g.step}`)).toContain(
            `${f.code} ${f.message} @${f.step}`,
          );
        }
      });
    });
  }
});
