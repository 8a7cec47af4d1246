/**
 * The `cpu-access` importer: a kernel driver that reads and writes an
 * imported buffer with the CPU through a kernel mapping — the GEM-SHMEM
 * display drivers (udl, gud, …) that import a dma-buf without mapping its
 * sg_table and copy out of it through `dma_buf_vmap`, bracketing each access
 * with `dma_buf_begin_cpu_access` / `dma_buf_end_cpu_access`
 * (drm_gem_fb_vmap, drm_gem_fb_begin/end_cpu_access) ([C6], [C7]).
 *
 * - attach: `get_dma_buf`, then a static `dma_buf_attach` (the GEM PRIME
 *   import; the attachment is never mapped);
 * - `vmap`: `dma_buf_vmap_unlocked` — equivalently resv held around
 *   `dma_buf_vmap`, as drm_gem_vmap does ([L1], [L2]); `vunmap` likewise.
 *   The map is kept for later ops; a second `vmap` takes another reference
 *   on the same cached mapping ([C6]);
 * - `begin_cpu_access {write}`: `dma_buf_begin_cpu_access` without resv,
 *   direction DMA_FROM_DEVICE for a read (write: false) or
 *   DMA_BIDIRECTIONAL for a read-modify-write (write: true); the core waits
 *   for WRITE fences, or for READ and WRITE fences ([C7], [R1]);
 *   `end_cpu_access` ends it with the direction of the last begin;
 * - `access {page}`: a CPU copy through the vmap (`iosys_map_memcpy_from`),
 *   checked by KASAN like any other access ([I1], [I2]). Without a vmap it is
 *   a NULL dereference, reported as `api-misuse`.
 *
 * The classic mistakes, as options (default: correct):
 * - `vmap_without_resv: true` calls `dma_buf_vmap` / `dma_buf_vunmap`
 *   without taking resv: `lock-not-held` ([L1], [C6]) — the pre-2022
 *   convention, when dma_buf_vmap took dmabuf->lock itself;
 * - `begin_cpu_access_with_resv: true` holds resv around
 *   `dma_buf_begin_cpu_access` and `dma_buf_end_cpu_access`: `lock-held`
 *   ([L2], [C7]); an exporter whose begin_cpu_access takes resv (TTM /
 *   amdgpu) then deadlocks on it.
 *
 * Teardown unbinds the driver (detach and put) without a vunmap: a vmap left
 * is reported as a `leak` when the buffer is released ([LT2], [I8]).
 * Ops are serialised by the driver's mutex, which protects its map pointer.
 *
 * Models: drivers/gpu/drm/drm_gem_framebuffer_helper.c (drm_gem_fb_vmap,
 * drm_gem_fb_begin_cpu_access), drm_gem_shmem_helper.c (vmap of an import),
 * as used by drivers/gpu/drm/udl
 */
import { apiMisuse } from '../../checkers/api.ts';
import { kasan_check } from '../../checkers/kasan.ts';
import {
  type DmaBufAttachment,
  dma_buf_attach,
  dma_buf_begin_cpu_access,
  dma_buf_end_cpu_access,
  dma_buf_vmap,
  dma_buf_vmap_unlocked,
  dma_buf_vunmap,
  dma_buf_vunmap_unlocked,
} from '../../kernel/dma-buf.ts';
import type { DmaDataDirection, IosysMap } from '../../kernel/dma-buf-ops.ts';
import { dma_resv_lock, dma_resv_unlock } from '../../kernel/dma-resv.ts';
import { isErr, type Result } from '../../kernel/errno.ts';
import { mutex_lock, mutex_unlock } from '../../kernel/locking.ts';
import { type KGen, kfn, type Task } from '../../kernel/sched.ts';
import { defineImporter, type ImporterEnv, type OpArgs, PAGE_ARG } from '../driver.ts';
import { DeviceImporter } from './device.ts';

class CpuAccessImporter extends DeviceImporter {
  readonly attachCall = 'dma_buf_attach';
  /** The driver's mapping (protected by its mutex); null before vmap, after the last vunmap. */
  map: IosysMap | null = null;
  /** vmap ops minus vunmap ops that succeeded. */
  vmaps = 0;
  /** Direction of the last begin_cpu_access, for end_cpu_access. */
  dir: DmaDataDirection = 'DMA_FROM_DEVICE';
  readonly vmapWithoutResv: boolean;
  readonly beginWithResv: boolean;

  constructor(env: ImporterEnv) {
    super(env, 'cpu_access_dev->lock');
    this.vmapWithoutResv = env.options.vmap_without_resv === true;
    this.beginWithResv = env.options.begin_cpu_access_with_resv === true;
  }

  protected *attachBuffer(t: Task): KGen<Result<DmaBufAttachment>> {
    return yield* dma_buf_attach(t, this.env.buffer, this.env.name, this.env.name);
  }

  readonly ops = {
    vmap: (t: Task) => CpuAccessImporter.kops.vmap(t, this),
    vunmap: (t: Task) => CpuAccessImporter.kops.vunmap(t, this),
    begin_cpu_access: (t: Task, args: OpArgs) => CpuAccessImporter.kops.begin_cpu_access(t, this, args),
    end_cpu_access: (t: Task) => CpuAccessImporter.kops.end_cpu_access(t, this),
    access: (t: Task, args: OpArgs) => CpuAccessImporter.kops.access(t, this, args),
  };

