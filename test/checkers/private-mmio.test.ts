/**
 * Confidential MMIO (TDISP, [K8]): a host translation of private MMIO is a
 * `private-mmio` finding at install; the secure EPT may map it; without
 * `private_mmio` nothing changes (and the scenario's hash, hence its replay
 * tokens, does not either).
 */
import { describe, expect, it } from 'vitest';
import { checkScenario } from '../../src/check.ts';
import { scenarioHash } from '../../src/scenario/compile.ts';
import { loadScenario } from '../../src/scenario/load-yaml.ts';

function yaml(privateMmio: boolean | null, importer: string, ops: string): string {
  const opt = privateMmio === null ? '' : `\n    options: { private_mmio: ${privateMmio} }`;
  return `name: pm
buffers:
  bar:
    exporter: vfio-pci${opt}
importers:
  imp: ${importer}
threads:
  t0: [${ops}]
`;
}

const check = (y: string) => checkScenario(loadScenario(y, 'pm.yaml'), 'pm.yaml');
const codes = (y: string) => {
  const r = check(y);
  return { verdict: r.verdict, codes: r.findings.map((f) => f.code) };
};

describe('private MMIO (vfio-pci private_mmio)', () => {
  it('a host DMA mapping of private MMIO is a finding; of ordinary MMIO it is not', () => {
    const dma = '{ driver: dma-dynamic, buffer: bar }';
    const ops = 'imp.map, { imp.dma: { page: 0 } }, imp.unmap';
    expect(codes(yaml(true, dma, ops))).toEqual({ verdict: 'bug', codes: ['private-mmio'] });
    expect(codes(yaml(false, dma, ops)).verdict).toBe('safe');
    expect(codes(yaml(null, dma, ops)).verdict).toBe('safe');
  });

  it('a CPU mmap of private MMIO is a finding', () => {
    const r = codes(yaml(true, '{ driver: cpu-mmap, buffer: bar }', '{ imp.access: { page: 0 } }'));
    expect(r).toEqual({ verdict: 'bug', codes: ['private-mmio'] });
  });

  it('KVM: only the secure EPT may map it', () => {
    const access = '{ imp.access: { page: 0 } }';
    expect(codes(yaml(true, '{ driver: kvm, buffer: bar }', access)).codes).toEqual(['private-mmio']);
    expect(codes(yaml(true, '{ driver: kvm, buffer: bar, options: { secure_ept: true } }', access)).verdict).toBe(
      'safe',
    );
    // The secure EPT mapping ordinary MMIO is not what this check is about.
    expect(codes(yaml(false, '{ driver: kvm, buffer: bar, options: { secure_ept: true } }', access)).verdict).toBe(
      'safe',
    );
  });

  it('the report says which translation, of which page, and cites [K8]', () => {
    const r = check(yaml(true, '{ driver: kvm, buffer: bar }', '{ imp.access: { page: 0 } }'));
    const f = r.findings[0];
    expect(f?.message).toMatch(
      /installs an SPTE outside the secure EPT \(imp\) for private MMIO pfn 0x[0-9a-f]+ of bar page 0/,
    );
    expect(f?.rules).toEqual(['K8']);
  });

  it('the new options leave the hash (and the replay tokens) of a scenario that does not set them unchanged', () => {
    const plain = scenarioHash(loadScenario(yaml(null, '{ driver: kvm, buffer: bar }', 'imp.detach'), 'a.yaml'));
    const set = scenarioHash(loadScenario(yaml(true, '{ driver: kvm, buffer: bar }', 'imp.detach'), 'b.yaml'));
    expect(plain).not.toBe(set);
    const spec = loadScenario(yaml(null, '{ driver: kvm, buffer: bar }', 'imp.detach'), 'a.yaml');
    expect(Object.keys(spec.importers[0]?.options ?? {})).not.toContain('secure_ept');
    expect(Object.keys(spec.buffers[0]?.options ?? {})).not.toContain('private_mmio');
  });
});
