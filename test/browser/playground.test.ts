/**
 * The playground in headless Chromium: catalogue scenarios checked in the
 * worker (safe, bug with its trace), validation at the right line:col,
 * scenario strings shown as text, Stop, and the built folder opened from
 * file://. Screenshots go to ARTIFACTS.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  ensurePlaygroundBuilt,
  PLAYGROUND_DIR,
  type PlaygroundServer,
  startPlaygroundServer,
} from '../../src/cli/playground.ts';
import { ARTIFACTS, HAVE_CHROMIUM, launch } from './chromium.ts';

/** Many threads taking and dropping references: dfs runs for minutes. */
const LONG_YAML = `name: long-run
description: many threads taking and dropping references; exhaustive search takes minutes
buffers:
  bo: { exporter: system-heap }
threads:
${[1, 2, 3, 4, 5, 6].map((i) => `  t${i}: [bo.get, bo.put, bo.get, bo.put]`).join('\n')}
explore: { max_executions: 1000000000 }
`;

/** An unknown exporter on line 4, column 16. */
const BAD_YAML = `name: typo
buffers:
  bo:
    exporter: ttn
threads:
  t: [bo.move]
`;

const XSS = '<script>window.__xss = 1</script>';
const XSS_IMG = '<img src=x onerror="window.__xss = 2">';
/** Invalid names holding markup (reported in messages) and a valid scenario's description holding it. */
const XSS_BAD_YAML = `name: x
buffers:
  '${XSS_IMG}': { exporter: ttm }
threads:
  '${XSS}': [bo.move]
`;
const XSS_GOOD_YAML = `name: markup-in-description
description: '${XSS} ${XSS_IMG}'
buffers:
  bo: { exporter: ttm }
threads:
  t: [bo.move]
`;

