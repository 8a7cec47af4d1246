/**
 * Validation as the user types: the scenario loader's problems, each with its
 * line and column, and a refusal of driver modules (the browser cannot load a
 * TypeScript module from the user's disk).
 */
import { ScenarioError } from '../../src/scenario/errors.ts';
import { driverModuleRefsAt, loadScenario } from '../../src/scenario/load-yaml.ts';

export interface Issue {
  readonly line: number;
  readonly col: number;
  readonly message: string;
}

export interface Validation {
  /** The scenario's name and description when it is valid. */
  readonly scenario: {
    readonly name: string;
    readonly description: string;
    readonly threads: number;
    /** What the scenario's `explore:` says, or the defaults. */
    readonly maxExecutions: number;
    readonly strategy: 'dfs' | 'random';
    readonly seed: number;
  } | null;
  readonly issues: readonly Issue[];
  /** The scenario names driver modules by path. */
  readonly modules: boolean;
}

export function moduleMessage(ref: string): string {
  return `"${ref}" is a driver module: modules cannot be loaded in the browser. The playground checks scenarios that use the built-in drivers only; check this one with the command line (npx dmabuf-check FILE.yaml).`;
}

export function validate(text: string, file: string): Validation {
  if (text.trim() === '') return { scenario: null, issues: [], modules: false };
  const refs = driverModuleRefsAt(text);
  const issues: Issue[] = refs.map((r) => ({ line: r.line, col: r.col, message: moduleMessage(r.ref) }));
  try {
    const spec = loadScenario(text, file);
    if (!issues.length)
      return {
        scenario: {
          name: spec.name,
          description: spec.description,
          threads: spec.threads.length,
          maxExecutions: spec.explore.max_executions ?? 1_000_000,
          strategy: spec.explore.strategy ?? 'dfs',
          seed: spec.explore.seed ?? 1,
        },
        issues: [],
        modules: false,
      };
  } catch (e) {
    if (!(e instanceof ScenarioError)) {
      issues.push({ line: 1, col: 1, message: `internal error while reading the scenario: ${(e as Error).message}` });
    } else {
      // The loader's own "module was not loaded" messages are replaced by the ones above.
      const notLoaded = refs.map((r) => `module "${r.ref}" was not loaded`);
      for (const i of e.issues) {
        if (notLoaded.some((m) => i.message.includes(m))) continue;
        issues.push({ line: i.line, col: i.col, message: i.message });
      }
    }
  }
  issues.sort((a, b) => a.line - b.line || a.col - b.col);
  return { scenario: null, issues, modules: refs.length > 0 };
}
