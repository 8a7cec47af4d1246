/**
 * Running SPIN as a user would: `spin -a model.pml`, `gcc -O2 -DSAFETY -o pan
 * pan.c`, `./pan -m<depth>`, each timed, and pan's report parsed. Installs
 * Debian's `spin` package with apt-get when it is missing (root only).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface SpinTools {
  readonly ok: boolean;
  /** What happened (installed, missing and why). */
  readonly message: string;
  readonly version: string | null;
}

function has(cmd: string, args: string[]): string | null {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error || r.status !== 0) return null;
  return `${r.stdout}${r.stderr}`.trim();
}

/** `spin` and `gcc` on the PATH; `apt-get install -y spin` first when spin is missing and we may. */
export function ensureSpin(log: (s: string) => void, allowInstall: boolean): SpinTools {
  if (!has('gcc', ['--version']))
    return { ok: false, message: 'gcc not found: SPIN comparison skipped', version: null };
  let v = has('spin', ['-V']);
  if (v) return { ok: true, message: 'spin found', version: v };
  if (!allowInstall)
    return { ok: false, message: 'spin not found (BENCH_NO_INSTALL set): SPIN comparison skipped', version: null };
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!root || !has('apt-get', ['--version']))
    return {
      ok: false,
      message: 'spin not found and cannot apt-get install it (needs root and apt-get): SPIN comparison skipped',
      version: null,
    };
  const install = () =>
    spawnSync('apt-get', ['install', '-y', '-q', 'spin'], {
      encoding: 'utf8',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      timeout: 300_000,
    });
  log('spin not found: apt-get install -y spin …');
  let r = install();
  if (r.status !== 0) {
    log('apt-get install failed; apt-get update, then again …');
    spawnSync('apt-get', ['update', '-q'], { encoding: 'utf8', timeout: 300_000 });
    r = install();
  }
  v = has('spin', ['-V']);
  if (v) return { ok: true, message: 'spin installed with apt-get', version: v };
  const why = `${r.stderr ?? ''}`.trim().split('\n').slice(-1)[0] ?? '';
  return { ok: false, message: `spin could not be installed (${why}): SPIN comparison skipped`, version: null };
}

export interface SpinOptions {
  /** Also compile with -DNOREDUCE (no partial-order reduction). */
  readonly noReduce: boolean;
  /** Wall-clock cap for pan (ms). */
  readonly capMs: number;
  /** -DMEMLIM: pan stops when its memory passes this many MiB. */
  readonly memlimMiB: number;
  /** -m: maximum search depth. */
  readonly depth: number;
}

export interface SpinRun {
  /** pan ran to its end (no cap, no memory limit, depth sufficient). */
  readonly complete: boolean;
  readonly capped: boolean;
  readonly why: string | null;
  readonly errors: number | null;
  /** The first assertion pan reports violated, if any. */
  readonly assertion: string | null;
  readonly states: number | null;
  readonly transitions: number | null;
  readonly depth: number | null;
  /** Wall ms of `spin -a`, of gcc, of pan. */
  readonly spinMs: number;
  readonly gccMs: number;
  readonly panMs: number;
  /** pan's user+system CPU ms and peak RSS (from /usr/bin/time), when available. */
  readonly panCpuMs: number | null;
  readonly panRssMiB: number | null;
  /** pan's own "elapsed time" line (seconds). */
  readonly panElapsedS: number | null;
}

const num = (re: RegExp, s: string): number | null => {
  const m = re.exec(s);
  return m ? Number(m[1]) : null;
};

function lastProgress(out: string): number | null {
  const all = [...out.matchAll(/States=\s*([\d.e+]+)/g)];
  const last = all[all.length - 1];
  return last ? Number(last[1]) : null;
}

function timedSpawn(cmd: string, args: string[], cwd: string, timeout?: number) {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, {
    cwd,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    ...(timeout ? { timeout, killSignal: 'SIGKILL' as const } : {}),
  });
  return { r, ms: performance.now() - t0 };
}

