/**
 * The `cpu-mmap` importer: a process that maps the buffer with
 * `dma_buf_mmap` (an importer's mmap forwarded to the exporter, or mmap on
 * the dma-buf fd). Faults are served by the exporter, which inserts and zaps
 * PTEs under its own lock, so no PTE survives a move or revoke ([C1]–[C4]).
 *
 * - attach: mmap (mmap_lock held for write around `dma_buf_mmap`);
 * - `access {page}`: a user load/store; a refused fault is a SIGBUS, not a
 *   finding;
 * - `mremap {pages}`: resize the VMA in place (mmap_lock for write). Growing
 *   is refused (-EFAULT) when the exporter's mmap made it VM_DONTEXPAND or
 *   VM_PFNMAP; otherwise the new pages fault with page offsets past the
 *   buffer, which `dma_buf_mmap` checked only at mmap time ([C1]);
 * - `access_vma {page}`: a user load/store at a page of the VMA, which after
 *   a growing mremap may lie past the buffer (past the VMA: SIGSEGV);
 * - `munmap` (also the `detach` op): zap, unlink, drop the file reference;
 * - teardown: the process exits, which unmaps.
 *
 * The mapping is MAP_SHARED (VM_SHARED), as every dma-buf mmap must be.
 *
 * Models: mm/mmap.c (do_mmap, munmap), mm/mremap.c around
 * drivers/dma-buf/dma-buf.c dma_buf_mmap_internal / dma_buf_mmap
 */
import { dma_buf_mmap, dma_buf_put } from '../../kernel/dma-buf.ts';
import { down_write, up_write } from '../../kernel/locking.ts';
import { MmStruct, mremap, user_access, VM_SHARED, Vma, vma_unlink, zap_vma_ptes } from '../../kernel/memory.ts';
import { type KGen, kfn, type Task } from '../../kernel/sched.ts';
import { defineImporter, type ImporterEnv, type ImporterInstance, type OpArgs, PAGE_ARG } from '../driver.ts';

class CpuMmapImporter implements ImporterInstance {
  readonly attachCall = 'dma_buf_mmap';
  readonly mm: MmStruct;
  readonly vma: Vma;

  constructor(readonly env: ImporterEnv) {
    this.mm = new MmStruct(env.k, `${env.name}:mm`);
    this.vma = new Vma(env.k, this.mm, env.name, env.pages);
    this.vma.vm_flags = VM_SHARED;
  }

  *attach(t: Task): KGen<number> {
    yield* down_write(t, this.mm.mmap_lock);
    let r = 0;
    if (!this.vma.live) {
      r = yield* dma_buf_mmap(t, this.env.buffer, this.vma, 0);
      if (r === 0) this.vma.live = true;
    }
    yield* up_write(t, this.mm.mmap_lock);
    return r;
  }

  *detach(t: Task): KGen {
    yield* this.munmap(t);
  }

  private *munmap(t: Task): KGen {
    yield* down_write(t, this.mm.mmap_lock);
    const was = this.vma.live;
    if (was) {
      yield* zap_vma_ptes(t, this.vma);
      yield* vma_unlink(t, this.vma);
      this.vma.live = false;
    }
    yield* up_write(t, this.mm.mmap_lock);
    // fput(vma->vm_file)
    if (was) yield* dma_buf_put(t, this.env.buffer);
  }

  *teardown(t: Task): KGen {
    yield* this.munmap(t);
  }

  readonly ops = {
    access: (t: Task, args: OpArgs) => CpuMmapImporter.kops.access(t, this, args),
    access_vma: (t: Task, args: OpArgs) => CpuMmapImporter.kops.access(t, this, args),
    mremap: (t: Task, args: OpArgs) => CpuMmapImporter.kops.mremap(t, this, args),
    munmap: (t: Task) => CpuMmapImporter.kops.munmap(t, this),
  };

  /** The ops as kernel functions, made once for the class: made per instance, they would be made in every execution. */
  private static readonly kops = {
    access: kfn('cpu_mmap_access', (t: Task, self: CpuMmapImporter, args: OpArgs) =>
      user_access(t, self.vma, Number(args.page)),
    ),
    mremap: kfn('sys_mremap', (t: Task, self: CpuMmapImporter, args: OpArgs) =>
      mremap(t, self.vma, Number(args.pages)),
    ),
    munmap: kfn('__vm_munmap', (t: Task, self: CpuMmapImporter) => self.munmap(t)),
  };
}

export const cpuMmap = defineImporter({
  name: 'cpu-mmap',
  summary: 'a user mapping made with dma_buf_mmap, faults served by the exporter',
  options: {},
  ops: {
    access: { doc: 'a user load/store at a page (faults through the exporter when no PTE)', args: PAGE_ARG },
    mremap: {
      doc: 'resize the VMA in place (mremap): -EFAULT to grow a VM_DONTEXPAND or VM_PFNMAP mapping',
      args: { pages: { type: 'int', min: 1, max: 16, required: true, doc: 'the new size in pages' } },
    },
    access_vma: {
      doc: 'a user load/store at a page of the VMA, which may lie past the buffer after a growing mremap',
      args: { page: { type: 'int', min: 0, max: 15, required: true, doc: 'page index in the VMA' } },
    },
    munmap: { doc: 'unmap the VMA and drop its file reference' },
  },
  create: (env) => new CpuMmapImporter(env),
});
