import { createHash } from 'node:crypto';
import type { Entry } from '@ferry/core';
import type { ListPage } from '@ferry/meta';
import { describe, expect, it } from 'vitest';
import { decodeCursor, encodeCursor, repoInfo, TREE_PAGE, treeListing, treePage } from './api.js';
import { BlobOids } from './oids.js';
import { contentOf, gitObjectId, lfsPointer, repoFolder, repoRef } from './repos.js';
import { readSnapshot, Snapshots } from './snapshots.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Entries of a repo folder as the metadata lists them (path order), with their bytes. */
function repoOf(folder: string, files: Record<string, Buffer>, mtime = 1_700_000_000_000) {
  const bytes = new Map<string, Buffer>();
  const entries: Entry[] = Object.keys(files)
    .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
    .map((p) => {
      const b = files[p] as Buffer;
      const entry = {
        path: `${folder}/${p}`,
        size: b.length,
        mtime,
        sha256: sha256(b),
        chunks: b.length ? [{ id: `sha256-${sha256(b)}`, size: b.length }] : [],
        version: '1',
      } as unknown as Entry;
      bytes.set(entry.path, b);
      return entry;
    });
  let calls = 0;
  const list = async (dir: string, o: { cursor?: string; limit?: number }): Promise<ListPage> => {
    calls++;
    const all = entries.filter((e) => e.path.startsWith(`${dir}/`));
    const from = Number(o.cursor ?? 0);
    const limit = o.limit ?? 1000;
    const page = all.slice(from, from + limit).map((entry) => ({ kind: 'file' as const, entry }));
    return { items: page, ...(from + limit < all.length ? { cursor: String(from + limit) } : {}) };
  };
  const oids = new BlobOids(async (entry) => bytes.get(entry.path) as Buffer);
  return { entries, list, oids, calls: () => calls };
}

const FILES = {
  'config.json': Buffer.from('{"a":1}\n'),
  'b/x.bin': Buffer.alloc(2048, 7),
  'b/c/y.txt': Buffer.from('y'),
  'z.txt': Buffer.alloc(0),
};

describe('repo names', () => {
  it('maps models and datasets to folders and refuses what the Hub would not name', () => {
    expect(repoFolder('/hf', repoRef('model', 'acme', 'tiny-llm') as never)).toBe('/hf/acme/tiny-llm');
    expect(repoFolder('/hf', repoRef('dataset', 'acme', 'data') as never)).toBe('/hf/datasets/acme/data');
    for (const [org, name] of [
      ['..', 'x'],
      ['a', '..b'],
      ['a', 'b c'],
      ['', 'x'],
      ['a', '.hidden'],
    ]) {
      expect(repoRef('model', org as string, name as string), `${org}/${name}`).toBeUndefined();
    }
    expect(repoRef('model', 'datasets', 'x')).toBeUndefined();
    expect(repoRef('dataset', 'datasets', 'x')).toEqual({ kind: 'dataset', id: 'datasets/x' });
  });
});

describe('revisions', () => {
  it('is one id per file list: the same files give the same id at any time, a changed byte a new one', async () => {
    const a = await readSnapshot(repoOf('/hf/o/r', FILES).list, '/hf/o/r', 1024);
    const later = await readSnapshot(repoOf('/hf/o/r', FILES, 1_800_000_000_000).list, '/hf/o/r', 1024);
    const changed = await readSnapshot(repoOf('/hf/o/r', { ...FILES, 'z.txt': Buffer.from('!') }).list, '/hf/o/r', 1024);
    const { 'z.txt': _, ...rest } = FILES;
    const renamed = await readSnapshot(repoOf('/hf/o/r', { ...rest, 'w.txt': Buffer.alloc(0) }).list, '/hf/o/r', 1024);
    expect(a?.revision).toMatch(/^[0-9a-f]{40}$/);
    expect(later?.revision).toBe(a?.revision);
    expect(changed?.revision).not.toBe(a?.revision);
    expect(renamed?.revision).not.toBe(a?.revision);
    expect(await readSnapshot(repoOf('/hf/o/r', FILES).list, '/hf/o/other', 1024)).toBeUndefined();
  });

  it('a file without a sha256 is named by its chunk list', () => {
    const entry = { path: '/a', size: 3, chunks: [{ id: 'ext-abc', size: 3 }] } as unknown as Entry;
    expect(contentOf(entry)).toMatch(/^[0-9a-f]{64}$/);
    expect(contentOf({ ...entry, chunks: [{ id: 'ext-abd', size: 3 }] } as unknown as Entry)).not.toBe(contentOf(entry));
  });

  it('reads main once per freshMs however many ask; a revision that is neither main nor recorded is not found', async () => {
    const repo = repoOf('/hf/o/r', FILES);
    let now = 0;
    const snapshots = new Snapshots({ list: repo.list, lfsThreshold: 1024, freshMs: 1000, now: () => now });
    const [a, b] = await Promise.all([snapshots.main('/hf/o/r'), snapshots.main('/hf/o/r')]);
    expect(a).toBe(b);
    expect(repo.calls()).toBe(1);
    const old = a?.revision as string;
    // main changes: the old revision was not recorded (no clone), so it is gone; an unknown one too.
    repo.entries.splice(0, 1);
    now = 1500;
    const main = await snapshots.at('/hf/o/r', 'main');
    expect(main.snapshot?.revision).not.toBe(old);
    expect(await snapshots.at('/hf/o/r', old)).toEqual({ repo: true });
    expect(await snapshots.at('/hf/o/r', '0'.repeat(40))).toEqual({ repo: true });
    expect(await snapshots.at('/hf/o/none', 'main')).toEqual({ repo: false });
  });
});

