/**
 * The `rogue-mmap` importer: the "real world example" of the seed thread
 * ([C5]). It attaches dynamically with an invalidate callback that does
 * nothing (so exporters demanding revocable importers accept it), and its own
 * VMA's fault handler inserts PFNs from get_pfn into page tables the exporter
 * does not know about: `unmap_mapping_range` never finds them.
 *
 * With `hold_resv_while_mapped` the fault handler returns still holding resv
 * to keep the PFN valid — which a fault handler cannot do ([L14]); it implies
 * the locked get_pfn.
 *
 * Models: the importer-side CPU mappings Christian König describes in the
 * seed thread (drivers inserting PFNs behind the exporter's back)
 */
import {
  type DmaBufAttachment,
  dma_buf_detach,
  dma_buf_dynamic_attach,
  dma_buf_get_pfn,
  dma_buf_get_pfn_unlocked,
  dma_buf_put,
  get_dma_buf,
} from '../../kernel/dma-buf.ts';
import type { DmaBufAttachOps, PfnResult } from '../../kernel/dma-buf-ops.ts';
import { dma_resv_lock, dma_resv_unlock } from '../../kernel/dma-resv.ts';
import { isErr, type Result } from '../../kernel/errno.ts';
import { down_write, up_write } from '../../kernel/locking.ts';
import {
  MmStruct,
  user_access,
  VM_FAULT_SIGBUS,
  Vma,
  type VmFault,
  vmf_insert_pfn,
  zap_vma_ptes,
} from '../../kernel/memory.ts';
import { type KGen, kfn, type Task } from '../../kernel/sched.ts';
import { defineImporter, type ImporterEnv, type ImporterInstance, type OpArgs, PAGE_ARG } from '../driver.ts';

/** The invalidate callback that does nothing. */
function* ignoreInvalidate(): KGen {}

class RogueMmapImporter implements ImporterInstance {
  readonly attachCall = 'dma_buf_dynamic_attach';
  readonly mm: MmStruct;
  readonly vma: Vma;
  /** Protected by mmap_lock (set under write, read by the fault under read). */
  att: DmaBufAttachment | null = null;
  readonly attachOps: DmaBufAttachOps;
  readonly locked: boolean;
  readonly hold: boolean;

  constructor(readonly env: ImporterEnv) {
    this.mm = new MmStruct(env.k, `${env.name}:mm`);
    this.vma = new Vma(env.k, this.mm, env.name, env.pages);
    this.vma.vm_file = env.buffer.name;
    this.hold = env.options.hold_resv_while_mapped === true;
    this.locked = env.options.get_pfn === 'locked' || this.hold;
    this.attachOps = {
      allow_peer2peer: true,
      // Claims to be revocable, then ignores the notification ([C5]).
      invalidate_mappings: () => ignoreInvalidate(),
    };
    this.vma.vm_ops = {
      name: 'rogue_vm_fault',
      fault: (t: Task, vmf: VmFault) => RogueMmapImporter.rogue_vm_fault(t, vmf, this),
    };
  }

  /**
   * Made once for the class, not per importer: a generator function made per
   * instance costs V8 a fresh prototype and object shape the first time it runs.
   */
  private static readonly rogue_vm_fault = kfn(
    'rogue_vm_fault',
    function* (t: Task, vmf: VmFault, self: RogueMmapImporter): KGen<number> {
      const a = self.att;
      if (!a) return VM_FAULT_SIGBUS;
      const resv = a.dmabuf.resv;
      let pfn: Result<PfnResult>;
      if (self.locked) {
        yield* dma_resv_lock(t, resv, null);
        pfn = yield* dma_buf_get_pfn(t, a, vmf.pgoff);
        if (!self.hold || isErr(pfn)) yield* dma_resv_unlock(t, resv);
      } else {
        pfn = yield* dma_buf_get_pfn_unlocked(t, a, vmf.pgoff);
      }
      if (isErr(pfn)) return VM_FAULT_SIGBUS;
      // Straight into its own page tables: the exporter never learns of this PTE.
      return yield* vmf_insert_pfn(t, vmf.vma, vmf.page, pfn.pfn);
    },
  );

  *attach(t: Task): KGen<number> {
    const buf = this.env.buffer;
    yield* get_dma_buf(t, buf);
    const a = yield* dma_buf_dynamic_attach(t, buf, this.env.name, this.attachOps, this, this.env.name);
    if (isErr(a)) {
      yield* dma_buf_put(t, buf);
      return a;
    }
    yield* down_write(t, this.mm.mmap_lock);
    this.att = a;
    this.vma.live = true;
    yield* up_write(t, this.mm.mmap_lock);
    return 0;
  }

  /** Detach and put; the PTEs in its own VMA stay (it never zaps them). */
  *detach(t: Task): KGen {
    yield* down_write(t, this.mm.mmap_lock);
    const a = this.att;
    this.att = null;
    yield* up_write(t, this.mm.mmap_lock);
    if (!a) return;
    yield* dma_buf_detach(t, this.env.buffer, a);
    yield* dma_buf_put(t, this.env.buffer);
  }

  *teardown(t: Task): KGen {
    // Process exit: its VMA goes away (PTEs zapped), then the attachment.
    yield* down_write(t, this.mm.mmap_lock);
    if (this.vma.live) {
      yield* zap_vma_ptes(t, this.vma);
      this.vma.live = false;
    }
    yield* up_write(t, this.mm.mmap_lock);
    yield* this.detach(t);
  }

  readonly ops = {
    access: (t: Task, args: OpArgs) => RogueMmapImporter.kops.access(t, this, args),
  };

  /** The ops as kernel functions, made once for the class: made per instance, they would be made in every execution. */
  private static readonly kops = {
    access: kfn('rogue_mmap_access', (t: Task, self: RogueMmapImporter, args: OpArgs) =>
      user_access(t, self.vma, Number(args.page)),
    ),
  };
}

export const rogueMmap = defineImporter({
  name: 'rogue-mmap',
  summary: 'inserts PFNs from get_pfn into its own VMA and never zaps them',
  options: {
    get_pfn: {
      type: 'enum',
      values: ['unlocked', 'locked'],
      default: 'unlocked',
      doc: 'which get_pfn call the fault handler uses',
    },
    hold_resv_while_mapped: {
      type: 'boolean',
      default: false,
      doc: 'return from the fault handler still holding resv (implies get_pfn: locked)',
    },
  },
  ops: {
    access: { doc: 'a user load/store at a page (faults through its own handler)', args: PAGE_ARG },
  },
  create: (env) => new RogueMmapImporter(env),
});
