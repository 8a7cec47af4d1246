/** Random small scenarios (as YAML text) for comparing explorer strategies. */
import { prng } from '../../src/explorer/random.ts';

const EXPORTERS = ['ttm', 'vfio-pci', 'system-heap'] as const;
const IMPORTERS: Record<string, { options: Record<string, readonly (string | boolean)[]>; ops: string[] }> = {
  kvm: {
    options: {
      get_pfn: ['unlocked', 'locked'],
      invalidate_retry: [true, false],
      zap_on_invalidate: [true, false],
      attach_mode: ['dynamic', 'static'],
    },
    ops: ['access', 'fault'],
  },
  'dma-dynamic': { options: { respect_invalidate: [true, false] }, ops: ['map', 'dma', 'unmap'] },
  'dma-static': { options: {}, ops: ['map', 'dma', 'unmap'] },
  'cpu-mmap': { options: {}, ops: ['access', 'munmap'] },
  'rogue-mmap': { options: { get_pfn: ['unlocked', 'locked'] }, ops: ['access'] },
};

export function randomScenario(seed: number): string {
  const r = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const exporter = pick(EXPORTERS);
  const drivers = Object.keys(IMPORTERS).filter((d) => !(exporter === 'vfio-pci' && d === 'dma-static'));
  const nImp = 1 + Math.floor(r() * 2);
  const imps: { name: string; driver: string }[] = [];
  let yaml = `name: gen-${seed}\nbuffers:\n  bo: { exporter: ${exporter} }\nimporters:\n`;
  for (let i = 0; i < nImp; i++) {
    const driver = pick(drivers);
    const spec = IMPORTERS[driver] as (typeof IMPORTERS)[string];
    const opts = Object.entries(spec.options)
      .filter(() => r() < 0.5)
      .map(([k, vs]) => `${k}: ${pick(vs)}`);
    const name = `i${i}`;
    if (driver === 'kvm' && opts.includes('attach_mode: static') && exporter === 'vfio-pci') continue;
    imps.push({ name, driver });
    yaml += `  ${name}: { driver: ${driver}, buffer: bo${opts.length ? `, options: { ${opts.join(', ')} }` : ''} }\n`;
  }
  if (imps.length === 0) return randomScenario(seed + 1000003);
  const exporterOps = exporter === 'ttm' ? ['move'] : exporter === 'vfio-pci' ? ['revoke', 'unrevoke'] : ['put'];
  yaml += 'threads:\n';
  const nThreads = 2;
  for (let t = 0; t < nThreads; t++) {
    const ops: string[] = [];
    const n = 1 + Math.floor(r() * 2);
    for (let k = 0; k < n; k++) {
      if (t === nThreads - 1 && k === 0) {
        ops.push(`bo.${pick(exporterOps)}`);
        continue;
      }
      const imp = pick(imps);
      const op = pick((IMPORTERS[imp.driver] as (typeof IMPORTERS)[string]).ops);
      ops.push(
        op === 'access' || op === 'fault' || op === 'dma' ? `{ ${imp.name}.${op}: { page: 0 } }` : `${imp.name}.${op}`,
      );
    }
    yaml += `  t${t}: [${ops.join(', ')}]\n`;
  }
  return yaml;
}
