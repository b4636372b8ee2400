import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createStore, FaultStore } from '@ferry/stores';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCacheNode } from '../support/cache-cluster.js';
import { KiB, putBytes, runCli, waitFor, waitForConvergence } from '../support/regions.js';
import { useRegions } from '../support/scope.js';

/*
 * The replicator's status page in a real browser (Debian's chromium, driven by playwright-core):
 * a source, a mirror still copying (its copies throttled) and a mirror whose replicator is
 * stopped. Real Redis, file:// stores, in-process daemons; the page is served by the source's
 * control API. Screenshots of each state go to test/integration/__screenshots__ (not committed).
 */

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
const SHOTS = fileURLToPath(new URL('./__screenshots__/', import.meta.url));
const READ_TOKEN = 'status-page-read-token-0123456789';
const CACHE_TOKEN = 'status-page-cache-token-0123456789';

const scope = useRegions();

describe.skipIf(!hasChromium)(
  hasChromium
    ? 'the status page in a browser'
    : `the status page in a browser: SKIPPED, no Chromium at ${CHROMIUM} (apt-get install chromium)`,
  () => {
    let browser: Browser;
    beforeAll(async () => {
      browser = await chromium.launch({ executablePath: CHROMIUM });
      await mkdir(SHOTS, { recursive: true });
    });
    afterAll(async () => {
      await browser?.close();
    });

    async function shot(page: Page, name: string): Promise<void> {
      await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
    }

    /** The text of a region's card on the page. */
    const card = (page: Page, region: string) => page.locator(`article[data-region="${region}"]`);

    it('shows a stopped mirror holding gc back and lagging, a copying mirror reaching 100 %, a failing chunk and its reason; path search per region; cache nodes; 401 without the token', async () => {
      const r = await scope.regions({
        chunkSize: 64 * KiB,
        source: {
          // A short grace, not none: putBytes commits without the writer's `since`, so a pass with no
          // grace can take its chunks for orphans between upload and commit (seen: chunks missing at the source).
          gc: { every: '500ms', grace: '3s' },
          api: { listen: '127.0.0.1:0', readToken: READ_TOKEN },
          cache: { replicas: 1, readToken: CACHE_TOKEN, writeToken: CACHE_TOKEN },
          warm: [{ path: '/models', replicas: 1 }],
        },
        // eu copies at 300 KiB/s, so a 1.5 MiB model takes a few seconds; one attempt per job shows a failure at once.
        mirrors: { eu: { copy: { bytesPerSecond: 300 * KiB, attempts: 1, reconcileEvery: '1s' } }, us: {} },
        replicator: { leaseTtl: '2s' },
      });
      // us takes an old model, then its replicator stops.
      const us = await scope.replicator(r, {}, 'us');
      await putBytes(r, { '/old/model.bin': randomBytes(320 * KiB) });
      await waitForConvergence(r, 'us', 30_000);
      await us.stop();
      // The source store as eu's copies read it: made unreadable later in the test.
      let unreadable = false;
      const source = new FaultStore({
        inner: createStore(r.config.regions.src?.store as string),
        failWhen: (op) => unreadable && op === 'get',
      });
      await scope.replicator(r, { stores: { source } }, 'eu');
      await waitForConvergence(r, 'eu', 30_000);
      // Two cache nodes in the source region (processes), which its replicator warms by the rule on /models.
      const nodes = await Promise.all(
        [1, 2].map((i) =>
          startCacheNode({
            configPath: r.configPath,
            region: 'src',
            dir: join(r.dir, `node-${i}`),
            id: `gpu-${i}`,
            weight: i,
            capacity: `${i * 64}MiB`,
          }),
        ),
      );
      for (const node of nodes) scope.defer(() => node.stop('SIGKILL'));
      const src = await scope.replicator(r, { listen: '127.0.0.1:0', historyEveryMs: 1000 }, 'src');
      const base = src.address as string;
      expect(base).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      // The old model is deleted: eu applies it, us cannot, so the source's gc keeps its chunks for us.
      await r.source.meta.delete('/old', { recursive: true });

      // No token: 401, and the browser is offered Basic auth; a wrong password is refused too.
      const anonymous = await browser.newContext();
      const refused = await anonymous.request.get(base);
      expect(refused.status()).toBe(401);
      expect(refused.headers()['www-authenticate']).toMatch(/^Basic realm="ferry"/);
      const basic = (password: string) => `Basic ${Buffer.from(`ops:${password}`).toString('base64')}`;
      expect((await anonymous.request.get(`${base}/api/regions`, { headers: { authorization: basic('not-the-token') } })).status()).toBe(
        401,
      );
      expect((await anonymous.request.get(`${base}/api/regions`, { headers: { authorization: basic(READ_TOKEN) } })).status()).toBe(200);
      // A path search for nothing: 404 with the reason; without a path: 400.
      const asReader = { headers: { authorization: basic(READ_TOKEN) } };
      const nothing = await anonymous.request.get(`${base}/api/path?p=/no/such/model`, asReader);
      expect(nothing.status()).toBe(404);
      expect((await nothing.json()).message).toMatch(/\/no\/such\/model/);
      expect((await anonymous.request.get(`${base}/api/path`, asReader)).status()).toBe(400);
      // Basic auth is for reads: what queues work still needs the bearer token.
      expect((await anonymous.request.post(`${base}/retry-failed`, { headers: { authorization: basic(READ_TOKEN) } })).status()).toBe(401);
      await anonymous.close();

      const context = await browser.newContext({
        httpCredentials: { username: 'ops', password: READ_TOKEN },
        viewport: { width: 1100, height: 900 },
      });
      const page = await context.newPage();
      expect((await page.goto(`${base}/#p=/models/m`))?.status()).toBe(200);
      // Not there yet: the search says so.
      await expect.poll(() => page.locator('[data-test="path-error"]').textContent(), { timeout: 10_000 }).toMatch(/\/models\/m/);

      // The stopped mirror: no replicator holds its lease, it lags, and it holds the source's gc back.
      await card(page, 'us').locator('[data-test="no-leader"]').waitFor({ timeout: 20_000 });
      await card(page, 'us').locator('[data-test="lagging"]').waitFor({ timeout: 20_000 });
      await card(page, 'us').locator('[data-test="holds-gc"]').waitFor({ timeout: 20_000 });
      await expect
        .poll(() => card(page, 'src').locator('[data-test="held-back"]').textContent(), { timeout: 20_000 })
        .toMatch(/\(5 chunks\) by mirror us/);

      // A model arrives: the copying mirror's readiness, as the path search shows it, rises to 100 %.
      await putBytes(r, { '/models/m/config.json': randomBytes(2 * KiB), '/models/m/weights.safetensors': randomBytes(1536 * KiB) });
      const present = (region: string) => page.locator(`tr[data-path-region="${region}"] [data-test="present"]`).textContent();
      await expect.poll(() => present('src'), { timeout: 10_000 }).toMatch(/^100 %/);
      const seen: number[] = [];
      await expect
        .poll(
          async () => {
            const pct = Number((await present('eu'))?.match(/^([\d.]+) %/)?.[1] ?? Number.NaN);
            if (Number.isFinite(pct) && seen.at(-1) !== pct) {
              seen.push(pct);
              if (pct > 0 && pct < 100) await shot(page, '1-copying');
            }
            return pct;
          },
          { timeout: 60_000, interval: 250, message: 'the copying mirror to reach 100 %' },
        )
        .toBe(100);
      expect(seen.some((p) => p < 100)).toBe(true);
      expect(seen).toEqual([...seen].sort((a, b) => a - b));
      // The stopped mirror has none of it; the source's nodes have it all (the warm rule), and the table names the rule.
      expect(await present('us')).toMatch(/^0 %/);
      const srcRow = page.locator('tr[data-path-region="src"]');
      await expect.poll(() => srcRow.textContent(), { timeout: 20_000 }).toMatch(/100 % on 2 nodes.*\/models ×1/);
      await expect.poll(() => card(page, 'eu').textContent(), { timeout: 10_000 }).toMatch(/a replicator holds the lease/);

      // The cache nodes: both up; reads through the cache tier give a hit ratio.
      for (let i = 0; i < 3; i++) expect((await runCli(['cat', '/models/m/weights.safetensors', '--config', r.configPath])).code).toBe(0);
      await expect.poll(() => page.locator('tr[data-node] .ok').count(), { timeout: 10_000 }).toBe(2);
      await expect.poll(() => page.locator('#nodes').textContent(), { timeout: 10_000 }).toMatch(/\d+\.\d %/);
      // The history charts have a line per mirror.
      await expect.poll(() => page.locator('#chart-rate polyline').count(), { timeout: 10_000 }).toBe(2);
      await shot(page, '2-copied');

      // A node dies and the source store becomes unreadable: a new file's copies fail, and the page says why.
      await nodes[1]?.stop('SIGKILL');
      unreadable = true;
      await putBytes(r, { '/models/broken.bin': randomBytes(100 * KiB) });
      const failures = card(page, 'eu').locator('[data-test="failures"]');
      await failures.waitFor({ timeout: 30_000 });
      await expect.poll(() => failures.textContent(), { timeout: 10_000 }).toMatch(/injected fault: get/);
      await expect.poll(() => page.locator('tr[data-node="gpu-2"]').textContent(), { timeout: 15_000 }).toMatch(/down/);
      await shot(page, '3-failing');

      // On a phone: one column, nothing wider than the screen.
      await page.setViewportSize({ width: 390, height: 844 });
      await page.waitForTimeout(300);
      expect(await page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
      await shot(page, '4-phone');

      // `ferry status --json` prints what /api/regions serves, computed by the same code. The two
      // are read a moment apart while copies and retries go on: compared until a pair agrees.
      const stable = (s: Record<string, unknown>) => ({
        region: s.region,
        role: s.role,
        lease: (s.lease as { held: boolean } | undefined)?.held,
        lag: (s.lag as { records: number } | undefined)?.records,
        chunks: s.chunks,
        heldBack: (s.gc as { heldBack: unknown }).heldBack,
        failing: ((s.failures as unknown[] | undefined) ?? []).length,
      });
      let printed: Array<Record<string, unknown>> = [];
      let served: Array<Record<string, unknown>> = [];
      await waitFor(
        async () => {
          const api = (await (await fetch(`${base}/api/regions`, { headers: { authorization: `Bearer ${READ_TOKEN}` } })).json()) as {
            regions: Array<Record<string, unknown>>;
          };
          const cli = await runCli(['status', '--json', '--config', r.configPath]);
          expect(cli.code, cli.stderr).toBe(0);
          printed = cli.stdout
            .trim()
            .split('\n')
            .map((l) => JSON.parse(l) as Record<string, unknown>);
          served = api.regions;
          return JSON.stringify(printed.map(stable)) === JSON.stringify(served.map(stable));
        },
        30_000,
        'ferry status --json and /api/regions to agree',
      ).catch(() => {});
      expect(printed.map(stable)).toEqual(served.map(stable));
      expect(printed.map((s) => s.region)).toEqual(['src', 'eu', 'us']);
      // And `ferry status <path> --json` the rows of /api/path.
      const pathApi = (await (
        await fetch(`${base}/api/path?p=/models/m`, { headers: { authorization: `Bearer ${READ_TOKEN}` } })
      ).json()) as {
        regions: Array<Record<string, unknown>>;
      };
      const pathCli = await runCli(['status', '/models/m', '--json', '--config', r.configPath]);
      const rows = pathCli.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      const pick = (row: Record<string, unknown>) => ({ region: row.region, percent: row.percent, rules: row.rules });
      expect(rows.map(pick)).toEqual(pathApi.regions.map(pick));
      await context.close();
    }, 150_000);
  },
);
