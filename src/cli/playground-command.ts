/**
 * `dmabuf-check playground [--port N]` on the command line; the server
 * (playground.ts) is loaded only when the command runs.
 */
import { type Command, InvalidArgumentError } from 'commander';

export const DEFAULT_PORT = 5173;

function portArg(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n > 65535) throw new InvalidArgumentError(`--port must be 0..65535, got "${v}"`);
  return n;
}

/** Registers `playground` on the command line. The command returns once the server listens. */
export function registerPlayground(program: Command, setExit: (code: number) => void): void {
  program
    .command('playground')
    .description(
      'serve the browser playground on http://127.0.0.1 (loopback only): edit and check scenarios in the browser',
    )
    .option('--port <n>', `port (default ${DEFAULT_PORT}, or the next free one; 0: any free port)`, portArg)
    .action(async (o: { port?: number }) => {
      const { ensurePlaygroundBuilt, PLAYGROUND_DIR, startPlaygroundServer } = await import('./playground.ts');
      ensurePlaygroundBuilt();
      const s = await startPlaygroundServer(o.port !== undefined ? { port: o.port } : {});
      process.stdout.write(`dmabuf-check playground: ${s.url}  (serving ${PLAYGROUND_DIR}; Ctrl-C to stop)\n`);
      setExit(0);
    });
}
