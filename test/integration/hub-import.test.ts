import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Hub } from '@ferry/hub';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  expectSameFiles,
  filesUnder,
  findHfClient,
  type HfClient,
  type PyError,
  runPython,
  snapshotThrough,
} from '../support/hf-client.js';
import { type HubStandIn, startHubStandIn } from '../support/hf-hub.js';
import { type RunningHubs, startHubs } from '../support/hubs.js';
import { createRegions, KiB, type Regions, runCli, waitFor, waitForConvergence } from '../support/regions.js';
import { startReplicator } from '../support/replicators.js';

// `ferry import hf://` from the Hub stand-in (test/support/hf-hub.ts), then the real
// huggingface_hub client through `ferry hub` of the source and of a mirror: the import reads no
// LFS byte, the mirror copies them from the Hub (resolve → signed CDN redirect, range reads), and
// a re-import commits only what changed.

const READ_TOKEN = 'hub-read-token-0123456789';
const HF_TOKEN = 'hf_granted_0123456789';
const LFS = 64 * KiB;
const FILES: Record<string, Buffer> = {
  'config.json': Buffer.from('{"model_type":"llama"}\n'),
  'tokenizer.json': randomBytes(20 * KiB),
  'model.safetensors': randomBytes(300 * KiB + 7),
  'nested/weights file.bin': randomBytes(100 * KiB),
};

const DATASET: Record<string, Buffer> = {
  'README.md': Buffer.from('---\nlicense: mit\n---\n'),
  'data/train.parquet': randomBytes(90 * KiB),
};

const lookup = await findHfClient();
if (!lookup.client) console.warn(`hub-import.test.ts skipped: ${lookup.reason}`);