describe('memory', () => {
  it('keeps retained revisions within keepFiles, and main only while it is fresh', async () => {
    const a = repoOf('/hf/o/a', FILES);
    const b = repoOf('/hf/o/b', FILES);
    const list = async (dir: string, o: { cursor?: string; limit?: number }) =>
      dir.startsWith('/hf/o/a') ? a.list(dir, o) : b.list(dir, o);
    const snapshots = new Snapshots({ list, lfsThreshold: 1024, freshMs: 1000, keepFiles: 4, now: () => 0 });
    await snapshots.main('/hf/o/a');
    expect(snapshots.heldFiles).toBe(4);
    // Each repo holds 4 files: keeping b's listing drops a's.
    await snapshots.main('/hf/o/b');
    expect(snapshots.heldFiles).toBe(4);
    const big = new Snapshots({ list, lfsThreshold: 1024, freshMs: 1000, keepFiles: 8, now: () => 0 });
    await big.main('/hf/o/a');
    await big.main('/hf/o/b');
    expect(big.heldFiles).toBe(8);
  });
});

describe('tree and info', () => {
  it('lists folders before what they hold, in git order; a folder that is not there is undefined', async () => {
    const repo = repoOf('/hf/o/r', FILES);
    const snapshot = (await readSnapshot(repo.list, '/hf/o/r', 1024)) as NonNullable<Awaited<ReturnType<typeof readSnapshot>>>;
    const names = (items: ReturnType<typeof treeListing>) => items?.map((i) => ('dir' in i ? `${i.dir}/` : i.path));
    expect(names(treeListing(snapshot, '', false))).toEqual(['b/', 'config.json', 'z.txt']);
    expect(names(treeListing(snapshot, '', true))).toEqual(['b/', 'b/c/', 'b/c/y.txt', 'b/x.bin', 'config.json', 'z.txt']);
    expect(names(treeListing(snapshot, 'b', false))).toEqual(['b/c/', 'b/x.bin']);
    expect(treeListing(snapshot, 'nope', true)).toBeUndefined();

    const page = await treePage(snapshot, treeListing(snapshot, '', true) ?? [], 0, repo.oids);
    const big = page.find((i) => i.path === 'b/x.bin');
    const x = FILES['b/x.bin'];
    expect(big).toEqual({
      type: 'file',
      path: 'b/x.bin',
      size: 2048,
      oid: gitObjectId('blob', lfsPointer(sha256(x), 2048)),
      lfs: { oid: sha256(x), size: 2048, pointerSize: lfsPointer(sha256(x), 2048).length },
    });
    expect(page.find((i) => i.path === 'config.json')?.oid).toBe(gitObjectId('blob', FILES['config.json']));
    expect(page.find((i) => i.path === 'z.txt')?.oid).toBe('e69de29bb2d1d6434b8b29ae775ad8c2e48c5391');
    expect(page.find((i) => i.path === 'b/c')).toMatchObject({ type: 'directory', size: 0 });

    const info = await repoInfo({ kind: 'model', id: 'o/r' }, snapshot, { blobs: true, expand: [] }, repo.oids);
    expect(info).toMatchObject({
      id: 'o/r',
      modelId: 'o/r',
      sha: snapshot.revision,
      lastModified: new Date(1_700_000_000_000).toISOString(),
    });
    expect((info.siblings as unknown[]).length).toBe(4);
    const only = await repoInfo({ kind: 'dataset', id: 'o/r' }, snapshot, { blobs: false, expand: ['sha'] }, repo.oids);
    expect(only).toEqual({ _id: expect.any(String), id: 'o/r', sha: snapshot.revision });
  });

  it('pages a tree by an opaque cursor and refuses one it did not make', async () => {
    const many: Record<string, Buffer> = {};
    for (let i = 0; i < TREE_PAGE + 5; i++) many[`f${String(i).padStart(5, '0')}`] = Buffer.from(String(i));
    const repo = repoOf('/hf/o/many', many);
    const snapshot = (await readSnapshot(repo.list, '/hf/o/many', 1024)) as NonNullable<Awaited<ReturnType<typeof readSnapshot>>>;
    const items = treeListing(snapshot, '', false) ?? [];
    expect((await treePage(snapshot, items, 0, repo.oids)).length).toBe(TREE_PAGE);
    const rest = await treePage(snapshot, items, decodeCursor(encodeCursor(TREE_PAGE)), repo.oids);
    expect(rest.map((i) => i.path)).toEqual(['f01000', 'f01001', 'f01002', 'f01003', 'f01004']);
    expect(() => decodeCursor('not a cursor!')).toThrow(/Invalid cursor/);
  });
});
