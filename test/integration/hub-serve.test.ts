import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Hub } from '@ferry/hub';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  expectError,
  expectSameFiles,
  filesUnder,
  findHfClient,
  type HfClient,
  type HfRunOptions,
  type PyError,
  runHfCli,
  runPython,
  snapshotThrough,
} from '../support/hf-client.js';
import { type RunningHubs, startHubs } from '../support/hubs.js';
import { createRegions, KiB, putBytes, type Regions, runCli, waitForConvergence } from '../support/regions.js';
import { startReplicator } from '../support/replicators.js';

// `ferry hub` against the real huggingface_hub client: a model put at the source and mirrored is
// downloaded byte-identical from either region, with the same 40-hex revision in both; the
// client's own checksum verification (git blob sha1 of small files, sha256 of LFS files) passes.

const TOKEN = 'hub-read-token-0123456789';
const LFS_THRESHOLD = 64 * KiB;
// keepFor 0: only the newest keepRevisions are retained, so the test sees one dropped.
const HUB_SECTION = { readToken: TOKEN, lfsThreshold: LFS_THRESHOLD, keepRevisions: 2, keepFor: 0 };
const REPO = '/hf/acme/tiny-llm';
const MODEL: Record<string, Buffer> = {
  'config.json': Buffer.from('{"model_type":"llama","hidden_size":64}\n'),
  'tokenizer.json': randomBytes(20 * KiB),
  'model-00001-of-00002.safetensors': randomBytes(300 * KiB + 5),
  'model-00002-of-00002.safetensors': randomBytes(200 * KiB),
  'nested/deeper/weights file.bin': randomBytes(100 * KiB + 1),
  'docs/read me.md': Buffer.from('a file name with a space\n'),
  'empty.txt': Buffer.alloc(0),
};
const DATASET: Record<string, Buffer> = {
  'data/train-00000.parquet': randomBytes(150 * KiB),
  'README.md': Buffer.from('---\nlicense: mit\n---\n'),
};

function under(folder: string, files: Record<string, Buffer>): Record<string, Buffer> {
  return Object.fromEntries(Object.entries(files).map(([p, b]) => [`${folder}/${p}`, b]));
}

const lookup = await findHfClient();
if (!lookup.client) console.warn(`hub-serve.test.ts skipped: ${lookup.reason}`);

