/** The built-in exporters and importers, by the name a scenario uses. */
import type { ExporterDef, ImporterDef } from './driver.ts';
import { cmaHeap } from './exporters/cma-heap.ts';
import { systemHeap } from './exporters/system-heap.ts';
import { ttm } from './exporters/ttm.ts';
import { udmabuf } from './exporters/udmabuf.ts';
import { vfioPci } from './exporters/vfio-pci.ts';
import { cpuAccess } from './importers/cpu-access.ts';
import { cpuMmap } from './importers/cpu-mmap.ts';
import { dmaBufUser } from './importers/dma-buf-user.ts';
import { dmaDynamic } from './importers/dma-dynamic.ts';
import { dmaStatic } from './importers/dma-static.ts';
import { drmExec } from './importers/drm-exec.ts';
import { ibUmemDmabuf } from './importers/ib-umem-dmabuf.ts';
import { iommufd } from './importers/iommufd.ts';
import { kvm } from './importers/kvm.ts';
import { rogueMmap } from './importers/rogue-mmap.ts';

export const BUILTIN_EXPORTERS: ReadonlyMap<string, ExporterDef> = new Map(
  [systemHeap, ttm, vfioPci, udmabuf, cmaHeap].map((d) => [d.name, d]),
);

export const BUILTIN_IMPORTERS: ReadonlyMap<string, ImporterDef> = new Map(
  [dmaStatic, dmaDynamic, kvm, cpuMmap, rogueMmap, cpuAccess, drmExec, ibUmemDmabuf, iommufd, dmaBufUser].map((d) => [
    d.name,
    d,
  ]),
);