/** Generates, compiles and runs one model in `dir` (created, emptied). */
export function runSpin(pml: string, dir: string, o: SpinOptions): SpinRun {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'model.pml'), pml);
  const fail = (why: string, spinMs = 0, gccMs = 0): SpinRun => ({
    complete: false,
    capped: false,
    why,
    errors: null,
    assertion: null,
    states: null,
    transitions: null,
    depth: null,
    spinMs,
    gccMs,
    panMs: 0,
    panCpuMs: null,
    panRssMiB: null,
    panElapsedS: null,
  });
  const a = timedSpawn('spin', ['-a', 'model.pml'], dir);
  if (a.r.status !== 0) return fail(`spin -a failed: ${a.r.stdout}${a.r.stderr}`.trim());
  const flags = ['-O2', '-DSAFETY', `-DMEMLIM=${o.memlimMiB}`, ...(o.noReduce ? ['-DNOREDUCE'] : [])];
  const g = timedSpawn('gcc', [...flags, '-w', '-o', 'pan', 'pan.c'], dir);
  if (g.r.status !== 0) return fail(`gcc failed: ${g.r.stderr}`.trim(), a.ms);
  // timeout(1) signals the whole process group: SIGINT makes pan print its statistics so far and stop
  // (/usr/bin/time ignores it), SIGKILL 5 s later if it has not; spawnSync's timeout is the backstop.
  const capS = Math.max(1, Math.ceil(o.capMs / 1000));
  const timeTool = existsSync('/usr/bin/time');
  const timeoutTool = has('timeout', ['--version']) !== null;
  const pan = ['./pan', `-m${o.depth}`];
  const timed = timeTool ? ['/usr/bin/time', '-o', 'time.txt', '-f', '%e %U %S %M', ...pan] : pan;
  const cmd = timeoutTool ? ['timeout', '-s', 'INT', '-k', '5s', `${capS}s`, ...timed] : timed;
  const p = timedSpawn(cmd[0] as string, cmd.slice(1), dir, o.capMs + 15_000);
  const out = `${p.r.stdout ?? ''}${p.r.stderr ?? ''}`;
  writeFileSync(path.join(dir, 'pan.out'), out);
  let panCpuMs: number | null = null;
  let panRssMiB: number | null = null;
  const tf = path.join(dir, 'time.txt');
  if (timeTool && existsSync(tf)) {
    const last = readFileSync(tf, 'utf8').trim().split('\n').slice(-1)[0] ?? '';
    const [, user, sys, rss] = last.split(' ').map(Number);
    if (user !== undefined && sys !== undefined && Number.isFinite(user + sys)) panCpuMs = (user + sys) * 1000;
    if (rss !== undefined && Number.isFinite(rss)) panRssMiB = rss / 1024;
  }
  const killed =
    p.r.signal !== null || p.r.status === 137 || p.r.status === 124 || /stopped by signal|Interrupted/i.test(out);
  const memlim = /MEMLIM|out of memory/i.test(out);
  const shallow = /max search depth too small/.test(out);
  const errors = num(/errors: (\d+)/, out);
  const capped = killed || memlim;
  const why = killed ? 'time cap' : memlim ? `memory cap (${o.memlimMiB} MiB)` : shallow ? 'depth too small' : null;
  const assertion = /(assertion violated [^\n]*?)(?: \(at depth \d+\))?\n/.exec(out)?.[1] ?? null;
  return {
    complete: errors !== null && !capped && !shallow,
    capped,
    why,
    errors,
    assertion,
    // pan's last progress line ("States= 1e+06") when it was stopped before its report.
    states: num(/(\d+) states, stored/, out) ?? lastProgress(out),
    transitions: num(/(\d+) transitions/, out),
    depth: num(/depth reached (\d+)/, out),
    spinMs: a.ms,
    gccMs: g.ms,
    panMs: p.ms,
    panCpuMs,
    panRssMiB,
    panElapsedS: num(/pan: elapsed time ([\d.e+-]+) seconds/, out),
  };
}
