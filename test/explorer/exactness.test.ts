/**
 * DPOR loses nothing: on generated small scenarios, every finding (code and
 * message) reached by plain DFS over every interleaving is reached by DPOR
 * with sleep sets, and nothing else. (The fuller proof — executions equal to
 * Mazurkiewicz traces — is issue 5.)
 */
import { describe, expect, it } from 'vitest';
import { explore, type Strategy } from '../../src/explorer/explore.ts';
import { compile } from '../../src/scenario/compile.ts';
import { loadScenario } from '../../src/scenario/load-yaml.ts';
import { randomScenario } from './gen.ts';

function findings(yaml: string, strategy: Strategy, cap: number) {
  const set = new Set<string>();
  const r = explore(compile(loadScenario(yaml, 'gen.yaml')), {
    strategy,
    stopOnFinding: false,
    minimise: false,
    maxExecutions: cap,
    onExecution: (e) => {
      if (e.status !== 'abandoned') for (const f of e.findings) set.add(`${f.code}: ${f.message}`);
    },
  });
  return { set: [...set].sort(), complete: r.stats.complete, executions: r.stats.executions };
}

describe('DPOR against plain DFS on generated scenarios', () => {
  let compared = 0;
  for (let seed = 1; seed <= 60; seed++) {
    const yaml = randomScenario(seed);
    it(`seed ${seed}`, () => {
      const naive = findings(yaml, 'naive', 2500);
      if (!naive.complete) return; // too big to enumerate here; the bench and issue 5 cover those
      compared++;
      const dpor = findings(yaml, 'dfs', 2500);
      expect(dpor.complete).toBe(true);
      expect(dpor.set).toEqual(naive.set);
      expect(dpor.executions).toBeLessThanOrEqual(naive.executions);
    });
  }
  it('compared most of them', () => {
    expect(compared).toBeGreaterThan(30);
  });
});
