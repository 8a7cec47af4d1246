/**
 * Renders findings the way the kernel reports them: KASAN for memory
 * findings, lockdep for lock findings, a WARN splat for the rest. Every
 * report ends with the replay token and the command that replays it.
 */

import type { CheckResult, ReportedFinding } from '../check.ts';
import type { Finding, HeldLockInfo, LockDependency, Origin, TranslationInfo } from '../checkers/finding.ts';
import type { Runaway } from '../explorer/execution.ts';
import { type Colors, NO_COLORS } from './colors.ts';

const RULE = '==================================================================';

export function hex(pfn: number): string {
  return `0x${pfn.toString(16)}`;
}

/** A backtrace: innermost first, outermost last, one frame per line. */
function backtrace(stack: readonly string[], indent = ' '): string[] {
  return [...stack].reverse().map((f) => `${indent}${f}`);
}

function originLines(title: string, o: Origin | null): string[] {
  if (!o) return [`${title}: (not recorded)`];
  return [`${title} thread ${o.thread} at step ${o.step}:`, ...backtrace(o.stack), ''];
}

function opOf(f: Finding): string {
  return f.op ? ` (${f.op})` : '';
}

function via(tr: TranslationInfo): string {
  const what = tr.kind === 'spte' ? 'SPTE' : tr.kind === 'pte' ? 'CPU PTE' : 'DMA mapping';
  return `${tr.importer}'s ${what} for ${tr.buffer} page ${tr.page}`;
}

function heldLines(held: readonly HeldLockInfo[], thread: string): string[] {
  if (held.length === 0) return [`no locks held by ${thread}.`];
  return [
    `${held.length} lock${held.length > 1 ? 's' : ''} held by ${thread}:`,
    ...held.map(
      (h, i) =>
        ` #${i}: ${h.name} (${h.class}){${h.mode === 'read' ? 'read' : 'write'}}, at: ${h.acquired.stack[h.acquired.stack.length - 1] ?? '?'} (step ${h.acquired.step})`,
    ),
  ];
}

function chainLines(chain: readonly LockDependency[], other: readonly string[]): string[] {
  const out: string[] = ['the existing dependency chain (in reverse order) is:', ''];
  chain
    .slice()
    .reverse()
    .forEach((d, i) => {
      out.push(`-> #${chain.length - 1 - i} (${d.to}):`);
      if (d.seen) {
        const where = d.token && other.includes(d.token) ? ` (in another execution: ${d.token})` : '';
        out.push(`       taken while holding ${d.from} by thread ${d.seen.thread} at step ${d.seen.step}${where}:`);
        out.push(...backtrace(d.seen.stack, '       '));
      } else {
        out.push(`       ${d.from} → ${d.to}: primed at boot (dma_resv_lockdep, [L8])`);
      }
      out.push('');
    });
  return out;
}

/** lockdep's "Possible unsafe locking scenario" for a cycle of two classes. */
function scenarioLines(chain: readonly LockDependency[]): string[] {
  const last = chain[chain.length - 1];
  if (chain.length !== 2 || !last) return [];
  const held = last.from;
  const wanted = last.to;
  const col = (s: string) => s.padEnd(31);
  return [
    'other info that might help us debug this:',
    '',
    ' Possible unsafe locking scenario:',
    '',
    `       ${col('CPU0')}CPU1`,
    `       ${col('----')}----`,
    `  lock(${held});`,
    `  ${col('')}     lock(${wanted});`,
    `  ${col('')}     lock(${held});`,
    `  lock(${wanted});`,
    '',
    ' *** DEADLOCK ***',
    '',
  ];
}

/** refcount_t's words for each kind (lib/refcount.c), plus the model's for a use after release. */
const REFCOUNT_HEAD = {
  underflow: 'underflow; use-after-free',
  'use-after-release': 'use after release',
  resurrection: 'addition on 0; use-after-free',
} as const;

