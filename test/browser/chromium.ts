/**
 * Headless Debian Chromium for the browser tests (playwright-core, no browser
 * download). Without /usr/bin/chromium the browser tests are skipped, except
 * in CI (`CI` set), where `.ci/run` installs it and a missing browser fails.
 */
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { type Browser, chromium } from 'playwright-core';
import { ROOT } from '../helpers.ts';

export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const HAVE_CHROMIUM = existsSync(CHROMIUM) || Boolean(process.env.CI);
/** Screenshots land here (ignored by git). */
export const ARTIFACTS = path.join(ROOT, 'test-artifacts');

export async function launch(): Promise<Browser> {
  mkdirSync(ARTIFACTS, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  });
}
