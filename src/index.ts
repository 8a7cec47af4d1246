/**
 * dmabuf-check's library API: the explicit list of what is public. The model,
 * the explorer and the checkers are pure TypeScript (no Node APIs).
 */

export type { CheckOptions, CheckResult, CheckStats, ReportedFinding } from './check.ts';
// Checking scenarios.
export { checkScenario, meets } from './check.ts';
export type { FindingCode } from './checkers/finding.ts';
export { FINDING_CODES, type Finding, type Origin } from './checkers/finding.ts';
export { KasanArray, kasan_check } from './checkers/kasan.ts';
// Writing drivers (exporters and importers as TypeScript modules).
export {
  type ArgSpec,
  type DriverDef,
  defineExporter,
  defineImporter,
  type ExportedBuffer,
  type ExporterDef,
  type ExporterEnv,
  type ImporterDef,
  type ImporterEnv,
  type ImporterInstance,
  type OpArgs,
  type OpSpec,
  type OptionSpec,
  type OptionValues,
  PAGE_ARG,
} from './drivers/driver.ts';
export { vfio_pci_dma_buf_iommufd_map } from './drivers/exporters/vfio-pci.ts';
export { BUILTIN_EXPORTERS, BUILTIN_IMPORTERS } from './drivers/registry.ts';
export { type ExecResult, runExecution } from './explorer/execution.ts';
export {
  type Counterexample,
  type ExploreOptions,
  type ExploreResult,
  explore,
  type Strategy,
  type Verdict,
} from './explorer/explore.ts';
export type { Program, World } from './explorer/program.ts';
export { ReplayMismatchError } from './explorer/replay.ts';
export { decodeToken, encodeToken, type ReplayToken, TokenError } from './explorer/token.ts';
export * from './kernel/dma-buf.ts';
export * from './kernel/dma-buf-ops.ts';
export * from './kernel/dma-buf-poll.ts';
export * from './kernel/dma-fence.ts';
export * from './kernel/dma-resv.ts';
export * from './kernel/errno.ts';
export * from './kernel/eventpoll.ts';
export * from './kernel/file.ts';
export * from './kernel/iommu.ts';
export { Kernel, type KernelConfig } from './kernel/kernel.ts';
export * from './kernel/kvm/kvm-main.ts';
export * from './kernel/kvm/mmu.ts';
export * from './kernel/kvm/pfncache.ts';
export * from './kernel/locking.ts';
export * from './kernel/memfd.ts';
export * from './kernel/memory.ts';
export * from './kernel/page-alloc.ts';
export * from './kernel/rdma/umem-dmabuf.ts';
export { type AccessKind, type KGen, KObject, kfn, SharedObject, type Step, Task } from './kernel/sched.ts';
export * from './kernel/sw-sync.ts';
export * from './kernel/sync-file.ts';
export * from './kernel/ww-mutex.ts';
export { documentJson, JSON_SCHEMA_VERSION, resultJson } from './report/json.ts';
export { renderFinding, renderResult } from './report/kernel-text.ts';
// JSON Schemas of the formats (published in schemas/).
export { resultSchema } from './report/result-schema.ts';
export { compile, scenarioHash } from './scenario/compile.ts';
export { ScenarioError, type ScenarioIssue } from './scenario/errors.ts';
export { driverModuleRefs, loadScenario } from './scenario/load-yaml.ts';
export { scenarioSchema } from './scenario/schema.ts';
export type { ScenarioSpec } from './scenario/spec.ts';
// Reading a trace back: format and version checked (TraceVersionError for another version).
export { parseTrace, readTrace, TraceFormatError, TraceVersionError } from './trace/load.ts';
// Reading a trace's JSON text with line:col positions (versions 1 and 2; the fuzzer's reference reader).
export { loadTrace, TraceError } from './trace/load-text.ts';
export { replayToken } from './trace/replay.ts';
export { TRACE_FORMAT, TRACE_VERSION, type Trace, type TraceStep } from './trace/trace.ts';
export { traceSchema } from './trace/trace-schema.ts';