describe.skipIf(!lookup.client)('ferry import hf://, served by ferry hub in every region', () => {
  const client = lookup.client as HfClient;
  let standIn: HubStandIn;
  let regions: Regions;
  let replicator: Awaited<ReturnType<typeof startReplicator>>;
  let running: RunningHubs;
  let hubs: Record<string, Hub> = {};
  let work: string;
  let config: string;
  let homes = 0;

  const importRepo = (url: string, target: string, env: Record<string, string> = {}) =>
    runCli(['import', url, target, '--json', '--config', config], { HF_ENDPOINT: standIn.url, HF_TOKEN: '', ...env });

  async function download(region: string, repo: string, revision?: string): Promise<{ path: string; sha: string }> {
    const home = join(work, `home-${++homes}`);
    await mkdir(home, { recursive: true });
    const got = await snapshotThrough(
      client,
      { endpoint: hubs[region]?.address as string, home, token: READ_TOKEN, timeoutMs: 120_000 },
      repo,
      revision,
    );
    expect('error' in got ? got.error : undefined).toBeUndefined();
    return got as { path: string; sha: string };
  }

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'ferry-hub-import-'));
    standIn = await startHubStandIn({ lfsThreshold: LFS, tokens: [HF_TOKEN] });
    standIn.setRepo('acme/other', { files: FILES });
    standIn.setRepo('datasets/acme/data', { files: DATASET });
    standIn.setRepo('acme/gated', { files: { 'config.json': '{}', 'w.bin': randomBytes(70 * KiB) }, gated: 'manual', grants: [HF_TOKEN] });
    regions = await createRegions({ chunkSize: 64 * KiB });
    running = await startHubs(regions, { readToken: READ_TOKEN, lfsThreshold: LFS }, work);
    hubs = running.hubs;
    config = running.configPath;
  }, 60_000);

  afterAll(async () => {
    await running?.stop();
    await replicator?.stop();
    await regions?.close();
    await standIn?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('imports metadata only, the mirror copies from the Hub, and both regions serve the repo byte-identical', async () => {
    standIn.resetRequests();
    const first = await importRepo('hf://acme/other', '/hf/acme/other');
    expect(first.code, first.stderr).toBe(0);
    const summary = JSON.parse(first.stdout.trim().split('\n').at(-1) as string);
    expect(summary).toMatchObject({ commit: standIn.head('acme/other'), files: 4, lfsFiles: 2, smallFiles: 2, committed: 4 });
    // No LFS byte was read: only the two small files came from the Hub.
    expect(standIn.requests.cdnGet).toBe(0);
    expect(standIn.requests.cdnBytes).toBe(0);
    const small = (FILES['config.json'] as Buffer).length + (FILES['tokenizer.json'] as Buffer).length;
    expect(standIn.requests.resolveBytes).toBe(small);
    // --json shows the small files' bytes as they come, then the summary.
    const events = first.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(events.filter((e) => e.event === 'progress').at(-1)).toMatchObject({ label: 'import', bytes: small, total: small });

    replicator = await startReplicator(regions, 'eu');
    await waitForConvergence(regions, 'eu', 60_000);
    // The mirror copied the LFS chunks from the Hub (through its CDN redirect), not from the source.
    expect(standIn.requests.cdnBytes).toBeGreaterThanOrEqual((FILES['model.safetensors'] as Buffer).length);

    const shas: string[] = [];
    for (const region of ['src', 'eu']) {
      const got = await download(region, 'acme/other');
      expectSameFiles(await filesUnder(got.path), FILES);
      shas.push(got.sha);
    }
    // Pinned at the Hub's own commit, in both regions.
    expect(shas).toEqual([standIn.head('acme/other'), standIn.head('acme/other')]);
    const revisions = await runCli(['revisions', '/hf/acme/other', '--json', '--config', config]);
    expect(JSON.parse(revisions.stdout.trim().split('\n')[0] as string)).toMatchObject({
      main: true,
      hubCommit: standIn.head('acme/other'),
    });
  });

  it('a re-import commits only what changed at the Hub, and the same commit writes nothing; the old commit still downloads', async () => {
    const before = standIn.head('acme/other');
    const changed = { 'config.json': Buffer.from('{"model_type":"llama","v":2}\n'), 'model.safetensors': randomBytes(300 * KiB) };
    standIn.commit('acme/other', { files: changed });
    const again = await importRepo('hf://acme/other', '/hf/acme/other');
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout.trim().split('\n').at(-1) as string)).toMatchObject({ committed: 2, removed: 0 });
    const same = await importRepo('hf://acme/other', '/hf/acme/other');
    expect(JSON.parse(same.stdout.trim().split('\n').at(-1) as string)).toMatchObject({ committed: 0, removed: 0 });
    await waitForConvergence(regions, 'eu', 60_000);
    await new Promise((r) => setTimeout(r, 1_100));
    const got = await download('eu', 'acme/other');
    expectSameFiles(await filesUnder(got.path), { ...FILES, ...changed });
    expect(got.sha).toBe(standIn.head('acme/other'));
    const old = await download('eu', 'acme/other', before);
    expect(old.sha).toBe(before);
    expectSameFiles(await filesUnder(old.path), FILES);
  });

  it('a gated repo: without a token one line naming it; with HF_TOKEN it imports', async () => {
    const denied = await importRepo('hf://acme/gated', '/hf/acme/gated');
    expect(denied.code).toBe(1);
    const lines = denied.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^ferry: .*acme\/gated.*set HF_TOKEN/);
    const granted = await importRepo('hf://acme/gated', '/hf/acme/gated', { HF_TOKEN });
    expect(granted.code, granted.stderr).toBe(0);
    const bad = await importRepo('hf://acme/nothing', '/hf/acme/nothing');
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim()).toMatch(/^ferry: no repo acme\/nothing at http/);
    const typo = await importRepo('hf://acme', '/hf/acme/x');
    expect(typo.code).toBe(2);
    expect(typo.stderr.trim()).toMatch(/^ferry: invalid repo URL "hf:\/\/acme"/);
    // A dataset, under the datasets folder, served as one.
    const dataset = await importRepo('hf://datasets/acme/data', '/hf/datasets/acme/data');
    expect(dataset.code, dataset.stderr).toBe(0);
    const home = join(work, `home-${++homes}`);
    await mkdir(home, { recursive: true });
    const r = await runPython<string>(
      client,
      'from huggingface_hub import snapshot_download\nresult = snapshot_download("acme/data", repo_type="dataset")',
      { endpoint: (hubs.src as Hub).address as string, home, token: READ_TOKEN, timeoutMs: 120_000 },
    );
    expectSameFiles(await filesUnder(r.ok as string), DATASET);
  });

  it('a flipped byte under the advertised sha256: the download fails before any byte is sent, and ferry verify names the file', async () => {
    standIn.setRepo('acme/flipped', { files: { 'config.json': '{}', 'model.safetensors': randomBytes(200 * KiB) } });
    standIn.corrupt('acme/flipped', 'model.safetensors');
    const imported = await importRepo('hf://acme/flipped', '/hf/acme/flipped');
    expect(imported.code, imported.stderr).toBe(0);
    await waitFor(
      async () => (await regions.mirror('eu').meta.tryStat('/hf/acme/flipped/model.safetensors')) !== undefined,
      20_000,
      'the mirror to list the file',
    );
    for (const region of ['src', 'eu']) {
      const home = join(work, `home-${++homes}`);
      await mkdir(home, { recursive: true });
      const r = await runPython<{ ok?: string; error?: PyError }>(
        client,
        'from huggingface_hub import hf_hub_download\nresult = attempt(lambda: hf_hub_download("acme/flipped", "model.safetensors"))',
        { endpoint: (hubs[region] as Hub).address as string, home, token: READ_TOKEN, timeoutMs: 120_000 },
      );
      const error = (r.ok as { error?: PyError }).error;
      expect(error?.status, JSON.stringify(r.ok)).toBe(502);
      expect(error?.message).toMatch(/model\.safetensors: the bytes its origin serves hash to sha256/);
      // Nothing of the file reached the client's cache.
      const blobs = join(home, 'hf', 'hub', 'models--acme--flipped', 'blobs');
      const held = await readdir(blobs).catch(() => []);
      for (const name of held) expect((await stat(join(blobs, name))).size, name).toBe(0);
      expect((await (hubs[region] as Hub).metrics.claimsRefused.get()).values[0]?.value).toBeGreaterThanOrEqual(1);

      const verify = await runCli(['verify', '--region', region, '/hf/acme/flipped', '--config', config]);
      expect(verify.code).toBe(1);
      expect(verify.stdout).toContain(`${region}: corrupt file: /hf/acme/flipped/model.safetensors: its bytes hash to sha256`);
      expect(verify.stderr.trim()).toMatch(/^ferry: verify .*1 imported file whose bytes do not match/);
    }
  });
});
