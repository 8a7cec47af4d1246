/**
 * Findings: what the checkers record when the modelled kernel breaks a rule.
 *
 * Findings are data (a union keyed by `code`), never exceptions; renderers in
 * `src/report/` turn them into kernel-style text or JSON. The codes are the
 * ones of the scenario contract (docs/finding-codes.md).
 */

export const FINDING_CODES = [
  'use-after-free',
  'stale-mapping',
  'access-after-revoke',
  'lock-not-held',
  'lock-held',
  'lock-held-on-return',
  'lock-order',
  'deadlock',
  'wait-in-signalling',
  'leak',
  'refcount',
  'api-misuse',
  'private-mmio',
  'out-of-bounds',
] as const;

export type FindingCode = (typeof FINDING_CODES)[number];

/** Where something happened: thread, step and the kernel call stack (innermost last). */
export interface Origin {
  readonly thread: string;
  readonly step: number;
  readonly stack: readonly string[];
}

/** A physical frame as reports show it. */
export interface FrameInfo {
  readonly pfn: number;
  readonly pool: string;
  /** What the frame backed when it was allocated ("bo (ttm, VRAM) page 0"). */
  readonly owner: string;
}

/** An importer translation (SPTE, CPU PTE, DMA mapping) as reports show it. */
export interface TranslationInfo {
  readonly kind: 'spte' | 'pte' | 'dma';
  readonly importer: string;
  readonly buffer: string;
  readonly page: number;
  readonly pfn: number;
  readonly made: Origin;
}

export interface LockInfo {
  readonly name: string;
  readonly class: string;
}

export interface HeldLockInfo extends LockInfo {
  readonly mode: 'read' | 'write';
  readonly acquired: Origin;
}

interface FindingBase {
  /** Step (1-based, counting every step of the execution) at which it was found. */
  readonly step: number;
  /** Thread that was running. */
  readonly thread: string;
  /** The scenario op it was running ("kvm.access { page: 0 }"; a setup or teardown phase). */
  readonly op: string;
  /** Kernel function performing the offending access or call. */
  readonly fn: string;
  readonly stack: readonly string[];
  /** Rule ids from the reference ([K4], [LT8], …). */
  readonly rules: readonly string[];
  /** One line, kernel flavoured. */
  readonly message: string;
}

export interface UseAfterFreeFinding extends FindingBase {
  readonly code: 'use-after-free';
  readonly access: { readonly how: 'guest' | 'cpu' | 'dma'; readonly via: TranslationInfo };
  readonly frame: FrameInfo;
  readonly allocated: Origin | null;
  readonly freed: Origin | null;
  /** Set when the frame was allocated again after the free. */
  readonly reused: (Origin & { readonly owner: string }) | null;
}

export interface StaleMappingFinding extends FindingBase {
  readonly code: 'stale-mapping';
  readonly event: 'free' | 'revoke' | 'install';
  readonly translation: TranslationInfo;
  readonly frame: FrameInfo;
}

/**
 * A host mapping of private MMIO: a CPU PTE, a host-DMA mapping or a shared
 * EPT entry for a BAR page of a device assigned to a confidential guest
 * (TDISP / TDX Connect, the purpose of the get_pfn RFC series, [K8]). Only
 * the guest's secure EPT may map it.
 */
export interface PrivateMmioFinding extends FindingBase {
  readonly code: 'private-mmio';
  readonly translation: TranslationInfo;
  readonly frame: FrameInfo;
}

/**
 * KASAN's slab-out-of-bounds: a kernel read or write of an array element past
 * its end — a fault handler indexing its pages array with a page offset it
 * did not bound ([C1]: after mremap grew the VMA, the offset can pass the
 * buffer).
 */
export interface OutOfBoundsFinding extends FindingBase {
  readonly code: 'out-of-bounds';
  readonly access: {
    readonly how: 'read' | 'write';
    /** The array, as the field that points to it ("cma_heap_buffer->pages"). */
    readonly object: string;
    /** Whose array it is (the buffer). */
    readonly owner: string;
    readonly index: number;
    /** Its number of entries. */
    readonly size: number;
  };
  /** Where the array was allocated. */
  readonly allocated: Origin | null;
}

