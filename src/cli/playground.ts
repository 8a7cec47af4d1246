/**
 * `dmabuf-check playground [--port N]`: serves the built playground
 * (dist/web/playground/, a static folder) on 127.0.0.1 only.
 *
 * Loopback only, never 0.0.0.0; GET and HEAD of files under the folder only;
 * `..`, encoded separators, NUL bytes and symlinks out of the folder are
 * refused; a Host header naming anything but the loopback is refused (DNS
 * rebinding). The default port is 5173, or the next free one.
 */
import { spawnSync } from 'node:child_process';
import { createReadStream, existsSync, realpathSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from './files.ts';
import { DEFAULT_PORT } from './playground-command.ts';

export { DEFAULT_PORT };

/** The only address the playground binds. */
export const LOOPBACK = '127.0.0.1';
/** How many ports after the default to try when it is taken. */
const PORT_TRIES = 20;

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const PLAYGROUND_DIR = path.join(ROOT, 'dist', 'web', 'playground');

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
  '.yaml': 'text/yaml; charset=utf-8',
  '.wasm': 'application/wasm',
};

export interface PlaygroundServer {
  readonly server: Server;
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

export interface ServeOptions {
  /** The folder to serve (default: dist/web/playground). */
  readonly root?: string;
  /** 0: any free port. Default {@link DEFAULT_PORT}. */
  readonly port?: number;
  /** When the port is taken, try the next ones (default: only for the default port). */
  readonly nextFree?: boolean;
}

function send(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'x-content-type-options': 'nosniff',
  });
  res.end(text);
}

const LOOPBACK_HOST = /^(127\.0\.0\.1|localhost|\[::1\])(:\d+)?$/i;

/**
 * The file a request path names under `root`, or null when the path is not
 * acceptable: not absolute, undecodable, with a NUL, a backslash, an encoded
 * separator, or a `.`/`..` segment.
 */
export function resolveRequestPath(root: string, urlPath: string): string | null {
  const raw = urlPath.split(/[?#]/, 1)[0] ?? '';
  if (!raw.startsWith('/')) return null;
  if (/%2f|%5c|%00/i.test(raw)) return null;
  let decoded: string;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    return null;
  }
  if (decoded.includes('\0') || decoded.includes('\\')) return null;
  const segments = decoded.split('/').slice(1);
  if (segments.some((s) => s === '..' || s === '.')) return null;
  const file = path.resolve(root, ...segments.filter((s) => s !== ''));
  const rel = path.relative(root, file);
  if (rel.startsWith('..') || path.isAbsolute(rel)) return null;
  return decoded.endsWith('/') ? path.join(file, 'index.html') : file;
}

type Route = { readonly status: number; readonly text: string } | { readonly file: string; readonly size: number };

/** What to answer to a request: an error, or the file to send. */
function route(req: IncomingMessage, realRoot: string): Route {
  if (!LOOPBACK_HOST.test(req.headers.host ?? '')) return { status: 403, text: 'forbidden: not a loopback host\n' };
  if (req.method !== 'GET' && req.method !== 'HEAD') return { status: 405, text: 'method not allowed\n' };
  let file = resolveRequestPath(realRoot, req.url ?? '');
  if (!file) return { status: 400, text: 'bad path\n' };
  try {
    if (statSync(file).isDirectory()) file = path.join(file, 'index.html');
    // No symlink may lead out of the folder.
    const real = realpathSync(file);
    const rel = path.relative(realRoot, real);
    if (rel.startsWith('..') || path.isAbsolute(rel)) return { status: 403, text: 'forbidden\n' };
    const st = statSync(real);
    return st.isFile() ? { file: real, size: st.size } : { status: 404, text: 'not found\n' };
  } catch {
    return { status: 404, text: 'not found\n' };
  }
}

function handler(root: string) {
  const realRoot = realpathSync(root);
  return (req: IncomingMessage, res: ServerResponse): void => {
    const r = route(req, realRoot);
    if ('status' in r) {
      if (r.status === 405) res.setHeader('allow', 'GET, HEAD');
      send(res, r.status, r.text);
      return;
    }
    res.writeHead(200, {
      'content-type': TYPES[path.extname(r.file).toLowerCase()] ?? 'application/octet-stream',
      'content-length': r.size,
      'cache-control': 'no-cache',
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    createReadStream(r.file)
      .on('error', () => res.destroy())
      .pipe(res);
  };
}

function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => {
      server.off('listening', onListening);
      reject(e);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen({ host: LOOPBACK, port, exclusive: true });
  });
}

/** Serves `root` on 127.0.0.1. Rejects with a {@link UsageError} when no port can be bound. */
export async function startPlaygroundServer(o: ServeOptions = {}): Promise<PlaygroundServer> {
  const root = path.resolve(o.root ?? PLAYGROUND_DIR);
  if (!existsSync(path.join(root, 'index.html'))) throw new UsageError(`${root}: no index.html to serve`);
  const first = o.port ?? DEFAULT_PORT;
  const tries = (o.nextFree ?? o.port === undefined) && first !== 0 ? PORT_TRIES : 1;
  const server = createServer(handler(root));
  let lastError: NodeJS.ErrnoException | null = null;
  for (let i = 0; i < tries && first + i <= 65535; i++) {
    try {
      const port = await listen(server, first + i);
      return {
        server,
        port,
        url: `http://${LOOPBACK}:${port}/`,
        close: () =>
          new Promise<void>((resolve) => {
            server.closeAllConnections();
            server.close(() => resolve());
          }),
      };
    } catch (e) {
      lastError = e as NodeJS.ErrnoException;
      if (lastError.code !== 'EADDRINUSE') break;
    }
  }
  const which = tries > 1 ? `ports ${first}–${first + tries - 1} are` : `port ${first} is`;
  throw new UsageError(
    lastError?.code === 'EADDRINUSE'
      ? `${which} in use; choose another with --port N`
      : `cannot listen on ${LOOPBACK}:${first}: ${lastError?.message ?? 'unknown error'}`,
  );
}

/** Builds dist/web/playground when it is missing and this is a source checkout (Vite installed). */
export function ensurePlaygroundBuilt(log: (s: string) => void = (s) => process.stderr.write(s)): void {
  if (existsSync(path.join(PLAYGROUND_DIR, 'index.html'))) return;
  const how = `build it with \`npm run build:web\` in ${ROOT}`;
  if (!existsSync(path.join(ROOT, 'node_modules', 'vite'))) {
    throw new UsageError(`the playground is not built (${PLAYGROUND_DIR} is missing): ${how}`);
  }
  log('dmabuf-check: the playground is not built yet; running `npm run build:web`…\n');
  const r = spawnSync('npm', ['run', 'build:web'], { cwd: ROOT, stdio: ['ignore', 2, 2] });
  if (r.status !== 0 || !existsSync(path.join(PLAYGROUND_DIR, 'index.html'))) {
    throw new UsageError(`building the playground failed: ${how} and look at its errors`);
  }
}