/** The kernel-style body of one finding (no surrounding rules). */
export function findingBody(f: Finding): string[] {
  switch (f.code) {
    case 'use-after-free': {
      const out = [
        `BUG: KASAN: use-after-free in ${f.fn}`,
        `${f.access.how === 'guest' ? 'Guest access' : f.access.how === 'cpu' ? 'CPU access' : 'DMA'} to pfn ${hex(f.frame.pfn)} [${f.frame.pool}] by thread ${f.thread}${opOf(f)} at step ${f.step}, through ${via(f.access.via)}`,
        '',
        ...backtrace(f.stack),
        '',
        ...originLines('PFN obtained (translation made) by', f.access.via.made),
        ...originLines('Allocated by', f.allocated),
        ...originLines('Freed by', f.freed),
      ];
      if (f.reused) out.push(...originLines(`Reallocated (now backs ${f.reused.owner}) by`, f.reused));
      out.push(`The buggy address belongs to: ${f.frame.owner}`);
      return out;
    }
    case 'stale-mapping':
      return [
        `BUG: stale mapping: ${f.message}`,
        `pfn ${hex(f.frame.pfn)} [${f.frame.pool}] backed ${f.frame.owner}; ${via(f.translation)} still maps it (step ${f.step}, thread ${f.thread})`,
        '',
        ...backtrace(f.stack),
        '',
        ...originLines('Mapped by', f.translation.made),
      ];
    case 'access-after-revoke':
      return [
        `BUG: access after revoke in ${f.fn}`,
        `${f.access.how === 'guest' ? 'Guest access' : f.access.how === 'cpu' ? 'CPU access' : 'DMA'} to MMIO pfn ${hex(f.frame.pfn)} [${f.frame.pool}] by thread ${f.thread}${opOf(f)} at step ${f.step}, through ${via(f.access.via)}`,
        '',
        ...backtrace(f.stack),
        '',
        ...originLines('PFN obtained (translation made) by', f.access.via.made),
        ...originLines('Revoked by', f.revoked),
      ];
    case 'lock-not-held':
    case 'lock-held':
      return [
        `WARNING: ${f.code === 'lock-not-held' ? 'lock not held' : 'lock held'}: ${f.message}`,
        `thread ${f.thread} at step ${f.step}:`,
        ...backtrace(f.stack),
        '',
        ...heldLines(f.held, f.thread),
      ];
    case 'lock-held-on-return':
      return [
        '================================================',
        'WARNING: lock held when returning to user space!',
        '------------------------------------------------',
        `${f.thread} is leaving ${f.handler} with locks still held (step ${f.step}):`,
        ...backtrace(f.stack),
        '',
        ...heldLines(f.held, f.thread),
      ];
    case 'lock-order':
      if (f.kind === 'nesting') {
        return [
          '============================================',
          'WARNING: possible recursive locking detected',
          '--------------------------------------------',
          `${f.thread} is trying to acquire lock:`,
          ` ${f.lock.name} (${f.lock.class}), at: ${f.fn} (step ${f.step})`,
          '',
          'but task is already holding lock of the same class (without a shared ww_acquire_ctx):',
          ...heldLines(f.held, f.thread),
          '',
          ...backtrace(f.stack),
        ];
      }
      return [
        '======================================================',
        'WARNING: possible circular locking dependency detected',
        '------------------------------------------------------',
        `${f.thread} is trying to acquire lock:`,
        ` ${f.lock.name} (${f.lock.class}), at: ${f.fn} (step ${f.step})`,
        '',
        'but task is already holding lock:',
        ...heldLines(f.held, f.thread),
        '',
        'which lock already depends on the new lock.',
        '',
        ...chainLines(f.chain, f.requires),
        ...scenarioLines(f.chain),
        ...backtrace(f.stack),
      ];
    case 'deadlock':
      if (f.kind === 'recursive') {
        const w = f.waiters[0];
        return [
          '============================================',
          'WARNING: possible recursive locking detected',
          '--------------------------------------------',
          `${f.thread} is trying to acquire lock:`,
          ` ${w?.waitsFor ?? '?'}, at: ${w?.fn ?? f.fn} (step ${f.step})`,
          '',
          'but task is already holding lock:',
          ...heldLines(w?.held ?? [], f.thread),
          '',
          ' *** DEADLOCK ***',
          '',
          ...backtrace(w?.stack ?? f.stack),
        ];
      }
      return [
        'INFO: task blocked forever: every unfinished thread is waiting (deadlock)',
        '',
        ...f.waiters.flatMap((w) => [
          `${w.thread} is blocked in ${w.fn} on ${w.waitsFor}${w.holder ? `, held by ${w.holder}` : ''}:`,
          ...backtrace(w.stack),
          ...heldLines(w.held, w.thread),
          '',
        ]),
      ];
    case 'wait-in-signalling':
      return [
        'WARNING: possible circular locking dependency detected (dma_fence_map)',
        `${f.thread}: ${f.what} inside a dma_fence signalling critical section (step ${f.step})`,
        ...backtrace(f.stack),
      ];
    case 'leak':
      return [`BUG: leak: ${f.message}`, `found by ${f.thread} at step ${f.step}:`, ...backtrace(f.stack)];
    case 'refcount':
      if (f.what === 'use-after-free')
        return [
          `BUG: KASAN: slab-use-after-free in ${f.fn}`,
          `Read of ${f.object} by thread ${f.thread}${opOf(f)} at step ${f.step}: ${f.message}`,
          '',
          ...backtrace(f.stack),
          '',
          ...originLines('Freed by', f.released),
        ];
      return [
        `refcount_t: ${REFCOUNT_HEAD[f.what]}: ${f.message}`,
        `thread ${f.thread} at step ${f.step}:`,
        ...backtrace(f.stack),
        '',
        ...(f.released
          ? originLines(f.what === 'resurrection' ? 'Last reference dropped by' : 'Released by', f.released)
          : []),
      ];
    case 'private-mmio':
      return [
        `BUG: host mapping of private MMIO: ${f.message}`,
        `pfn ${hex(f.frame.pfn)} [${f.frame.pool}] is private MMIO of ${f.frame.owner}; only the secure EPT may map it (step ${f.step}, thread ${f.thread})`,
        '',
        ...backtrace(f.stack),
      ];
    case 'out-of-bounds': {
      const past = f.access.index - f.access.size;
      return [
        `BUG: KASAN: slab-out-of-bounds in ${f.fn}`,
        `${f.access.how === 'read' ? 'Read' : 'Write'} of ${f.access.object}[${f.access.index}] (${f.access.owner}) by thread ${f.thread}${opOf(f)} at step ${f.step}`,
        '',
        ...backtrace(f.stack),
        '',
        ...originLines('Allocated by', f.allocated),
        `The buggy address is located ${past >= 0 ? `${past} entr${past === 1 ? 'y' : 'ies'} to the right of` : 'outside'} the ${f.access.size}-entry region ${f.access.object} of ${f.access.owner}`,
      ];
    }
    case 'api-misuse':
      return [
        `WARNING: CPU: 0 PID: ${f.thread} at ${f.call}`,
        `${f.reason} (step ${f.step})`,
        'Call Trace:',
        ...backtrace(f.stack),
      ];
  }
}

