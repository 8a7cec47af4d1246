/**
 * The trace viewer in headless Chromium, opened from file:// with no network:
 * an HTML report made by the command line for a catalogue bug (lanes, the
 * highlighted finding step scrolled into view, keyboard stepping, the state
 * panel with the stale SPTE at the use-after-free, arrows, search), and a
 * scenario whose names are markup (shown as text, nothing runs). Screenshots
 * go to ARTIFACTS.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VIEWER_PAGE } from '../../src/cli/outputs.ts';
import { embedTrace } from '../../src/report/html-embed.ts';
import type { Trace } from '../../src/trace/trace.ts';
import { runCli } from '../helpers.ts';
import { ARG_VALUE, LOCK_NAME, STEP_NAME } from '../report/fixtures/markup-driver.ts';
import { ARTIFACTS, HAVE_CHROMIUM, launch } from './chromium.ts';

const BUG = 'scenarios/kvm-unlocked-no-retry-vs-ttm-move.yaml';
const FENCES = 'scenarios/vfio-revoke-importer-never-unmaps.yaml';
const MARKUP = 'test/report/fixtures/markup-names.yaml';

const step = (n: number) => `[data-testid="step"][data-step="${n}"]`;
const SELECTED = '[data-testid="step"][data-selected="true"]';

describe.skipIf(!HAVE_CHROMIUM)('trace viewer (Chromium, file://)', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'dmabuf-viewer-'));
  let browser: Browser;
  /** Requests the pages made to anything but file: and data: URLs. */
  const network: string[] = [];

  function report(scenario: string, name: string): { html: string; trace: Trace } {
    const html = path.join(tmp, `${name}.html`);
    const json = path.join(tmp, `${name}.json`);
    const r = runCli(['check', scenario, '--html', html, '--trace', json]);
    if (r.code !== 0) throw new Error(`dmabuf-check ${scenario} exited ${r.code}: ${r.stderr}`);
    return { html, trace: JSON.parse(readFileSync(json, 'utf8')) as Trace };
  }

  async function open(html: string, dialogs: string[] = []): Promise<Page> {
    const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
    page.on('request', (r) => {
      if (!/^(file|data|blob):/.test(r.url())) network.push(r.url());
    });
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    await page.goto(pathToFileURL(html).href);
    await page.getByTestId('viewer').waitFor();
    return page;
  }

  async function selectedStep(page: Page): Promise<number> {
    return Number(await page.locator(SELECTED).getAttribute('data-step'));
  }

  beforeAll(async () => {
    if (!existsSync(VIEWER_PAGE)) throw new Error(`${VIEWER_PAGE} is missing: run npm run build:web first`);
    browser = await launch();
  });
  afterAll(async () => {
    await browser?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  describe('a catalogue bug: kvm-unlocked-no-retry-vs-ttm-move', () => {
    let page: Page;
    let trace: Trace;
    beforeAll(async () => {
      const r = report(BUG, 'bug');
      trace = r.trace;
      page = await open(r.html);
    });

    it('one lane per thread, one row per step', async () => {
      const lanes = await page.getByTestId('lane').evaluateAll((els) => els.map((e) => e.getAttribute('data-thread')));
      expect(lanes).toEqual(['setup', 'vcpu0', 'evictor', 'teardown']);
      expect(lanes).toEqual(trace.threads);
      expect(await page.getByTestId('step').count()).toBe(trace.steps.length);
      expect(await page.locator(step(31)).getAttribute('data-thread')).toBe('vcpu0');
      expect(await page.locator(`${step(31)} .dv-fn`).textContent()).toBe('vcpu_enter_guest');
    });

    it('the finding steps are highlighted; the first is selected and scrolled into view', async () => {
      const found = await page
        .locator('[data-testid="step"][data-finding="true"]')
        .evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-step'))));
      expect(found).toEqual([28, 31]);
      expect(await selectedStep(page)).toBe(28);
      // The row lies inside the scrolled diagram's visible part (below its sticky lane header).
      const d = await page.getByTestId('diagram').boundingBox();
      const head = await page.locator('.dv-lanes-head').boundingBox();
      const b = await page.locator(`${step(28)} .dv-box`).boundingBox();
      if (!d || !head || !b) throw new Error('no layout');
      const seen = {
        scrolled: Number(await page.evaluate(`document.querySelector('[data-testid="diagram"]').scrollTop`)),
        inside:
          b.y >= head.y + head.height &&
          b.y + b.height <= d.y + d.height &&
          b.x >= d.x &&
          b.x + b.width <= d.x + d.width,
      };
      expect(seen.scrolled).toBeGreaterThan(0);
      expect(seen.inside).toBe(true);
      const report = page.locator('[data-testid="finding-report"][data-code="use-after-free"]');
      expect(await report.textContent()).toContain('BUG: KASAN: use-after-free in vcpu_enter_guest');
      await page.screenshot({ path: path.join(ARTIFACTS, 'viewer-loaded.png') });
    });

    it('arrows: a lock handed over from evictor to vcpu0', async () => {
      const arrow = page.locator('[data-testid="arrow"][data-kind="lock-handover"][data-from="16"][data-to="27"]');
      expect(await arrow.count()).toBe(1);
    });

    it('← and → move the selection, Home and End jump', async () => {
      await page.locator('body').focus();
      await page.keyboard.press('ArrowRight');
      await page.locator(`${step(29)}[data-selected="true"]`).waitFor();
      expect(await page.getByTestId('selected-step').getAttribute('data-step')).toBe('29');
      await page.keyboard.press('ArrowLeft');
      await page.keyboard.press('ArrowLeft');
      await page.locator(`${step(27)}[data-selected="true"]`).waitFor();
      expect(await page.locator(SELECTED).count()).toBe(1);
      await page.keyboard.press('End');
      await page.locator(`${step(trace.steps.length)}[data-selected="true"]`).waitFor();
      await page.keyboard.press('Home');
      await page.locator(`${step(1)}[data-selected="true"]`).waitFor();
      await page.keyboard.press('ArrowLeft');
      expect(await selectedStep(page)).toBe(1);
    });

    it('clicking the use-after-free step shows the machine after it: the stale SPTE', async () => {
      await page.locator(step(31)).click();
      await page.locator(`[data-testid="state-panel"][data-step="31"]`).waitFor();
      const buffers = await page.getByTestId('state-buffers').textContent();
      expect(buffers).toContain('bo');
      expect(buffers).toContain('0x100000 gen 0'); // moved to system memory
      const frame = page.locator('[data-testid="frame"][data-pfn="0x800000"]');
      expect(await frame.getAttribute('data-state')).toBe('free');
      expect(await frame.textContent()).toMatch(/0x800000\s*vram\s*free\s*1/);
      const stale = page.locator('[data-testid="translation"][data-stale="true"]');
      expect(await stale.count()).toBe(1);
      expect(await stale.textContent()).toMatch(/SPTE\s*kvm\s*bo page 0\s*0x800000\s*0/);
      expect(await stale.textContent()).toContain('STALE');
      expect(await page.getByTestId('state-locks').textContent()).toContain('kvm->mmu_lock');
      expect(await page.getByTestId('state-fences').textContent()).toContain('bo:ttm-move#1');
      expect(await page.getByTestId('state-resv').textContent()).toContain('KERNEL');
      expect(await page.getByTestId('state-threads').textContent()).toContain('vcpu0');
      // The same SPTE was not stale before the move freed the frame.
      await page.locator(step(10)).click();
      await page.locator(`[data-testid="state-panel"][data-step="10"]`).waitFor();
      expect(await page.locator('[data-testid="translation"]').count()).toBe(0);
      await page.locator(step(31)).click();
      await page.locator(`[data-testid="state-panel"][data-step="31"]`).waitFor();
      await page.screenshot({ path: path.join(ARTIFACTS, 'viewer-uaf-step.png') });
    });

    it('the search box highlights kernel functions by name and jumps to the next match', async () => {
      const want = trace.steps.filter((s) => s.fn.includes('dma_resv')).map((s) => s.n);
      await page.getByTestId('search').fill('dma_resv');
      await page.locator('[data-testid="step"][data-match="true"]').first().waitFor();
      const matched = await page
        .locator('[data-testid="step"][data-match="true"]')
        .evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-step'))));
      expect(matched).toEqual(want);
      expect(await page.getByTestId('search-count').textContent()).toContain(`${want.length} matches`);
      // From step 31, Enter goes to the next match after it.
      await page.getByTestId('search').press('Enter');
      const next = want.find((n) => n > 31) as number;
      await page.locator(`${step(next)}[data-selected="true"]`).waitFor();
      await page.getByTestId('search-next').click();
      const after = want.find((n) => n > next) ?? (want[0] as number);
      await page.locator(`${step(after)}[data-selected="true"]`).waitFor();
      await page.screenshot({ path: path.join(ARTIFACTS, 'viewer-search.png') });
      await page.getByTestId('search').fill('');
      expect(await page.locator('[data-testid="step"][data-match="true"]').count()).toBe(0);
    });
  });

  it('a fence signalled by one thread and waited for by another: an arrow', async () => {
    const { html, trace } = report(FENCES, 'fences');
    const page = await open(html);
    const arrow = page.locator('[data-testid="arrow"][data-kind="signal-wait"]');
    expect(await arrow.count()).toBe(1);
    const n = Number(await arrow.getAttribute('data-from'));
    const from = trace.steps.find((s) => s.n === n);
    expect(from).toMatchObject({ kind: 'signal', thread: 'dev', object: 'nic:job#1' });
    await page.close();
  });

  it('names made of markup are shown as text and nothing runs', async () => {
    const { html } = report(MARKUP, 'markup');
    const dialogs: string[] = [];
    const page = await open(html, dialogs);
    const state = await page.evaluate(`({
      pwned: window.__pwned ?? null,
      scripts: document.scripts.length,
      injected: document.querySelectorAll('img, iframe, svg[onload], b').length,
    })`);
    expect(state).toEqual({ pwned: null, scripts: 2, injected: 0 });
    expect(await page.getByTestId('state-locks').textContent()).toContain(LOCK_NAME);
    expect(await page.locator(`[data-testid="step"][data-fn="${STEP_NAME.replace(/"/g, '\\"')}"]`).count()).toBe(1);
    expect(await page.getByTestId('finding-panel').textContent()).toContain(LOCK_NAME);
    // The op with the markup argument, in the selected step's header after stepping to it.
    await page.locator(step(2)).click();
    expect(await page.getByTestId('selected-step').textContent()).toContain(ARG_VALUE);
    await page.keyboard.press('ArrowRight');
    await page.locator(`${step(3)}[data-selected="true"]`).waitFor();
    expect(await page.getByTestId('selected-step').textContent()).toContain(STEP_NAME);
    await page.screenshot({ path: path.join(ARTIFACTS, 'viewer-markup-names.png') });
    expect(dialogs).toEqual([]);
    expect(await page.evaluate('window.__pwned ?? null')).toBeNull();
    await page.close();
  });

  it('a trace it cannot show (a newer version, a field of another type): the reason, with where', async () => {
    const { trace } = report(FENCES, 'fences-v');
    const page0 = readFileSync(VIEWER_PAGE, 'utf8');
    const cases: [string, unknown, RegExp][] = [
      ['newer', { ...trace, version: 3 }, /trace format version 3 is newer than this dmabuf-check reads \(1 to 2\)/],
      [
        'wrong-type',
        { ...trace, steps: [{ ...trace.steps[0], kind: 7 }] },
        /steps\[0\]\.kind: expected one of read, write/,
      ],
    ];
    for (const [name, t, message] of cases) {
      const html = path.join(tmp, `${name}.html`);
      writeFileSync(html, embedTrace(page0, t as Trace));
      const page = await browser.newPage();
      await page.goto(pathToFileURL(html).href);
      const text = (await page.locator('#app').textContent()) ?? '';
      expect(text).toMatch(/^This page's trace cannot be shown: the embedded trace:1:\d+: /);
      expect(text).toMatch(message);
      expect(await page.getByTestId('viewer').count()).toBe(0);
      await page.close();
    }
  });

  it('made no network request', () => {
    expect(network).toEqual([]);
  });
});
