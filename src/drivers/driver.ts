/**
 * How exporters and importers plug into scenarios. A built-in driver and a
 * driver written as a TypeScript module (named by path in a scenario)
 * implement the same interfaces: option and op specifications for
 * validation, and generator functions over the kernel model for behaviour.
 */
import type { DmaBuf } from '../kernel/dma-buf.ts';
import type { Result } from '../kernel/errno.ts';
import type { Kernel } from '../kernel/kernel.ts';
import type { PagePool } from '../kernel/page-alloc.ts';
import type { KGen, Task } from '../kernel/sched.ts';

/** A driver option: its type, default and documentation. */
export type OptionSpec = OptionKind & {
  /**
   * Added after replay tokens were first issued: left out of a scenario's
   * resolved options (so out of its hash, and its tokens stay valid) unless
   * the scenario sets it; the driver reads its absence as the default.
   */
  readonly late?: true;
};

type OptionKind =
  | { readonly type: 'boolean'; readonly default: boolean; readonly doc: string }
  /** The name of a buffer of the scenario ('' when not given). */
  | { readonly type: 'buffer'; readonly default: string; readonly doc: string }
  | { readonly type: 'enum'; readonly values: readonly string[]; readonly default: string; readonly doc: string }
  | {
      readonly type: 'int';
      readonly min: number;
      readonly max: number;
      readonly default: number;
      readonly doc: string;
    };

/** An op argument: `page` is a page index of the buffer the object is bound to. */
export type ArgSpec = (
  | { readonly type: 'page' }
  | { readonly type: 'int'; readonly min: number; readonly max: number }
  | { readonly type: 'boolean' }
  | { readonly type: 'enum'; readonly values: readonly string[] }
) & { readonly required?: boolean; readonly default?: number | string | boolean; readonly doc?: string };

export interface OpSpec {
  readonly doc: string;
  readonly args?: Readonly<Record<string, ArgSpec>>;
}

export type OptionValues = Readonly<Record<string, boolean | string | number>>;
export type OpArgs = Readonly<Record<string, boolean | string | number>>;
export type OpFn = (t: Task, args: OpArgs) => KGen<unknown>;

export interface ExporterEnv {
  readonly k: Kernel;
  /** The buffer's name in the scenario. */
  readonly name: string;
  readonly pages: number;
  readonly options: OptionValues;
}

/** What an exporter hands back after exporting at setup. */
export interface ExportedBuffer {
  readonly buf: DmaBuf;
  /** Where the buffer's memory came from (`mm.alloc` takes from it by default). */
  readonly pool: PagePool;
  /** Ops a thread can call on the buffer, besides `get` and `put`. */
  readonly ops: Readonly<Record<string, OpFn>>;
}

export interface ExporterDef {
  readonly kind: 'exporter';
  readonly name: string;
  readonly summary: string;
  readonly options: Readonly<Record<string, OptionSpec>>;
  /** Thread ops on the buffer besides `get` and `put`. */
  readonly ops: Readonly<Record<string, OpSpec>>;
  /** The kernel function that creates the buffer (on the setup stack in reports). */
  readonly exportCall?: string;
  /** Exports the buffer during setup. */
  export(t: Task, env: ExporterEnv): KGen<Result<ExportedBuffer>>;
}

export interface ImporterEnv {
  readonly k: Kernel;
  /** The importer's name in the scenario. */
  readonly name: string;
  readonly buffer: DmaBuf;
  readonly pages: number;
  readonly options: OptionValues;
  /** Every buffer of the scenario, by name (for options of type `buffer`). */
  readonly buffers: ReadonlyMap<string, DmaBuf>;
}

/** One importer for one execution. */
export interface ImporterInstance {
  /** The kernel call attach makes, named when setup fails ("dma_buf_dynamic_attach"). */
  readonly attachCall: string;
  /** Attaches (at setup, or the `attach` op with `attach: manual`): 0 or -errno. */
  attach(t: Task): KGen<number>;
  /**
   * Optional: runs at the end of setup, after every importer was created and
   * the automatic ones attached (also with `attach: manual`): what the owner
   * sets up besides the attachment (the `dma-buf-user` process opens its
   * epoll set and sw_sync timeline).
   */
  start?(t: Task): KGen;
  /**
   * The `detach` op: detach and drop the importer's references. Ops after it
   * (or before a manual attach) find nothing attached and do nothing: the
   * driver checks that under its own lock.
   */
  detach(t: Task): KGen;
  /** Ops a thread can call, besides `attach` and `detach`. */
  readonly ops: Readonly<Record<string, OpFn>>;
  /** The owner goes away (process exit, VM destroyed), then detach. */
  teardown(t: Task): KGen;
}

export interface ImporterDef {
  readonly kind: 'importer';
  readonly name: string;
  readonly summary: string;
  readonly options: Readonly<Record<string, OptionSpec>>;
  /** Thread ops besides `attach` and `detach`. */
  readonly ops: Readonly<Record<string, OpSpec>>;
  create(env: ImporterEnv): ImporterInstance;
  /** Rejects option combinations that make no sense; returns a message or null. */
  checkOptions?(options: OptionValues): { option: string; message: string } | null;
  /**
   * Rejects an op the importer cannot run with these options (an op that
   * needs an option set); returns a message or null. Checked when the
   * scenario is loaded, like the ops' arguments.
   */
  checkOp?(options: OptionValues, op: string): string | null;
}

export type DriverDef = ExporterDef | ImporterDef;

/** Helper for driver modules: `export default defineImporter({...})` keeps the types. */
export function defineImporter(def: Omit<ImporterDef, 'kind'>): ImporterDef {
  return { kind: 'importer', ...def };
}

export function defineExporter(def: Omit<ExporterDef, 'kind'>): ExporterDef {
  return { kind: 'exporter', ...def };
}

export const PAGE_ARG: Readonly<Record<string, ArgSpec>> = {
  page: { type: 'page', required: true, doc: 'page index' },
};
