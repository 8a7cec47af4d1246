/**
 * The whole modelled machine at one moment, as the trace viewer shows it after
 * a step: buffers with their backing frames, frames with their state and
 * generation, locks and holders, fences, reservation lists, every importer
 * translation (stale ones marked) and the threads. Plain JSON; built only when
 * recording a trace, never on the explorer's hot path.
 */
import { DmaBuf } from '../kernel/dma-buf.ts';
import { DmaFence } from '../kernel/dma-fence.ts';
import { DmaResvList, USAGE_NAMES } from '../kernel/dma-resv.ts';
import type { Kernel } from '../kernel/kernel.ts';
import { Lock } from '../kernel/locking.ts';
import { Frame, frameSummary, hexPfn, translationSummary } from '../kernel/page-alloc.ts';

export interface WorldFrame {
  readonly pfn: string;
  readonly pool: string;
  /** free | allocated | mmio | mmio-revoked */
  readonly state: string;
  readonly gen: number;
  readonly owner: string;
}

export interface WorldBuffer {
  readonly name: string;
  readonly exporter: string;
  readonly refcount: number;
  readonly released: boolean;
  /** Backing frames now, with the generation they are at (null when the exporter does not say). */
  readonly frames: readonly { readonly pfn: string; readonly gen: number }[] | null;
  readonly attachments: readonly {
    readonly name: string;
    readonly dynamic: boolean;
    readonly pins: number;
    readonly mappings: number;
  }[];
  readonly vmaps: number;
}

export interface WorldLock {
  readonly name: string;
  readonly class: string;
  readonly owner: string | null;
  readonly readers: readonly string[];
}

export interface WorldFence {
  readonly name: string;
  readonly signaled: boolean;
  readonly error: number;
  readonly refcount: number;
}

export interface WorldResv {
  readonly name: string;
  readonly fences: readonly { readonly fence: string; readonly usage: string; readonly signaled: boolean }[];
}

export interface WorldTranslation {
  readonly kind: 'spte' | 'pte' | 'dma';
  readonly importer: string;
  readonly buffer: string;
  readonly page: number;
  readonly pfn: string;
  readonly gen: number;
  /** live | invalidated */
  readonly state: string;
  /** The frame no longer backs what it was made for (freed, reused or revoked). */
  readonly stale: boolean;
}

export interface WorldThread {
  readonly name: string;
  readonly op: string;
  readonly done: boolean;
  readonly held: readonly string[];
}

export interface WorldState {
  readonly jiffies: number;
  readonly threads: readonly WorldThread[];
  readonly buffers: readonly WorldBuffer[];
  readonly frames: readonly WorldFrame[];
  readonly locks: readonly WorldLock[];
  readonly fences: readonly WorldFence[];
  readonly resv: readonly WorldResv[];
  readonly translations: readonly WorldTranslation[];
}

export function worldState(k: Kernel): WorldState {
  const buffers: WorldBuffer[] = [];
  const frames: WorldFrame[] = [];
  const locks: WorldLock[] = [];
  const fences: WorldFence[] = [];
  const resv: WorldResv[] = [];
  for (const o of k.objects) {
    if (o instanceof DmaBuf) {
      buffers.push({
        name: o.name,
        exporter: o.exp_name,
        refcount: o.refcount,
        released: o.released !== null,
        frames: o.backing ? o.backing().map((f) => ({ pfn: hexPfn(f.pfn), gen: f.gen })) : null,
        attachments: o.attachments.map((a) => ({
          name: a.name,
          dynamic: a.importer_ops !== null,
          pins: a.pinCount,
          mappings: a.sgts.length,
        })),
        vmaps: o.vmapping_counter,
      });
    } else if (o instanceof Frame) {
      frames.push(frameSummary(o));
    } else if (o instanceof Lock) {
      if (o.kind === 'lockdep_map') continue;
      locks.push({ name: o.name, class: o.cls, owner: o.owner?.name ?? null, readers: o.readerNames() });
    } else if (o instanceof DmaFence) {
      fences.push({ name: o.name, signaled: o.signaled, error: o.error, refcount: o.refcount });
    } else if (o instanceof DmaResvList) {
      resv.push({
        name: o.name,
        fences: o.entries.map((e) => ({
          fence: e.fence.name,
          usage: USAGE_NAMES[e.usage],
          signaled: e.fence.signaled,
        })),
      });
    }
  }
  const translations = k.physmem.liveTranslations().map(translationSummary);
  const threads = k.tasks.map((t) => ({
    name: t.name,
    op: t.op,
    done: t.done,
    held: t.held.filter((h) => h.lock.kind !== 'lockdep_map').map((h) => h.lock.name),
  }));
  return { jiffies: k.jiffies, threads, buffers, frames, locks, fences, resv, translations };
}