describe.skipIf(!lookup.client)('ferry hub serves Hugging Face clients from the nearest region', () => {
  const client = lookup.client as HfClient;
  let regions: Regions;
  let replicator: Awaited<ReturnType<typeof startReplicator>>;
  let running: RunningHubs;
  let hubs: Record<string, Hub> = {};
  let work: string;
  let hubConfigPath: string;
  let homes = 0;

  async function ferry(...args: string[]): Promise<string> {
    const r = await runCli([...args, '--config', hubConfigPath]);
    expect(r.code, `ferry ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout;
  }

  async function putDir(files: Record<string, Buffer>, target: string): Promise<void> {
    const dir = await mkdtemp(join(work, 'put-'));
    for (const [p, b] of Object.entries(files)) {
      await mkdir(join(dir, ...p.split('/').slice(0, -1)), { recursive: true });
      await writeFile(join(dir, ...p.split('/')), b);
    }
    await ferry('put', dir, target);
  }

  async function download(region: string, repo: string, revision?: string): Promise<{ path: string; sha: string } | { error: PyError }> {
    return snapshotThrough(client, await fresh(region), repo, revision);
  }

  async function fresh(region: string, extra: Partial<HfRunOptions> = {}): Promise<HfRunOptions> {
    const home = join(work, `home-${++homes}`);
    await mkdir(home, { recursive: true });
    return { endpoint: (hubs[region] as Hub).address as string, home, token: TOKEN, timeoutMs: 120_000, ...extra };
  }

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'ferry-hub-'));
    regions = await createRegions({ chunkSize: 64 * KiB });
    await putBytes(regions, { ...under(REPO, MODEL), ...under('/hf/datasets/acme/data', DATASET) });
    replicator = await startReplicator(regions, 'eu');
    await waitForConvergence(regions, 'eu', 30_000);
    running = await startHubs(regions, HUB_SECTION, work);
    hubs = running.hubs;
    hubConfigPath = running.configPath;
  }, 120_000);

  afterAll(async () => {
    await running?.stop();
    await replicator?.stop();
    await regions?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('snapshot_download is byte-identical in the source and the mirror, at one 40-hex revision, and passes the client’s own checksums', async () => {
    const shas: string[] = [];
    for (const region of ['src', 'eu']) {
      const r = await runPython<{ path: string; sha: string; files: string[]; verify: { mismatches: unknown[]; checked_count: number } }>(
        client,
        `
from huggingface_hub import snapshot_download, HfApi
path = snapshot_download("acme/tiny-llm")
api = HfApi()
info = api.model_info("acme/tiny-llm")
v = api.verify_repo_checksums("acme/tiny-llm")
result = {"path": path, "sha": info.sha, "files": sorted(api.list_repo_files("acme/tiny-llm")),
          "verify": {"mismatches": v.mismatches, "checked_count": v.checked_count}}
`,
        await fresh(region),
      );
      expect(r.error).toBeUndefined();
      const got = r.ok as NonNullable<typeof r.ok>;
      expectSameFiles(await filesUnder(got.path), MODEL);
      expect(got.sha).toMatch(/^[0-9a-f]{40}$/);
      expect(got.path.endsWith(`/snapshots/${got.sha}`)).toBe(true);
      expect(got.files).toEqual(Object.keys(MODEL).sort());
      expect(got.verify).toEqual({ mismatches: [], checked_count: Object.keys(MODEL).length });
      shas.push(got.sha);
    }
    expect(shas[0]).toBe(shas[1]);
  });

  it('hf_hub_download of one file, a pinned revision, a range, the hf CLI and datasets', async () => {
    const opts = await fresh('eu');
    const r = await runPython<{ one: string; pinned: string; sha: string; dataset: string }>(
      client,
      `
from huggingface_hub import hf_hub_download, snapshot_download, HfApi
sha = HfApi().model_info("acme/tiny-llm").sha
one = hf_hub_download("acme/tiny-llm", "nested/deeper/weights file.bin")
pinned = hf_hub_download("acme/tiny-llm", "config.json", revision=sha)
dataset = snapshot_download("acme/data", repo_type="dataset")
result = {"one": one, "pinned": pinned, "sha": sha, "dataset": dataset}
`,
      opts,
    );
    expect(r.error).toBeUndefined();
    const got = r.ok as NonNullable<typeof r.ok>;
    expectSameFiles(await filesUnder(got.dataset), DATASET);
    expect((await readFile(got.one)).equals(MODEL['nested/deeper/weights file.bin'] as Buffer)).toBe(true);
    expect((await readFile(got.pinned)).equals(MODEL['config.json'] as Buffer)).toBe(true);

    const target = join(opts.home, 'cli');
    const cli = await runHfCli(client, ['download', 'acme/tiny-llm', '--local-dir', target], opts);
    expect(cli.code, cli.stderr).toBe(0);
    expectSameFiles(await filesUnder(target), MODEL);

    // A range, as a resumed download asks for it.
    const url = `${(hubs.eu as Hub).address}/acme/tiny-llm/resolve/main/model-00001-of-00002.safetensors`;
    const res = await fetch(url, { headers: { authorization: `Bearer ${TOKEN}`, range: 'bytes=100000-100009' } });
    expect(res.status).toBe(206);
    expect(res.headers.get('x-repo-commit')).toBe(got.sha);
    expect(res.headers.get('content-range')).toBe(`bytes 100000-100009/${(MODEL['model-00001-of-00002.safetensors'] as Buffer).length}`);
    expect(
      Buffer.from(await res.arrayBuffer()).equals((MODEL['model-00001-of-00002.safetensors'] as Buffer).subarray(100000, 100010)),
    ).toBe(true);
  });

  it('answers as the Hub does: missing repo, revision and file are the client’s own errors; a client without the token gets 401', async () => {
    const r = await runPython<Record<string, { ok?: unknown; error?: PyError }>>(
      client,
      `
from huggingface_hub import hf_hub_download, HfApi
api = HfApi()
result = {
  "repo": attempt(lambda: api.model_info("acme/nothing-here")),
  "revision": attempt(lambda: api.model_info("acme/tiny-llm", revision="0" * 40)),
  "entry": attempt(lambda: hf_hub_download("acme/tiny-llm", "no-such-file.bin")),
}
`,
      await fresh('src'),
    );
    const out = r.ok as NonNullable<typeof r.ok>;
    expectError(out.repo as { error?: PyError }, 'RepositoryNotFoundError', 404);
    expectError(out.revision as { error?: PyError }, 'RevisionNotFoundError', 404);
    expectError(out.entry as { error?: PyError }, 'RemoteEntryNotFoundError', 404);

    const denied = await runPython<{ ok?: unknown; error?: PyError }>(
      client,
      `
from huggingface_hub import snapshot_download
result = attempt(lambda: snapshot_download("acme/tiny-llm"))
`,
      await fresh('eu', { token: 'wrong-token-0123456789' }),
    );
    expect((denied.ok as { error?: PyError }).error?.status).toBe(401);
    const anonymous = await fetch(`${(hubs.eu as Hub).address}/api/models/acme/tiny-llm`);
    expect(anonymous.status).toBe(401);

    // A hub with no token configured does not start: one line, exit 2, nothing served.
    const noSection = await runCli(['hub', '--region', 'eu', '--listen', '127.0.0.1:0', '--config', regions.configPath]);
    expect(noSection.code).toBe(2);
    expect(noSection.stderr.trim()).toMatch(/^ferry: .*no hub section/);
    expect(noSection.stderr.trim().split('\n')).toHaveLength(1);
    const open = join(work, 'ferry-no-token.yaml');
    await writeFile(open, JSON.stringify({ ...JSON.parse(await readFile(regions.configPath, 'utf8')), hub: {} }));
    const noToken = await runCli(['hub', '--region', 'eu', '--listen', '127.0.0.1:0', '--config', open]);
    expect(noToken.code).toBe(2);
    expect(noToken.stderr).toMatch(/configure hub.readToken .* or set hub.anonymous: true/);
  });

  it('after a second put, main is the new files at a new revision in both regions', async () => {
    const before = await runPython<string>(
      client,
      'from huggingface_hub import HfApi\nresult = HfApi().model_info("acme/tiny-llm").sha',
      await fresh('eu'),
    );
    const changed = Buffer.from('{"model_type":"llama","hidden_size":128}\n');
    await putBytes(regions, { [`${REPO}/config.json`]: changed });
    await waitForConvergence(regions, 'eu', 30_000);
    await new Promise((r) => setTimeout(r, 1_100));
    const shas: string[] = [];
    for (const region of ['src', 'eu']) {
      const r = await runPython<{ path: string; sha: string }>(
        client,
        'from huggingface_hub import snapshot_download, HfApi\nresult = {"path": snapshot_download("acme/tiny-llm"), "sha": HfApi().model_info("acme/tiny-llm").sha}',
        await fresh(region),
      );
      const got = r.ok as NonNullable<typeof r.ok>;
      expectSameFiles(await filesUnder(got.path), { ...MODEL, 'config.json': changed });
      shas.push(got.sha);
    }
    expect(shas[0]).toBe(shas[1]);
    expect(shas[0]).not.toBe(before.ok);
  });

  it('keeps old revisions: after a second put and GC with grace 0, the old id still downloads the old bytes in both regions; past keepRevisions it is dropped', async () => {
    const repo = '/hf/acme/pinned';
    const v1 = { 'config.json': Buffer.from('{"v":1}\n'), 'model.safetensors': randomBytes(200 * KiB) };
    const v2 = { 'config.json': Buffer.from('{"v":2}\n'), 'model.safetensors': randomBytes(200 * KiB) };
    await putDir(v1, repo);
    await waitForConvergence(regions, 'eu', 30_000);
    const first = await download('eu', 'acme/pinned');
    expect('sha' in first).toBe(true);
    const r1 = (first as { sha: string }).sha;
    await putDir(v2, repo);
    await waitForConvergence(regions, 'eu', 30_000);
    const listed = (await ferry('revisions', repo, '--json'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(listed.map((r) => r.id)).toContain(r1);
    expect(listed.filter((r) => r.main)).toHaveLength(1);
    const r2 = listed.find((r) => r.main).id as string;
    expect(r2).not.toBe(r1);
    // The old shard is referenced only by the retained revision now: GC with no grace keeps it.
    await ferry('gc', '--region', 'src', '--grace', '0s');
    await ferry('gc', '--region', 'eu', '--grace', '0s');
    await new Promise((r) => setTimeout(r, 1_100));
    for (const region of ['src', 'eu']) {
      const old = await download(region, 'acme/pinned', r1);
      expect('path' in old, JSON.stringify(old)).toBe(true);
      expectSameFiles(await filesUnder((old as { path: string }).path), v1);
      const main = await download(region, 'acme/pinned');
      expectSameFiles(await filesUnder((main as { path: string }).path), v2);
      expect((main as { sha: string }).sha).toBe(r2);
    }
    // The CLI reads a revision with <path>@<id>, shown under the repo's own paths; / does not show Ferry's folder.
    expect(await ferry('cat', `${repo}/config.json@${r1}`)).toBe('{"v":1}\n');
    expect(await ferry('ls', `${repo}@${r1}`)).toContain(`${repo}/model.safetensors`);
    expect(await ferry('ls', '/')).not.toContain('.ferry');

    // A third put: keepRevisions 2 drops the oldest, which is then not found.
    await putDir({ 'config.json': Buffer.from('{"v":3}\n') }, repo);
    await waitForConvergence(regions, 'eu', 30_000);
    const after = (await ferry('revisions', repo, '--json'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).id);
    expect(after).toHaveLength(2);
    expect(after).not.toContain(r1);
    await new Promise((r) => setTimeout(r, 1_100));
    const gone = await download('eu', 'acme/pinned', r1);
    expect((gone as { error: PyError }).error?.type).toBe('RevisionNotFoundError');
  });
});
