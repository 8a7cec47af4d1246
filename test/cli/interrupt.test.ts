/**
 * Interrupted runs (issue 7 item 3): Ctrl-C or SIGTERM stops a long search
 * promptly (worker threads stopped at once; even one worker is a thread, so
 * the main thread hears the signal), and prints what it has: the scenario's
 * verdict `unknown` with `stopped: interrupted`, never `safe`; the scenarios
 * after it are counted as not checked; exit 1.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers.ts';

const BIN = path.join(ROOT, 'bin', 'dmabuf-check.js');
const LONG = path.join(ROOT, 'test', 'explorer', 'fixtures', 'long-search.yaml');
const SHORT = path.join(ROOT, 'scenarios', 'ww-abba-with-context.yaml');

interface Stopped {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Milliseconds from the signal to the exit. */
  readonly ms: number;
}

/** Runs the CLI, sends `signal` once the search is past its first phase, and waits for the exit. */
function interruptAfter(args: readonly string[], signal: NodeJS.Signals, afterMs: number): Promise<Stopped> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, NO_COLOR: '1' } });
    let stdout = '';
    let stderr = '';
    let sent = 0;
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => {
      sent = performance.now();
      child.kill(signal);
    }, afterMs);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: sent ? performance.now() - sent : -1 });
    });
  });
}

describe('Ctrl-C and SIGTERM', () => {
  it('SIGINT: the long search stops with verdict unknown (interrupted); the next scenario is not checked', async () => {
    const r = await interruptAfter([LONG, SHORT, '--workers', '1'], 'SIGINT', 3000);
    expect(r.ms).toBeGreaterThan(0);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('long-search');
    expect(r.stdout).toContain('unknown, expected safe');
    expect(r.stdout).toContain('stopped: interrupted');
    expect(r.stdout).not.toMatch(/long-search[^\n]*: safe/);
    expect(r.stdout).toContain('1 not checked (SIGINT)');
    expect(r.stderr).toContain('SIGINT: stopping');
    // Generous bound for a loaded machine; docs/benchmark.md has the measured figure.
    expect(r.ms).toBeLessThan(5000);
  }, 30_000);

  it('SIGTERM with --json: one JSON document, stopped "interrupted"', async () => {
    const r = await interruptAfter([LONG, '--workers', '2', '--json'], 'SIGTERM', 3000);
    expect(r.code).toBe(1);
    const j = JSON.parse(r.stdout);
    expect(j.results[0].verdict).toBe('unknown');
    expect(j.results[0].stats.stopped).toBe('interrupted');
    expect(j.results[0].stats.complete).toBe(false);
  }, 30_000);
});
