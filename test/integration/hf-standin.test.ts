import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
} from '../support/hf-client.js';
import { type HubStandIn, startHubStandIn } from '../support/hf-hub.js';
import { gitObjectId, lfsPointer } from '../support/hf-repos.js';

// The Hub stand-in (test/support/hf-hub.ts) against the real huggingface_hub client and its
// `hf` CLI: what the client downloads is what was put in, its errors are the client's own error
// classes, and what it does not check (the bytes' hashes) is shown, not assumed.

const KiB = 1024;
const LFS_THRESHOLD = 64 * KiB;
const GOOD_TOKEN = 'hf_granted_0123456789';
const OTHER_TOKEN = 'hf_known_not_granted_99';

const MODEL: Record<string, Buffer> = {
  'config.json': Buffer.from('{"model_type":"llama","hidden_size":64}\n'),
  'tokenizer.json': randomBytes(20 * KiB),
  'model-00001-of-00002.safetensors': randomBytes(300 * KiB + 5),
  'model-00002-of-00002.safetensors': randomBytes(200 * KiB),
  'nested/deeper/weights file.bin': randomBytes(100 * KiB + 1),
  'nested/notes.md': Buffer.from('# notes\n'),
  'docs/read me.md': Buffer.from('a file name with a space\n'),
  'empty.txt': Buffer.alloc(0),
};
const LFS_PATHS = Object.keys(MODEL).filter((p) => (MODEL[p] as Buffer).length > LFS_THRESHOLD);
const DATASET: Record<string, Buffer> = {
  'data/train-00000.parquet': randomBytes(150 * KiB),
  'README.md': Buffer.from('---\nlicense: mit\n---\n'),
};
const DATE = new Date('2026-01-02T03:04:05Z');

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const sumOf = (paths: string[], files: Record<string, Buffer>) => paths.reduce((n, p) => n + (files[p] as Buffer).length, 0);

const lookup = await findHfClient();
// A skip must be seen: one line says why (the describe's name says it too, in verbose output).
if (!lookup.client) console.warn(`hf-standin.test.ts skipped: ${lookup.reason}`);

