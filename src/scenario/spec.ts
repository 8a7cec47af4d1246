/**
 * A validated scenario, with every name resolved to its driver: what the
 * YAML loader (or TypeScript code building one) produces and the compiler turns
 * into a {@link Program}.
 */
import type { FindingCode } from '../checkers/finding.ts';
import type { ExporterDef, ImporterDef, OpArgs, OptionValues } from '../drivers/driver.ts';

/** Where something was written (1-based), for messages. */
export interface SourceLoc {
  readonly line: number;
  readonly col: number;
}

export interface BufferSpec {
  readonly name: string;
  readonly exporter: ExporterDef;
  /** What the scenario wrote (a built-in name or a module path), for the fingerprint. */
  readonly exporterRef: string;
  readonly pages: number;
  readonly options: OptionValues;
}

export interface ImporterSpec {
  readonly name: string;
  readonly driver: ImporterDef;
  readonly driverRef: string;
  readonly buffer: string;
  readonly options: OptionValues;
  /** `attach: manual`: not attached at setup; a thread calls `<importer>.attach`. */
  readonly manual: boolean;
}

export interface OpSpecCall {
  /** Buffer, importer, or `mm`. */
  readonly target: string;
  readonly op: string;
  readonly args: OpArgs;
  /** As written, for traces: `kvm.access {page: 0}`. */
  readonly text: string;
  readonly loc?: SourceLoc;
}

export interface ThreadSpec {
  readonly name: string;
  readonly ops: readonly OpSpecCall[];
}

export interface ExpectSpec {
  readonly verdict: 'safe' | 'bug';
  readonly finding?: FindingCode;
}

export interface ExploreSpec {
  readonly max_executions?: number;
  readonly strategy?: 'dfs' | 'random';
  readonly seed?: number;
}

export interface ScenarioSpec {
  readonly name: string;
  readonly description: string;
  readonly buffers: readonly BufferSpec[];
  readonly importers: readonly ImporterSpec[];
  readonly threads: readonly ThreadSpec[];
  readonly expect: ExpectSpec | null;
  readonly explore: ExploreSpec;
}
