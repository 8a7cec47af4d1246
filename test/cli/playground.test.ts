/**
 * The playground's static server (src/cli/playground.ts): loopback only,
 * files under its folder only, no traversal, no other hosts or methods; and
 * the `playground` command printing its URL.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageError } from '../../src/cli/files.ts';
import { LOOPBACK, type PlaygroundServer, startPlaygroundServer } from '../../src/cli/playground.ts';
import { ROOT } from '../helpers.ts';

const SECRET = 'top secret, outside the served folder';

interface Got {
  readonly status: number;
  readonly body: string;
  readonly type: string | undefined;
}

/** A request with the path sent exactly as given (no normalisation). */
function get(
  port: number,
  rawPath: string,
  o: { method?: string; host?: string; address?: string } = {},
): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: o.address ?? LOOPBACK,
        port,
        path: rawPath,
        method: o.method ?? 'GET',
        headers: { host: o.host ?? `127.0.0.1:${port}` },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, type: res.headers['content-type'] }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('playground server', () => {
  let dir: string;
  let s: PlaygroundServer;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'dmabuf-pg-'));
    const site = path.join(dir, 'site');
    mkdirSync(path.join(site, 'sub'), { recursive: true });
    writeFileSync(path.join(site, 'index.html'), '<!doctype html><p>playground</p>');
    writeFileSync(path.join(site, 'sub', 'a.json'), '{"a":1}');
    writeFileSync(path.join(dir, 'secret.txt'), SECRET);
    symlinkSync(path.join(dir, 'secret.txt'), path.join(site, 'link.txt'));
    s = await startPlaygroundServer({ root: site, port: 0 });
  });

  afterAll(async () => {
    await s?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('binds 127.0.0.1 only', async () => {
    const a = s.server.address() as net.AddressInfo;
    expect(a.address).toBe('127.0.0.1');
    expect(s.url).toBe(`http://127.0.0.1:${a.port}/`);
    // Not reachable through any other address of this machine, not even another loopback one.
    const others = Object.values(os.networkInterfaces())
      .flat()
      .filter((i): i is os.NetworkInterfaceInfo => !!i && !i.internal && i.family === 'IPv4')
      .map((i) => i.address);
    for (const address of [...(process.platform === 'linux' ? ['127.0.0.2'] : []), ...others]) {
      await expect(get(a.port, '/', { address })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    }
  });

  it('serves the folder', async () => {
    const r = await get(s.port, '/');
    expect(r.status).toBe(200);
    expect(r.type).toBe('text/html; charset=utf-8');
    expect(r.body).toContain('playground');
    expect((await get(s.port, '/index.html?x=1')).status).toBe(200);
    expect(await get(s.port, '/sub/a.json')).toMatchObject({ status: 200, body: '{"a":1}' });
    expect((await get(s.port, '/sub/')).status).toBe(404);
    expect((await get(s.port, '/nothing.js')).status).toBe(404);
    expect((await get(s.port, '/', { method: 'HEAD' })).status).toBe(200);
  });

  it.each([
    '/../secret.txt',
    '/sub/../../secret.txt',
    '/%2e%2e/secret.txt',
    '/%2E%2E/%2e%2e/secret.txt',
    '/..%2fsecret.txt',
    '/sub%2f..%2f..%2fsecret.txt',
    '/..%5csecret.txt',
    '/..\\secret.txt',
    '/%00/../secret.txt',
    '/./index.html',
    '/%',
    'http://127.0.0.1/../secret.txt',
  ])('refuses %s', async (p) => {
    const r = await get(s.port, p);
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect(r.body).not.toContain(SECRET);
  });

  it('refuses a symlink out of the folder', async () => {
    const r = await get(s.port, '/link.txt');
    expect(r.status).toBe(403);
    expect(r.body).not.toContain(SECRET);
  });

  it('refuses other methods and hosts that are not the loopback', async () => {
    expect((await get(s.port, '/', { method: 'POST' })).status).toBe(405);
    expect((await get(s.port, '/', { method: 'PUT' })).status).toBe(405);
    expect((await get(s.port, '/', { host: 'evil.example' })).status).toBe(403);
    expect((await get(s.port, '/', { host: `localhost:${s.port}` })).status).toBe(200);
  });

  it('takes the next free port, or says the port is taken', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, LOOPBACK, r));
    const taken = (blocker.address() as net.AddressInfo).port;
    try {
      const root = path.join(dir, 'site');
      const next = await startPlaygroundServer({ root, port: taken, nextFree: true });
      expect(next.port).toBeGreaterThan(taken);
      await next.close();
      await expect(startPlaygroundServer({ root, port: taken })).rejects.toThrow(UsageError);
      await expect(startPlaygroundServer({ root, port: taken })).rejects.toThrow(/in use; choose another with --port/);
    } finally {
      blocker.close();
    }
  });
});

describe('dmabuf-check playground', () => {
  it('serves the built playground on 127.0.0.1 and prints the URL', async () => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'dmabuf-check.js'), 'playground', '--port', '0'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.setEncoding('utf8').on('data', (c: string) => {
          out += c;
          const m = /http:\/\/127\.0\.0\.1:(\d+)\//.exec(out);
          if (m) resolve(m[0]);
        });
        child.on('exit', (code) => reject(new Error(`exited with ${code}: ${out}`)));
      });
      const port = Number(new URL(url).port);
      const r = await get(port, '/');
      expect(r.status).toBe(200);
      expect(r.body).toContain('dmabuf-check playground');
    } finally {
      child.kill();
    }
  });

  it('rejects a bad --port', async () => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'dmabuf-check.js'), 'playground', '--port', 'x'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      err += c;
    });
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    expect(code).toBe(2);
    expect(err).toContain('--port must be 0..65535');
  });
});