describe.skipIf(!lookup.client)(
  lookup.client ? `huggingface_hub ${lookup.client.version} against the Hub stand-in` : `skipped: ${lookup.reason}`,
  () => {
    const client = lookup.client as HfClient;
    let hub: HubStandIn;
    let work: string;
    let firstSha: string;
    const clock = Date.now();
    let homes = 0;

    /** Options for one client run with a fresh HOME/HF_HOME (an empty cache). */
    async function fresh(extra: Partial<HfRunOptions> = {}): Promise<HfRunOptions> {
      const home = join(work, `home-${++homes}`);
      await mkdir(home, { recursive: true });
      return { endpoint: hub.url, home, ...extra };
    }

    beforeAll(async () => {
      work = await mkdtemp(join(tmpdir(), 'ferry-hf-standin-'));
      hub = await startHubStandIn({
        lfsThreshold: LFS_THRESHOLD,
        pageSize: 3,
        tokens: [GOOD_TOKEN, OTHER_TOKEN],
        now: () => clock,
      });
      firstSha = hub.setRepo('org/tiny', { files: MODEL, message: 'initial commit', date: DATE });
      hub.setRepo('datasets/org/tiny', { files: DATASET });
      hub.setRepo('datasets/org/only-data', { files: { 'a.csv': 'x,y\n1,2\n' } });
      hub.setRepo('org/gated', { files: { 'config.json': '{}', 'w.bin': randomBytes(70 * KiB) }, gated: 'manual', grants: [GOOD_TOKEN] });
      hub.setRepo('org/secret', { files: { 'config.json': '{"secret":true}' }, private: true, grants: [GOOD_TOKEN] });
    });

    afterAll(async () => {
      await hub?.close();
      if (work) await rm(work, { recursive: true, force: true });
    });

    it('snapshot_download gets every file byte-identical: small ones from the API host, LFS ones from the CDN, cached by git id and sha256', async () => {
      hub.resetRequests();
      const opts = await fresh();
      const r = await runPython<{ path: string; verify: { mismatches: unknown[]; checked_count: number } }>(
        client,
        `
from huggingface_hub import snapshot_download, HfApi
path = snapshot_download("org/tiny")
v = HfApi().verify_repo_checksums("org/tiny")
result = {"path": path, "verify": {"mismatches": v.mismatches, "checked_count": v.checked_count}}
`,
        opts,
      );
      expect(r.error).toBeUndefined();
      const { path, verify } = r.ok as NonNullable<typeof r.ok>;
      expectSameFiles(await filesUnder(path), MODEL);
      // The client's own check (git-sha1 of small files against the tree's oid, sha256 of LFS files).
      expect(verify).toEqual({ mismatches: [], checked_count: Object.keys(MODEL).length });

      const repoDir = join(opts.home, 'hf', 'hub', 'models--org--tiny');
      expect(path).toBe(join(repoDir, 'snapshots', firstSha));
      expect((await readFile(join(repoDir, 'refs', 'main'), 'utf8')).trim()).toBe(firstSha);
      const blobs = (await readdir(join(repoDir, 'blobs'))).sort();
      const want = Object.entries(MODEL).map(([p, b]) => (LFS_PATHS.includes(p) ? sha256(b) : gitObjectId('blob', b)));
      expect(blobs).toEqual([...new Set(want)].sort());
      expect(await readlink(join(path, 'config.json'))).toBe(`../../blobs/${gitObjectId('blob', MODEL['config.json'] as Buffer)}`);

      const smallPaths = Object.keys(MODEL).filter((p) => !LFS_PATHS.includes(p));
      const q = hub.requests;
      expect(q.info).toBe(1);
      // 11 entries (8 files, 3 folders) at 3 a page; verify_repo_checksums lists the tree again.
      expect(q.tree).toBe(2 * Math.ceil(11 / 3));
      expect(q.resolveHead).toBe(Object.keys(MODEL).length);
      expect(q.cdnGet).toBe(LFS_PATHS.length);
      expect(q.cdnBytes).toBe(sumOf(LFS_PATHS, MODEL));
      expect(q.resolveBytes).toBe(sumOf(smallPaths, MODEL));
      expect(q.other).toBe(0);
      // The empty file needs no GET: the client knows its size is 0 from the HEAD.
      expect(q.resolveGet).toBe(smallPaths.length - 1);
    });

    it('hf_hub_download, model_info, list_repo_files, list_repo_tree (paged), file_exists and list_repo_refs', async () => {
      hub.resetRequests();
      const opts = await fresh();
      const r = await runPython<Record<string, unknown>>(
        client,
        `
from huggingface_hub import HfApi, hf_hub_download
api = HfApi()
info = api.model_info("org/tiny", files_metadata=True)
tree = list(api.list_repo_tree("org/tiny", recursive=True))
top = list(api.list_repo_tree("org/tiny", path_in_repo="nested", expand=True))
refs = api.list_repo_refs("org/tiny")
result = {
  "download": hf_hub_download("org/tiny", "nested/deeper/weights file.bin"),
  "sha": info.sha, "id": info.id, "private": info.private, "gated": info.gated,
  "siblings": {s.rfilename: {"size": s.size, "blob_id": s.blob_id, "lfs": s.lfs.sha256 if s.lfs else None} for s in info.siblings},
  "files": api.list_repo_files("org/tiny"),
  "tree": [{"path": e.path, "kind": type(e).__name__, "size": getattr(e, "size", None),
            "oid": getattr(e, "blob_id", None) or getattr(e, "tree_id", None),
            "lfs": (e.lfs.sha256, e.lfs.size, e.lfs.pointer_size) if getattr(e, "lfs", None) else None} for e in tree],
  "nested": [(e.path, type(e).__name__, e.last_commit.oid if e.last_commit else None) for e in top],
  "exists": [api.file_exists("org/tiny", "docs/read me.md"), api.file_exists("org/tiny", "nope.json"),
             api.file_exists("org/missing", "config.json")],
  "branches": [(b.name, b.target_commit) for b in refs.branches],
}
`,
        opts,
      );
      expect(r.error).toBeUndefined();
      const got = r.ok as Record<string, unknown>;
      expect(await readFile(got.download as string)).toEqual(MODEL['nested/deeper/weights file.bin']);
      expect(got.sha).toBe(firstSha);
      expect([got.id, got.private, got.gated]).toEqual(['org/tiny', false, false]);
      const siblings = got.siblings as Record<string, { size: number; blob_id: string; lfs: string | null }>;
      for (const [path, bytes] of Object.entries(MODEL)) {
        const lfs = LFS_PATHS.includes(path);
        expect(siblings[path], path).toEqual({
          size: bytes.length,
          blob_id: gitObjectId('blob', lfs ? lfsPointer(sha256(bytes), bytes.length) : bytes),
          lfs: lfs ? sha256(bytes) : null,
        });
      }
      expect((got.files as string[]).sort()).toEqual(Object.keys(MODEL).sort());
      const tree = got.tree as { path: string; kind: string; size: number | null; lfs: [string, number, number] | null }[];
      expect(tree.filter((e) => e.kind === 'RepoFolder').map((e) => e.path)).toEqual(['docs', 'nested', 'nested/deeper']);
      for (const e of tree.filter((t) => t.kind === 'RepoFile')) {
        const bytes = MODEL[e.path] as Buffer;
        expect(e.size, e.path).toBe(bytes.length);
        const lfs = LFS_PATHS.includes(e.path) ? [sha256(bytes), bytes.length, lfsPointer(sha256(bytes), bytes.length).length] : null;
        expect(e.lfs, e.path).toEqual(lfs);
      }
      expect(got.nested).toEqual([
        ['nested/deeper', 'RepoFolder', firstSha],
        ['nested/notes.md', 'RepoFile', firstSha],
      ]);
      expect(got.exists).toEqual([true, false, false]);
      expect(got.branches).toEqual([['main', firstSha]]);
      // Paging was followed: 11 entries at 3 a page, twice (list_repo_tree, list_repo_files).
      expect(hub.requests.log.filter((l) => l.route === 'tree' && l.path.includes('cursor=')).length).toBe(2 * 3);
    });

    it('the hf download CLI fills a local folder', async () => {
      hub.resetRequests();
      const opts = await fresh();
      const target = join(opts.home, 'out');
      const r = await runHfCli(client, ['download', 'org/tiny', '--local-dir', target], opts);
      expect(r.code, r.stderr).toBe(0);
      expectSameFiles(await filesUnder(target), MODEL);
      const one = await runHfCli(client, ['download', 'hf://datasets/org/tiny/README.md', '--local-dir', join(opts.home, 'one')], opts);
      expect(one.code, one.stderr).toBe(0);
      expect(await readFile(join(opts.home, 'one', 'README.md'))).toEqual(DATASET['README.md']);
      // Nothing the CLI asked for was left unanswered; it asks for the agent list once and keeps
      // it in HF_HOME for a day.
      expect(hub.requests.log.filter((l) => l.route === 'other')).toEqual([]);
      expect(hub.requests.meta).toBe(1);
    });

    it('after a new commit main has the new bytes, the old sha still the old ones, and unchanged LFS files are not fetched again', async () => {
      const opts = await fresh();
      const first = await runPython<string>(
        client,
        'from huggingface_hub import snapshot_download\nresult = snapshot_download("org/tiny")',
        opts,
      );
      expect(first.error).toBeUndefined();
      const changed = {
        'config.json': Buffer.from('{"model_type":"llama","hidden_size":128}\n'),
        'model-00002-of-00002.safetensors': randomBytes(210 * KiB),
      };
      const secondSha = hub.commit('org/tiny', { files: { ...changed, 'nested/notes.md': null }, message: 'bigger' });
      const updated: Record<string, Buffer> = { ...MODEL, ...changed };
      delete updated['nested/notes.md'];
      hub.resetRequests();
      const r = await runPython<{ main: string; old: string }>(
        client,
        `
from huggingface_hub import snapshot_download
import os
main = snapshot_download("org/tiny")
old = snapshot_download("org/tiny", revision="${firstSha}", cache_dir=os.path.join(os.environ["HOME"], "other-cache"))
result = {"main": main, "old": old}
`,
        opts,
      );
      expect(r.error).toBeUndefined();
      const { main, old } = r.ok as { main: string; old: string };
      expect(main.endsWith(secondSha)).toBe(true);
      expectSameFiles(await filesUnder(main), updated);
      expectSameFiles(await filesUnder(old), MODEL);
      // The new main downloads only the changed LFS shard; the old sha, into an empty cache, all of them.
      expect(hub.requests.cdnBytes).toBe((changed['model-00002-of-00002.safetensors'] as Buffer).length + sumOf(LFS_PATHS, MODEL));
      // A commit id needs no repo info call: one info call, for main.
      expect(hub.requests.info).toBe(1);
      // Restore the first state for the tests that follow: the same files, message and date
      // give the same commit id, as in git.
      expect(hub.setRepo('org/tiny', { files: MODEL, message: 'initial commit', date: DATE })).toBe(firstSha);
    });

    it('a dataset repo is its own namespace', async () => {
      const opts = await fresh();
      const r = await runPython<{ path: string; sha: string; files: string[] }>(
        client,
        `
from huggingface_hub import snapshot_download, HfApi
info = HfApi().dataset_info("org/tiny")
result = {"path": snapshot_download("org/tiny", repo_type="dataset"), "sha": info.sha,
          "files": sorted(s.rfilename for s in info.siblings)}
`,
        opts,
      );
      expect(r.error).toBeUndefined();
      const got = r.ok as NonNullable<typeof r.ok>;
      expect(got.path).toContain('datasets--org--tiny');
      expect(got.sha).toBe(hub.head('datasets/org/tiny'));
      expect(got.files).toEqual(Object.keys(DATASET).sort());
      expectSameFiles(await filesUnder(got.path), DATASET);
    });

    it('a gated repo: GatedRepoError without a token (401) and with one not granted (403); works with HF_TOKEN; a private repo hides', async () => {
      const denied = await runPython<Record<string, { ok?: unknown; error?: PyError }>>(
        client,
        `
from huggingface_hub import snapshot_download, HfApi
api = HfApi()
result = {
  "info": attempt(lambda: api.model_info("org/gated").gated),
  "anonymous": attempt(lambda: snapshot_download("org/gated")),
  "not_granted": attempt(lambda: snapshot_download("org/gated", token="${OTHER_TOKEN}")),
  "invalid": attempt(lambda: snapshot_download("org/gated", token="hf_unknown")),
  "private_anonymous": attempt(lambda: api.model_info("org/secret")),
  "private_not_granted": attempt(lambda: api.model_info("org/secret", token="${OTHER_TOKEN}")),
}
`,
        await fresh(),
      );
      expect(denied.error).toBeUndefined();
      const d = denied.ok as Record<string, { ok?: unknown; error?: PyError }>;
      // Gated repos show their info to anyone; only the files are held back.
      expect(d.info).toEqual({ ok: 'manual' });
      expect(expectError(d.anonymous as object, 'GatedRepoError', 401).mro).toContain('RepositoryNotFoundError');
      expectError(d.not_granted as object, 'GatedRepoError', 403);
      // An unknown token is neither "not found" nor "gated": the client keeps it a plain HTTP error.
      expectError(d.invalid as object, 'HfHubHTTPError', 401);
      expectError(d.private_anonymous as object, 'RepositoryNotFoundError', 401);
      expectError(d.private_not_granted as object, 'RepositoryNotFoundError', 404);

      const opts = await fresh({ token: GOOD_TOKEN });
      const r = await runPython<string[]>(
        client,
        `
from huggingface_hub import snapshot_download
result = [snapshot_download("org/gated"), snapshot_download("org/secret")]
`,
        opts,
      );
      expect(r.error).toBeUndefined();
      const [gated, secret] = r.ok as string[];
      expect(Object.keys(await filesUnder(gated as string)).sort()).toEqual(['config.json', 'w.bin']);
      expect(await readFile(join(secret as string, 'config.json'), 'utf8')).toBe('{"secret":true}');
    });

    it('a flipped byte is NOT caught by the download (it checks only the size); verify_repo_checksums catches it', async () => {
      hub.corrupt('org/tiny', 'model-00001-of-00002.safetensors', { offset: 1000 });
      hub.corrupt('org/tiny', 'config.json', { offset: 3 });
      try {
        const r = await runPython<{ path: string; mismatches: { path: string; algorithm: string }[] }>(
          client,
          `
from huggingface_hub import snapshot_download, HfApi
path = snapshot_download("org/tiny")
v = HfApi().verify_repo_checksums("org/tiny")
result = {"path": path, "mismatches": [{"path": m["path"], "algorithm": m["algorithm"]} for m in v.mismatches]}
`,
          await fresh(),
        );
        expect(r.error).toBeUndefined();
        const got = r.ok as NonNullable<typeof r.ok>;
        const files = await filesUnder(got.path);
        for (const [path, offset] of [
          ['model-00001-of-00002.safetensors', 1000],
          ['config.json', 3],
        ] as const) {
          const want = Buffer.from(MODEL[path] as Buffer);
          want[offset] = (want[offset] as number) ^ 0xff;
          expect((files[path] as Buffer).equals(want), path).toBe(true);
        }
        expect(got.mismatches.sort((a, b) => a.path.localeCompare(b.path))).toEqual([
          { path: 'config.json', algorithm: 'git-sha1' },
          { path: 'model-00001-of-00002.safetensors', algorithm: 'sha256' },
        ]);
      } finally {
        hub.heal();
      }
    });

    it('RepoNotFound, RevisionNotFound and EntryNotFound are the client’s own error classes', async () => {
      const r = await runPython<Record<string, { ok?: unknown; error?: PyError }>>(
        client,
        `
from huggingface_hub import snapshot_download, hf_hub_download, HfApi
api = HfApi()
result = {
  "repo": attempt(lambda: snapshot_download("org/missing")),
  "repo_file": attempt(lambda: hf_hub_download("org/missing", "config.json")),
  "revision": attempt(lambda: snapshot_download("org/tiny", revision="no-such-branch")),
  "revision_sha": attempt(lambda: hf_hub_download("org/tiny", "config.json", revision="0" * 40)),
  "entry": attempt(lambda: hf_hub_download("org/tiny", "no/such/file.bin")),
  "tree_entry": attempt(lambda: list(api.list_repo_tree("org/tiny", path_in_repo="no-such-dir"))),
  "dataset_as_model": attempt(lambda: api.model_info("org/only-data")),
  "dataset": attempt(lambda: api.dataset_info("org/only-data").id),
}
`,
        await fresh(),
      );
      expect(r.error).toBeUndefined();
      const e = r.ok as Record<string, { ok?: unknown; error?: PyError }>;
      expectError(e.repo as object, 'RepositoryNotFoundError', 401);
      expectError(e.repo_file as object, 'RepositoryNotFoundError', 401);
      expectError(e.revision as object, 'RevisionNotFoundError', 404);
      expectError(e.revision_sha as object, 'RevisionNotFoundError', 404);
      expectError(e.entry as object, 'RemoteEntryNotFoundError', 404);
      expectError(e.tree_entry as object, 'RemoteEntryNotFoundError', 404);
      // A dataset is not a model of the same name.
      expectError(e.dataset_as_model as object, 'RepositoryNotFoundError', 401);
      expect(e.dataset).toEqual({ ok: 'org/only-data' });
    });
  },
);