describe.skipIf(!HAVE_CHROMIUM)('playground (Chromium)', () => {
  let browser: Browser;
  let server: PlaygroundServer;
  let page: Page;
  const errors: string[] = [];

  beforeAll(async () => {
    ensurePlaygroundBuilt(() => {});
    server = await startPlaygroundServer({ port: 0 });
    browser = await launch();
    page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(server.url);
    await page.getByTestId('catalogue').waitFor();
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  /** Waits for the (debounced) validation of the editor's text; returns whether it is valid. */
  async function validated(): Promise<boolean> {
    await expect.poll(() => page.getByTestId('validation').getAttribute('data-pending')).toBe('false');
    return (await page.getByTestId('validation').getAttribute('data-valid')) === 'true';
  }

  async function pick(id: string): Promise<void> {
    await page.getByTestId('catalogue').selectOption(id);
    expect(await validated()).toBe(true);
  }

  async function paste(yaml: string): Promise<boolean> {
    await page.getByTestId('catalogue').selectOption('');
    await page.getByTestId('editor').fill(yaml);
    return validated();
  }

  async function checkAndWait(): Promise<string> {
    await page.getByTestId('check').click();
    const v = page.getByTestId('verdict');
    await v.waitFor({ timeout: 20_000 });
    return (await v.textContent()) ?? '';
  }

  test('a safe catalogue scenario is safe', async () => {
    await pick('kvm-unlocked-retry-vs-ttm-move');
    expect(await page.getByTestId('file').textContent()).toBe('scenarios/kvm-unlocked-retry-vs-ttm-move.yaml');
    expect(await checkAndWait()).toBe('safe');
    expect(await page.getByTestId('met').textContent()).toBe('met');
    expect(await page.getByTestId('stats').textContent()).toMatch(/\d+ executions?, \d+ steps? \(dfs, complete\)/);
    expect(await page.getByTestId('pg-finding').count()).toBe(0);
    expect(await page.getByTestId('trace').count()).toBe(0);
    await page.screenshot({ path: path.join(ARTIFACTS, 'playground-safe.png'), fullPage: true });
  });

  test('a buggy catalogue scenario is a bug, with its report and trace', async () => {
    await pick('kvm-unlocked-no-retry-vs-ttm-move');
    expect(await checkAndWait()).toBe('bug');
    expect(await page.getByTestId('met').textContent()).toBe('met');
    const report = (await page.locator('[data-testid="pg-finding"][data-code="use-after-free"]').textContent()) ?? '';
    expect(report).toContain('BUG: KASAN: use-after-free');
    expect(report).toContain('dmabuf-check replay scenarios/kvm-unlocked-no-retry-vs-ttm-move.yaml --token dc1.');
    expect(await page.getByTestId('counterexample').textContent()).toMatch(/context switch/);
    const header = (await page.getByTestId('trace-header').textContent()) ?? '';
    expect(header).toMatch(/^\d+ steps, replay token dc1\.\S+; findings: .*use-after-free at step \d+ \(vcpu0\)/);
    const viewer = page.getByTestId('trace-viewer');
    await viewer.waitFor();
    // The viewer (web/components/Viewer.tsx): a lane per thread, and the finding.
    const lanes = (await viewer.getByTestId('lane').allTextContents()).join(' ');
    expect(lanes).toContain('vcpu0');
    expect(lanes).toContain('evictor');
    expect(await viewer.textContent()).toContain('BUG: KASAN: use-after-free');
    await page.screenshot({ path: path.join(ARTIFACTS, 'playground-bug.png'), fullPage: true });
  });

  test('a YAML error is shown at its line:col and marked on that line', async () => {
    expect(await paste(BAD_YAML)).toBe(false);
    const issue = page.getByTestId('issue').first();
    expect(await issue.getByTestId('issue-loc').textContent()).toBe('4:15');
    expect(await issue.getByTestId('issue-message').textContent()).toMatch(/unknown exporter "ttn".*ttm/);
    expect(await page.getByTestId('gutter-error').getAttribute('data-line')).toBe('4');
    expect(await page.getByTestId('line-mark').getAttribute('data-line')).toBe('4');
    expect(await page.getByTestId('check').isDisabled()).toBe(true);
    await page.screenshot({ path: path.join(ARTIFACTS, 'playground-error.png'), fullPage: true });
    // Fixing the line clears the messages.
    await page.getByTestId('editor').fill(BAD_YAML.replace('ttn', 'ttm'));
    expect(await validated()).toBe(true);
    expect(await page.getByTestId('issue').count()).toBe(0);
  });

  test('a scenario naming a driver module is refused', async () => {
    expect(await paste(BAD_YAML.replace('ttn', './my-exporter.ts'))).toBe(false);
    const issue = page.getByTestId('issue').first();
    expect(await issue.getByTestId('issue-loc').textContent()).toBe('4:15');
    expect(await issue.getByTestId('issue-message').textContent()).toContain('modules cannot be loaded in the browser');
    expect(await page.getByTestId('check').isDisabled()).toBe(true);
  });

  test('markup in a scenario is shown as text and never runs', async () => {
    expect(await paste(XSS_BAD_YAML)).toBe(false);
    const messages = (await page.getByTestId('issue-message').allTextContents()).join('\n');
    expect(messages).toContain(XSS_IMG);
    expect(messages).toContain(XSS);
    expect(await paste(XSS_GOOD_YAML)).toBe(true);
    expect(await page.getByTestId('scenario-description').textContent()).toBe(`${XSS} ${XSS_IMG}`);
    expect(await checkAndWait()).toBe('safe');
    expect(await page.evaluate('window.__xss')).toBeUndefined();
    expect(await page.locator('.playground script, .playground img').count()).toBe(0);
    await page.screenshot({ path: path.join(ARTIFACTS, 'playground-markup.png'), fullPage: true });
  });

  test('javascript: URLs in a scenario stay text: no link, no navigation (issue 7 item 6)', async () => {
    const js = 'javascript:window.__xss=3';
    const description = `${js} <a href="${js}">x</a> [y](${js})`;
    expect(await paste(XSS_GOOD_YAML.replace(/^description: .*$/m, `description: '${description}'`))).toBe(true);
    expect(await page.getByTestId('scenario-description').textContent()).toBe(description);
    const url = page.url();
    await page.getByTestId('scenario-description').click();
    expect(await checkAndWait()).toBe('safe');
    const links = await page.evaluate(
      `[...document.querySelectorAll('[href], [src], [action]')].filter((e) => /javascript:/i.test(e.outerHTML)).length`,
    );
    expect(links).toBe(0);
    expect(page.url()).toBe(url);
    expect(await page.evaluate('window.__xss')).toBeUndefined();
  });

  test('Stop ends a long run with verdict unknown, never safe', async () => {
    expect(await paste(LONG_YAML)).toBe(true);
    await page.getByTestId('check').click();
    await page.getByTestId('progress').waitFor();
    await expect
      .poll(
        async () => Number(((await page.getByTestId('progress-executions').textContent()) ?? '0').replace(/,/g, '')),
        {
          timeout: 15_000,
        },
      )
      .toBeGreaterThan(0);
    await page.screenshot({ path: path.join(ARTIFACTS, 'playground-progress.png'), fullPage: true });
    await page.getByTestId('stop').click();
    expect(await page.getByTestId('verdict').textContent()).toBe('unknown (stopped)');
    expect(await page.getByTestId('progress').count()).toBe(0);
    expect(await page.getByTestId('check').isEnabled()).toBe(true);
  });

  test('no uncaught page errors', () => {
    expect(errors).toEqual([]);
  });
});

describe.skipIf(!HAVE_CHROMIUM)('playground from file:// (Chromium)', () => {
  test('the built folder works without a server', async () => {
    ensurePlaygroundBuilt(() => {});
    const index = path.join(PLAYGROUND_DIR, 'index.html');
    expect(existsSync(index)).toBe(true);
    const browser = await launch();
    try {
      const page = await browser.newPage();
      await page.goto(pathToFileURL(index).href);
      await page.getByTestId('catalogue').selectOption('kvm-unlocked-no-retry-vs-ttm-move');
      await page.getByTestId('check').click();
      await page.getByTestId('verdict').waitFor({ timeout: 20_000 });
      expect(await page.getByTestId('verdict').textContent()).toBe('bug');
      await page.getByTestId('trace-viewer').waitFor();
    } finally {
      await browser.close();
    }
  });
});
