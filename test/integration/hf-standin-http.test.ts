import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HubStandIn, startHubStandIn } from '../support/hf-hub.js';
import { gitObjectId, lfsPointer } from '../support/hf-repos.js';

// The Hub stand-in's HTTP details that need no Python client: signed CDN URLs (expiry, forged
// signatures), ranges, the error shape, and blob, tree and commit ids checked against git itself.
// hf-standin.test.ts proves the rest with the real huggingface_hub client.

const execFileP = promisify(execFile);
const KiB = 1024;
const LFS_THRESHOLD = 64 * KiB;
const DATE = new Date('2026-01-02T03:04:05Z');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('the Hub stand-in without a client', () => {
  let hub: HubStandIn;
  let clock = Date.now();
  const big = randomBytes(80 * KiB);
  const small = Buffer.from('{"a":1}\n');

  beforeAll(async () => {
    hub = await startHubStandIn({ lfsThreshold: LFS_THRESHOLD, signedUrlTtlMs: 60_000, now: () => clock });
    hub.setRepo('org/m', { files: { 'config.json': small, 'w.bin': big }, date: DATE });
  });
  afterAll(async () => {
    await hub?.close();
  });

  it('signs CDN URLs that expire, refuses a wrong signature, and answers ranges', async () => {
    const head = await fetch(`${hub.url}/org/m/resolve/main/w.bin`, { method: 'HEAD', redirect: 'manual' });
    expect(head.status).toBe(302);
    expect(head.headers.get('x-linked-etag')).toBe(`"${sha256(big)}"`);
    expect(head.headers.get('x-linked-size')).toBe(String(big.length));
    expect(head.headers.get('x-repo-commit')).toBe(hub.head('org/m'));
    const location = head.headers.get('location') as string;
    expect(new URL(location).hostname).toBe('localhost');

    const whole = await fetch(location);
    expect(whole.status).toBe(200);
    expect(whole.headers.get('accept-ranges')).toBe('bytes');
    expect(Buffer.from(await whole.arrayBuffer()).equals(big)).toBe(true);
    const part = await fetch(location, { headers: { Range: 'bytes=100-199' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 100-199/${big.length}`);
    expect(Buffer.from(await part.arrayBuffer()).equals(big.subarray(100, 200))).toBe(true);
    const tail = await fetch(location, { headers: { Range: 'bytes=-10' } });
    expect(Buffer.from(await tail.arrayBuffer()).equals(big.subarray(-10))).toBe(true);
    expect((await fetch(location, { headers: { Range: `bytes=${big.length}-` } })).status).toBe(416);

    const forged = new URL(location);
    forged.searchParams.set('expires', String(Number(forged.searchParams.get('expires')) + 1));
    expect((await fetch(forged)).status).toBe(403);
    clock += 60_001;
    const expired = await fetch(location);
    expect(expired.status).toBe(403);
    expect(await expired.text()).toContain('expired');
  });

  it('serves small files itself with their git blob id as ETag, and ranges', async () => {
    const r = await fetch(`${hub.url}/org/m/resolve/${hub.head('org/m')}/config.json`);
    expect(r.status).toBe(200);
    expect(r.headers.get('etag')).toBe(`"${gitObjectId('blob', small)}"`);
    expect(Buffer.from(await r.arrayBuffer()).equals(small)).toBe(true);
    const part = await fetch(`${hub.url}/org/m/resolve/main/config.json`, { headers: { Range: 'bytes=2-4' } });
    expect(part.status).toBe(206);
    expect(await part.text()).toBe(small.subarray(2, 5).toString());
    const missing = await fetch(`${hub.url}/org/m/resolve/main/nope`);
    expect([missing.status, missing.headers.get('x-error-code')]).toEqual([404, 'EntryNotFound']);
    expect(await missing.json()).toEqual({ error: 'Entry not found' });
  });

  it('a commit on a new branch leaves main alone; revisions by name or full sha; info keeps only what expand asks', async () => {
    const main = hub.head('org/m');
    const dev = hub.commit('org/m', { branch: 'feature/x', files: { 'config.json': '{"a":2}\n' }, message: 'try' });
    expect(hub.head('org/m')).toBe(main);
    const infoAt = async (rev: string) =>
      (await (await fetch(`${hub.url}/api/models/org/m/revision/${encodeURIComponent(rev)}`)).json()) as { sha: string };
    expect((await infoAt('feature/x')).sha).toBe(dev);
    expect((await infoAt(main)).sha).toBe(main);
    const unknown = await fetch(`${hub.url}/api/models/org/m/revision/${'f'.repeat(40)}`);
    expect([unknown.status, unknown.headers.get('x-error-code')]).toEqual([404, 'RevisionNotFound']);
    const refs = (await (await fetch(`${hub.url}/api/models/org/m/refs`)).json()) as { branches: { name: string; targetCommit: string }[] };
    expect(refs.branches.map((b) => [b.name, b.targetCommit]).sort()).toEqual([
      ['feature/x', dev],
      ['main', main],
    ]);
    const changed = await fetch(`${hub.url}/org/m/resolve/${encodeURIComponent('feature/x')}/config.json`);
    expect([changed.headers.get('x-repo-commit'), await changed.text()]).toEqual([dev, '{"a":2}\n']);
    const some = (await (await fetch(`${hub.url}/api/models/org/m?expand=sha&expand=private`)).json()) as object;
    expect(Object.keys(some).sort()).toEqual(['_id', 'id', 'private', 'sha']);
  });

  it('computes blob, tree and commit ids exactly as git does', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-hf-git-'));
    try {
      const files: Record<string, Buffer> = {
        'config.json': small,
        'w.bin': big,
        'a/b/c.txt': Buffer.from('deep\n'),
        'a/b.txt': Buffer.from('beside a folder named b\n'),
        'a-b.txt': Buffer.from('sorts between a and a/\n'),
        'x y.md': Buffer.alloc(0),
      };
      const sha = hub.setRepo('org/git', { files, message: 'initial commit', date: DATE });
      // What git stores: the bytes of a small file, the pointer of an LFS one.
      for (const [path, bytes] of Object.entries(files)) {
        await mkdir(dirname(join(dir, path)), { recursive: true });
        await writeFile(join(dir, path), bytes.length > LFS_THRESHOLD ? lfsPointer(sha256(bytes), bytes.length) : bytes);
      }
      const seconds = `${Math.floor(DATE.getTime() / 1000)} +0000`;
      const env = {
        ...process.env,
        GIT_AUTHOR_NAME: 'Ferry Test',
        GIT_AUTHOR_EMAIL: 'test@ferry.invalid',
        GIT_AUTHOR_DATE: seconds,
        GIT_COMMITTER_NAME: 'Ferry Test',
        GIT_COMMITTER_EMAIL: 'test@ferry.invalid',
        GIT_COMMITTER_DATE: seconds,
      };
      const git = async (...args: string[]) => (await execFileP('git', args, { cwd: dir, env })).stdout.trim();
      await git('init', '-q');
      await git('add', '-A');
      const tree = await git('write-tree');
      expect(await git('commit-tree', tree, '-m', 'initial commit')).toBe(sha);

      const listing = (await (await fetch(`${hub.url}/api/models/org/git/tree/main?recursive=true`)).json()) as {
        path: string;
        oid: string;
        type: string;
      }[];
      const lsTree = (await git('ls-tree', '-r', '-t', tree)).split('\n').map((line) => {
        const [meta, path] = line.split('\t') as [string, string];
        const [, type, oid] = meta.split(' ') as [string, string, string];
        return { path, oid, type: type === 'tree' ? 'directory' : 'file' };
      });
      expect(listing.map(({ path, oid, type }) => ({ path, oid, type }))).toEqual(lsTree);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