export interface ReportContext {
  readonly file: string;
  /** The command that runs this tool ("dmabuf-check"). */
  readonly command?: string;
}

/** The command that replays `token` (after the `before` tokens, on one lockdep graph). */
export function replayCommand(
  file: string,
  token: string,
  command = 'dmabuf-check',
  before: readonly string[] = [],
): string {
  return `${command} replay ${file}${[...before, token].map((t) => ` --token ${t}`).join('')}`;
}

/** One finding, framed like a kernel splat, with its replay line. */
export function renderFinding(f: ReportedFinding, ctx: ReportContext, c: Colors = NO_COLORS): string {
  const body = findingBody(f);
  const requires = f.code === 'lock-order' ? f.requires : [];
  return [
    RULE,
    c.bold(body[0] ?? ''),
    ...body.slice(1),
    `Rules: ${f.rules.map((r) => `[${r}]`).join(' ')}`,
    `replay: ${f.token}`,
    ...(requires.length
      ? [`  (the cycle uses dependencies of ${requires.length} other execution(s), replayed first)`]
      : []),
    `  ${replayCommand(ctx.file, f.token, ctx.command, requires)}`,
    RULE,
  ].join('\n');
}

function expectation(r: CheckResult): string {
  if (!r.expected) return 'expected safe';
  return `expected ${r.expected.verdict}${r.expected.finding ? ` (${r.expected.finding})` : ''}`;
}