export interface AccessAfterRevokeFinding extends FindingBase {
  readonly code: 'access-after-revoke';
  readonly access: { readonly how: 'guest' | 'cpu' | 'dma'; readonly via: TranslationInfo };
  readonly frame: FrameInfo;
  readonly revoked: Origin | null;
}

export interface LockNotHeldFinding extends FindingBase {
  readonly code: 'lock-not-held';
  readonly lock: LockInfo;
  readonly held: readonly HeldLockInfo[];
}

export interface LockHeldFinding extends FindingBase {
  readonly code: 'lock-held';
  readonly lock: LockInfo;
  readonly held: readonly HeldLockInfo[];
}

export interface LockHeldOnReturnFinding extends FindingBase {
  readonly code: 'lock-held-on-return';
  /** The fault handler (or "thread exit") that returned with locks held. */
  readonly handler: string;
  readonly held: readonly HeldLockInfo[];
}

/** One edge of lockdep's dependency graph: `from` was held when `to` was taken. */
export interface LockDependency {
  readonly from: string;
  readonly to: string;
  /** Where the edge was first seen; null for edges primed at boot ([L8]). */
  readonly seen: Origin | null;
  /** Number of the execution that added it (the explorer numbers them). */
  readonly execution: number;
  /** Replay token of that execution, once it has ended. */
  token: string | null;
}

export interface LockOrderFinding extends FindingBase {
  readonly code: 'lock-order';
  readonly kind: 'circular' | 'nesting';
  /** The lock being acquired. */
  readonly lock: LockInfo;
  /** The existing chain that the new dependency closes into a cycle. */
  readonly chain: readonly LockDependency[];
  readonly held: readonly HeldLockInfo[];
  /**
   * Tokens of the other executions whose dependencies close the cycle: replay
   * them first (on one lockdep graph) to see the report again.
   */
  readonly requires: readonly string[];
}

export interface DeadlockWaiter {
  readonly thread: string;
  readonly fn: string;
  readonly stack: readonly string[];
  readonly waitsFor: string;
  readonly holder: string | null;
  readonly held: readonly HeldLockInfo[];
}

export interface DeadlockFinding extends FindingBase {
  readonly code: 'deadlock';
  readonly kind: 'recursive' | 'all-blocked';
  readonly waiters: readonly DeadlockWaiter[];
}

export interface WaitInSignallingFinding extends FindingBase {
  readonly code: 'wait-in-signalling';
  readonly what: string;
}

export interface LeakFinding extends FindingBase {
  readonly code: 'leak';
  readonly what: 'reference' | 'attachment' | 'pin' | 'mapping' | 'vmap';
  readonly object: string;
  readonly count: number;
}

export interface RefcountFinding extends FindingBase {
  readonly code: 'refcount';
  /**
   * `underflow`: a put with no reference left; `use-after-release`: a use
   * after the object's release (or free, for an attachment); `resurrection`:
   * a reference taken on a file whose count already reached 0 (its release is
   * pending); `use-after-free`: a read of memory a kfree already freed (a
   * dma-buf's old name).
   */
  readonly what: 'underflow' | 'use-after-release' | 'resurrection' | 'use-after-free';
  readonly object: string;
  /** Where the object was released or freed (for a resurrection: where its count reached 0). */
  readonly released: Origin | null;
}

export interface ApiMisuseFinding extends FindingBase {
  readonly code: 'api-misuse';
  readonly call: string;
  readonly reason: string;
}

export type Finding =
  | UseAfterFreeFinding
  | StaleMappingFinding
  | AccessAfterRevokeFinding
  | LockNotHeldFinding
  | LockHeldFinding
  | LockHeldOnReturnFinding
  | LockOrderFinding
  | DeadlockFinding
  | WaitInSignallingFinding
  | LeakFinding
  | RefcountFinding
  | ApiMisuseFinding
  | PrivateMmioFinding
  | OutOfBoundsFinding;

/** The code-specific part of a finding; the kernel fills in where and when. */
export type FindingDetail<F extends Finding = Finding> = F extends Finding
  ? Omit<F, keyof FindingBase> & { readonly message: string; readonly rules: readonly string[] }
  : never;