  /** The ops as kernel functions, made once for the class: made per instance, they would be made in every execution. */
  private static readonly kops = {
    vmap: kfn('cpu_access_vmap', (t: Task, self: CpuAccessImporter) => self.vmap(t)),
    vunmap: kfn('cpu_access_vunmap', (t: Task, self: CpuAccessImporter) => self.vunmap(t)),
    begin_cpu_access: kfn('cpu_access_begin', (t: Task, self: CpuAccessImporter, args: OpArgs) =>
      self.begin(t, args.write === true),
    ),
    end_cpu_access: kfn('cpu_access_end', (t: Task, self: CpuAccessImporter) => self.end(t)),
    access: kfn('cpu_access_read', (t: Task, self: CpuAccessImporter, args: OpArgs) =>
      self.access(t, Number(args.page)),
    ),
  };

  private *vmap(t: Task): KGen {
    yield* mutex_lock(t, this.lock);
    if (this.att) {
      const buf = this.env.buffer;
      // The bug: dma_buf_vmap without the resv lock it requires ([L1], [C6]).
      const r = this.vmapWithoutResv ? yield* dma_buf_vmap(t, buf) : yield* dma_buf_vmap_unlocked(t, buf);
      if (!isErr(r)) {
        this.map = r;
        this.vmaps++;
      }
    }
    yield* mutex_unlock(t, this.lock);
  }

  /** Passes the driver's map as it is (NULL without a vmap): the core's checks see the misuse ([C6]). */
  private *vunmap(t: Task): KGen {
    yield* mutex_lock(t, this.lock);
    if (this.att) {
      const buf = this.env.buffer;
      const map = this.map;
      if (this.vmapWithoutResv) yield* dma_buf_vunmap(t, buf, map);
      else yield* dma_buf_vunmap_unlocked(t, buf, map);
      if (this.vmaps > 0 && --this.vmaps === 0) this.map = null;
    }
    yield* mutex_unlock(t, this.lock);
  }

  private *begin(t: Task, write: boolean): KGen {
    yield* mutex_lock(t, this.lock);
    if (this.att) {
      const buf = this.env.buffer;
      this.dir = write ? 'DMA_BIDIRECTIONAL' : 'DMA_FROM_DEVICE';
      // The bug: begin_cpu_access inside a resv hold ([L2], [C7]).
      if (this.beginWithResv) yield* dma_resv_lock(t, buf.resv, null);
      yield* dma_buf_begin_cpu_access(t, buf, this.dir);
      if (this.beginWithResv) yield* dma_resv_unlock(t, buf.resv);
    }
    yield* mutex_unlock(t, this.lock);
  }

  private *end(t: Task): KGen {
    yield* mutex_lock(t, this.lock);
    if (this.att) {
      const buf = this.env.buffer;
      if (this.beginWithResv) yield* dma_resv_lock(t, buf.resv, null);
      yield* dma_buf_end_cpu_access(t, buf, this.dir);
      if (this.beginWithResv) yield* dma_resv_unlock(t, buf.resv);
    }
    yield* mutex_unlock(t, this.lock);
  }

  private *access(t: Task, page: number): KGen {
    yield* mutex_lock(t, this.lock);
    if (this.att) {
      const tr = this.map?.vaddr[page];
      if (!tr) {
        apiMisuse(
          t,
          'cpu_access_read',
          `CPU access to page ${page} of ${this.env.buffer.name} through a NULL iosys_map (no vmap)`,
          ['C6'],
        );
      } else {
        yield t.at('iosys_map_memcpy_from', 'read', tr.frame);
        kasan_check(t, tr, 'cpu');
      }
    }
    yield* mutex_unlock(t, this.lock);
  }
}

export const cpuAccess = defineImporter({
  name: 'cpu-access',
  summary: 'a kernel driver accessing the buffer with the CPU through dma_buf_vmap, bracketed by begin/end_cpu_access',
  options: {
    vmap_without_resv: {
      type: 'boolean',
      default: false,
      doc: 'true: call dma_buf_vmap/dma_buf_vunmap without holding resv (lock-not-held)',
    },
    begin_cpu_access_with_resv: {
      type: 'boolean',
      default: false,
      doc: 'true: hold resv around dma_buf_begin_cpu_access/dma_buf_end_cpu_access (lock-held)',
    },
  },
  ops: {
    vmap: { doc: 'dma_buf_vmap_unlocked (or dma_buf_vmap without resv, with vmap_without_resv)' },
    vunmap: { doc: 'dma_buf_vunmap_unlocked of the driver’s map (NULL without a vmap)' },
    begin_cpu_access: {
      doc: 'dma_buf_begin_cpu_access: DMA_FROM_DEVICE, or DMA_BIDIRECTIONAL with write: true',
      args: { write: { type: 'boolean', default: false, doc: 'the CPU also writes (waits for readers too)' } },
    },
    end_cpu_access: { doc: 'dma_buf_end_cpu_access with the direction of the last begin' },
    access: { doc: 'a CPU copy from a page through the vmap (KASAN-checked)', args: PAGE_ARG },
  },
  create: (env) => new CpuAccessImporter(env),
});