function verdictWord(r: CheckResult, c: Colors): string {
  const w = r.verdict;
  return w === 'safe' ? c.green(w) : w === 'bug' ? c.red(w) : c.yellow(w);
}

/**
 * A thread that ran away: not a finding about the modelled kernel but a
 * driver (or model) that threw, or an op still running at the step bound.
 * The thrown error's own stack is shown as it is, the driver's frames first.
 */
export function renderRunaway(w: Runaway, c: Colors = NO_COLORS): string {
  const head =
    w.kind === 'driver-error'
      ? `  ${c.yellow('driver error')}: thread ${w.thread}${w.op ? ` (${w.op})` : ''} threw ${w.message} at step ${w.steps}; the search stopped (verdict unknown)`
      : `  ${c.yellow(w.kind === 'stall' ? 'stalled' : 'step limit')}: thread ${w.thread}${w.op ? ` (${w.op})` : ''} ${w.message}; the search stopped (verdict unknown)`;
  const lines = [head];
  if (w.kstack.length) lines.push(`    in ${w.kstack.slice().reverse().join(' ← ')}`);
  if (w.stack) {
    // The driver's (and the model's) frames: up to where dmabuf-check's scenario runner called the op.
    for (const l of w.stack.split('\n').slice(1)) {
      const t = l.trim();
      if (/^at ScenarioWorld\.|[\\/]src[\\/]explorer[\\/]/.test(t)) break;
      if (t && !t.endsWith('.next (<anonymous>)')) lines.push(`    ${t}`);
    }
  }
  return lines.join('\n');
}

/** A scenario's result: one status line, then the counterexample's findings. */
export function renderResult(r: CheckResult, ctx: ReportContext, c: Colors = NO_COLORS): string {
  const tag = r.met ? c.green('PASS') : c.red('FAIL');
  const how =
    r.verdict === 'bug'
      ? 'counterexample found'
      : r.stats.complete
        ? 'every interleaving covered'
        : r.runaway
          ? `stopped: ${r.runaway.kind === 'driver-error' ? 'driver error' : r.runaway.kind === 'stall' ? 'stalled' : 'step limit'}`
          : `stopped: ${r.stopped ?? 'limit'}`;
  const lines = [
    `${tag} ${r.name} (${ctx.file}): ${verdictWord(r, c)}, ${expectation(r)} — ${r.stats.executions} executions, ${r.stats.steps} steps, ${how}`,
  ];
  if (r.stats.workers !== undefined)
    lines.push(
      `  workers: ${r.stats.workers}, units: ${r.stats.units ?? 0}${r.stats.splitFallback ? ` (${r.stats.splitFallback === 'timed' ? 'timed waits' : 'state-dependent steps'}: sleep sets in the units)` : ''}`,
    );
  if (r.stats.states !== undefined) {
    const groups = r.stats.symmetry ?? [];
    lines.push(
      `  states: ${r.stats.states}; symmetry: ${groups.length ? `${groups.map((g) => g.join(' = ')).join('; ')} interchangeable (states identified up to renaming them)` : 'none used (no interchangeable threads)'}`,
    );
  }
  if (r.counterexample) {
    const cx = r.counterexample;
    lines.push(
      `  counterexample: ${cx.schedule.length} scheduled steps, ${cx.switches} context switch${cx.switches === 1 ? '' : 'es'} (${cx.preemptions} preemption${cx.preemptions === 1 ? '' : 's'}); findings: ${r.findings.map((f) => f.code).join(', ')}`,
    );
  }
  if (r.runaway) lines.push(renderRunaway(r.runaway, c));
  if (r.expected?.finding && r.verdict === 'bug' && !r.met) {
    lines.push(`  no interleaving reached ${r.expected.finding} within the limits`);
  }
  const wantedToken = r.wanted?.token;
  let noted = false;
  for (const f of r.findings) {
    if (!noted && wantedToken && f.token === wantedToken && f.token !== r.counterexample?.token) {
      lines.push(
        `  the first counterexample does not show ${r.expected?.finding ?? 'the expected finding'}; a second one, searched for it:`,
      );
      noted = true;
    }
    lines.push(renderFinding(f, ctx, c));
  }
  return lines.join('\n');
}
