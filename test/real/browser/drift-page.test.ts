/**
 * The drift page in a real browser: `sysprime drift --format html` on a real
 * Btrfs scratch pool, opened from disk in Debian's headless Chromium (driven
 * by playwright-core), on a phone and on a wide screen. The known change is
 * shown with its diff, the filters work, the side-by-side view works, the
 * page fetches nothing, and nothing is wider than the screen. Screenshots go
 * to test-artifacts/ for a person to look at.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { makeScratch, type Scratch } from '../../fixtures/scratch.js';
import { sysprime } from '../../fixtures/cli.js';

const ARTIFACTS = fileURLToPath(new URL('../../../../test-artifacts/', import.meta.url));
const CHROMIUM = '/usr/bin/chromium';
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const VIEWPORTS = [
  { name: 'phone', width: 390, height: 844 },
  { name: 'wide', width: 1440, height: 900 },
] as const;

describe('the drift page in Chromium', () => {
  let s: Scratch;
  let work: string;
  let page: string;
  let profile: string;
  let context: BrowserContext;
  const fetched: string[] = [];

  before(async () => {
    s = await makeScratch('btrfs');
    work = mkdtempSync(join(tmpdir(), 'sysprime-browser-'));
    profile = mkdtempSync(join(tmpdir(), 'sysprime-chromium-'));
    const sp = (...args: string[]) => sysprime(args, { config: s.config });
    assert.equal((await sp('init', '--adopt', s.adopt, '--name', 'base')).code, 0);
    const mnt = join(work, 'mnt');
    mkdirSync(mnt);
    const m = await sp('mount', 'base', mnt);
    assert.equal(m.code, 0, m.stderr);
    try {
      // The known change, plus enough of everything for a real-looking page.
      writeFileSync(join(mnt, 'etc/demo.conf'), '# demo service\nlisten = 0.0.0.0\n\n# network\nport = 8080\n\n# capacity\nworkers = 4\n');
      writeFileSync(join(mnt, 'etc/motd'), 'welcome\n');
      unlinkSync(join(mnt, 'etc/default/demo'));
      chmodSync(join(mnt, 'etc/shadow'), 0o600);
      mkdirSync(join(mnt, 'usr/local/lib/a-rather-long-directory-name/with-more-nesting'), { recursive: true });
      writeFileSync(
        join(mnt, 'usr/local/lib/a-rather-long-directory-name/with-more-nesting/configuration-file-with-a-long-name.conf'),
        `option = ${'x'.repeat(300)}\n`,
      );
      writeFileSync(join(mnt, 'root/.bashrc'), 'alias ll="ls -l"\n');
      mkdirSync(join(mnt, 'opt/tool'), { recursive: true });
      writeFileSync(join(mnt, 'opt/tool/run'), '#!/bin/sh\nexec true\n');
    } finally {
      assert.equal((await sp('umount', 'base')).code, 0);
    }
    page = join(work, 'drift.html');
    const r = await sp('drift', '--format', 'html', '-o', page);
    assert.equal(r.code, 1, `drift should find the changes: ${r.stderr}`);
    mkdirSync(ARTIFACTS, { recursive: true });
    context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: FLAGS });
    context.on('request', (req) => {
      if (!req.url().startsWith('file:')) fetched.push(req.url());
    });
  });

  after(async () => {
    try {
      await context?.close();
    } finally {
      await s?.cleanup();
      rmSync(work, { recursive: true, force: true });
      rmSync(profile, { recursive: true, force: true });
    }
  });

  async function open(width: number, height: number): Promise<Page> {
    const p = await context.newPage();
    await p.setViewportSize({ width, height });
    const errors: string[] = [];
    p.on('pageerror', (e) => errors.push(e.message));
    await p.goto(pathToFileURL(page).href);
    await p.waitForFunction(() => document.getElementById('count')?.textContent !== '');
    assert.deepEqual(errors, [], 'the page script threw');
    return p;
  }

  const visiblePaths = (p: Page) =>
    p.$$eval('.item', (items) => items.filter((i) => (i as HTMLElement).offsetParent !== null).map((i) => i.querySelector('summary code')!.textContent));

  for (const vp of VIEWPORTS) {
    describe(`${vp.name} (${vp.width}x${vp.height})`, () => {
      let p: Page;
      before(async () => {
        p = await open(vp.width, vp.height);
      });
      after(async () => p?.close());

      test('shows the known diff of /etc/demo.conf', async () => {
        const item = p.locator('.item[data-path="/etc/demo.conf"]');
        await item.locator('summary').click();
        const diff = item.locator('pre.diff');
        await diff.waitFor({ state: 'visible' });
        assert.equal(await diff.locator('.l.r', { hasText: 'listen = 127.0.0.1' }).count(), 1);
        assert.equal(await diff.locator('.l.a', { hasText: 'listen = 0.0.0.0' }).count(), 1);
        assert.equal(await diff.locator('.l.a', { hasText: 'workers = 4' }).count(), 1);
        assert.equal(await p.textContent('#n-added'), '8');
        await p.screenshot({ path: join(ARTIFACTS, `drift-${vp.name}.png`), fullPage: true });
        await item.screenshot({ path: join(ARTIFACTS, `drift-${vp.name}-diff.png`) });
      });

      test('nothing is wider than the screen', async () => {
        const overflow = await p.evaluate(() => {
          const width = document.documentElement.clientWidth;
          const wide = [...document.querySelectorAll('body *')]
            .filter((e) => !e.closest('pre.diff, .sbs') && (e as HTMLElement).offsetParent !== null && e.getBoundingClientRect().right > width + 1)
            .map((e) => `${e.tagName.toLowerCase()}.${e.className}`);
          return { page: document.documentElement.scrollWidth - width, wide };
        });
        assert.equal(overflow.page, 0, `the page scrolls sideways by ${overflow.page}px`);
        assert.deepEqual(overflow.wide, []);
      });

      test('the path filter, the kind boxes and the area menu filter the list', async () => {
        const all = await visiblePaths(p);
        assert.equal(all.length, await p.locator('.item').count());
        await p.fill('#q', 'motd');
        assert.deepEqual(await visiblePaths(p), ['/etc/motd']);
        assert.match((await p.textContent('#count'))!, new RegExp(`^1 of ${all.length} shown$`));
        await p.fill('#q', '');
        await p.uncheck('input[data-kind="added"]');
        const noAdded = await visiblePaths(p);
        assert.ok(noAdded.includes('/etc/demo.conf') && noAdded.includes('/etc/default/demo'));
        assert.ok(!noAdded.includes('/etc/motd'));
        await p.check('input[data-kind="added"]');
        await p.selectOption('#area', '/opt');
        assert.deepEqual(await visiblePaths(p), ['/opt/tool', '/opt/tool/run']);
        await p.selectOption('#area', '');
        assert.equal((await visiblePaths(p)).length, all.length);
        await p.fill('#q', 'demo');
        await p.screenshot({ path: join(ARTIFACTS, `drift-${vp.name}-filtered.png`), fullPage: true });
        await p.fill('#q', '');
      });

      test('side by side shows the old and the new line next to each other', async () => {
        await p.check('#sbs');
        const item = p.locator('.item[data-path="/etc/demo.conf"]');
        const grid = item.locator('.sbs');
        await grid.waitFor({ state: 'visible' });
        assert.equal(await item.locator('pre.diff').isVisible(), false);
        const old = grid.locator('span.r', { hasText: 'listen = 127.0.0.1' });
        const now = grid.locator('span.a', { hasText: 'listen = 0.0.0.0' });
        const a = (await old.boundingBox())!;
        const b = (await now.boundingBox())!;
        assert.ok(Math.abs(a.y - b.y) < 2 && b.x > a.x, 'old and new line are on one row, old on the left');
        await item.screenshot({ path: join(ARTIFACTS, `drift-${vp.name}-side-by-side.png`) });
        await p.uncheck('#sbs');
        await item.locator('pre.diff').waitFor({ state: 'visible' });
      });
    });
  }

  test('the page fetched nothing from the network', () => {
    assert.deepEqual(fetched, []);
  });
});
