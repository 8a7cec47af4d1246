/**
 * Ctrl-C and SIGTERM during a check (issue 7 item 3): the first signal asks
 * the running search to stop — worker pools end at once, the in-process
 * search at its next work unit or 64th execution — and the command prints
 * what it has: the scenarios checked, the current one as far as it got
 * (verdict unknown, `stopped: interrupted`, unless a finding was already
 * reached). A second signal exits at once (status 130).
 */
type Listener = () => void;

let reason: NodeJS.Signals | null = null;
const listeners = new Set<Listener>();

/** The signal that interrupted the run, or null. */
export function interrupted(): NodeJS.Signals | null {
  return reason;
}

/** Calls `fn` when the run is interrupted (at once if it already is); returns the unsubscribe. */
export function onInterrupt(fn: Listener): () => void {
  if (reason) {
    fn();
    return () => {};
  }
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function request(sig: NodeJS.Signals): void {
  if (reason) {
    process.stderr.write(`\ndmabuf-check: ${sig} again: exiting now\n`);
    process.exit(130);
  }
  reason = sig;
  process.stderr.write(`\ndmabuf-check: ${sig}: stopping; the report so far follows (${sig} again exits at once)\n`);
  for (const fn of [...listeners]) fn();
  listeners.clear();
}

/** Installs the SIGINT and SIGTERM handlers for a check; returns their removal. */
export function handleSignals(): () => void {
  const onInt = () => request('SIGINT');
  const onTerm = () => request('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  return () => {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
  };
}
