import { createHash } from 'node:crypto';
import {
  type ChunkId,
  CorruptError,
  chunkKey,
  type Entry,
  InvalidArgumentError,
  type Logger,
  type NewEntry,
  NotFoundError,
  nativeChunkId,
  silentLogger,
} from '@ferry/core';
import type { Meta } from '@ferry/meta';
import type { HfStore, HfTreeFile, ObjectStore } from '@ferry/stores';
import { commitPastClaims } from './commit.js';
import { importedEntry } from './entries.js';

/**
 * `ferry import hf://org/name[@revision] <path>`: a Hugging Face repo at one commit as files under
 * `<path>`, metadata only for LFS files. An LFS file becomes an external file whose origin is the
 * commit's resolve URL (never a signed CDN location) with the Hub's sha256 as its etag and as the
 * entry's sha256, so every origin read checks the etag and a whole-file check the hash. A small
 * file is fetched, checked against its git blob id and stored as native chunks in the region's
 * store. A re-import commits only what changed (an LFS file by its sha256, a small one by its
 * bytes) and removes what the commit no longer has, so the folder is exactly the commit's files.
 */

export interface HubImportOptions {
  meta: Meta;
  /** The source region's store: small files are written there as native chunks. */
  store: ObjectStore;
  hub: HfStore;
  /** A branch or a 40-hex commit id. */
  revision: string;
  target: string;
  chunkSize: number;
  dryRun?: boolean;
  logger?: Logger;
  /** The bytes of small files to fetch, once the tree is read (a progress bar's total). */
  onTotal?: (bytes: number) => void;
  /** Bytes of small files fetched so far, as they come. */
  onBytes?: (bytes: number) => void;
}

export interface HubImportSummary {
  repo: string;
  revision: string;
  commit: string;
  target: string;
  files: number;
  lfsFiles: number;
  /** Small files fetched (and their bytes): LFS files are never read. */
  smallFiles: number;
  smallBytes: number;
  committed: number;
  removed: number;
  dryRun: boolean;
}

const SMALL_AT_ONCE = 8;

function gitBlobId(bytes: Buffer): string {
  return createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex');
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export async function importHub(options: HubImportOptions): Promise<HubImportSummary> {
  const { meta, store, hub, target, chunkSize } = options;
  const log = options.logger ?? silentLogger;
  if (target === '/') throw new InvalidArgumentError('import hf://…: give the repo a folder of its own, not /');
  const { sha, date } = await hub.commit(options.revision);
  const files: HfTreeFile[] = [];
  for await (const page of hub.files(sha)) files.push(...page);
  const existing = new Map<string, Entry>();
  for (const e of await meta.filesUnder(target).catch((err) => (err instanceof NotFoundError ? [] : Promise.reject(err)))) {
    existing.set(e.path, e);
  }
  const summary: HubImportSummary = {
    repo: hub.url,
    revision: options.revision,
    commit: sha,
    target,
    files: files.length,
    lfsFiles: 0,
    smallFiles: 0,
    smallBytes: 0,
    committed: 0,
    removed: 0,
    dryRun: options.dryRun ?? false,
  };
  const changed: NewEntry[] = [];
  const smallChunks = new Map<ChunkId, Buffer>();
  const small: HfTreeFile[] = [];
  for (const file of files) {
    const path = `${target}/${file.path}`;
    if (!file.lfs) {
      small.push(file);
      continue;
    }
    summary.lfsFiles += 1;
    const old = existing.get(path);
    // The same bytes at another commit: the old commit's resolve URL stays valid (commits are immutable).
    if (old?.origin?.store === hub.url && old.origin.etag === file.lfs.oid && old.size === file.lfs.size) continue;
    const info = { key: `${sha}/${file.path}`, etag: file.lfs.oid, size: file.lfs.size, lastModified: date };
    changed.push({ ...importedEntry(hub.url, path, info, chunkSize), sha256: file.lfs.oid });
  }
  options.onTotal?.(small.reduce((n, f) => n + f.size, 0));
  // Small files a few at a time: fetched, checked against the git blob id the tree gave, chunked.
  for (let i = 0; i < small.length; i += SMALL_AT_ONCE) {
    await Promise.all(
      small.slice(i, i + SMALL_AT_ONCE).map(async (file) => {
        const path = `${target}/${file.path}`;
        const bytes = await hub.bytes(`${sha}/${file.path}`);
        summary.smallFiles += 1;
        summary.smallBytes += bytes.length;
        options.onBytes?.(bytes.length);
        if (gitBlobId(bytes) !== file.oid) {
          throw new CorruptError(`${hub.url} ${file.path} at ${sha}: the bytes do not hash to the git blob id ${file.oid} the repo lists`);
        }
        const whole = sha256(bytes);
        const old = existing.get(path);
        if (old && !old.origin && old.sha256 === whole) return;
        const chunks = [];
        for (let at = 0; at < bytes.length; at += chunkSize) {
          const part = bytes.subarray(at, Math.min(bytes.length, at + chunkSize));
          const id = nativeChunkId(sha256(part));
          smallChunks.set(id, part);
          chunks.push({ id, size: part.length });
        }
        changed.push({ path, size: bytes.length, mtime: date, sha256: whole, chunkSize, chunks });
      }),
    );
  }
  const wanted = new Set(files.map((f) => `${target}/${f.path}`));
  const gone = [...existing.keys()].filter((p) => !wanted.has(p));
  summary.committed = changed.length;
  summary.removed = gone.length;
  if (options.dryRun) return summary;
  const upload = async (ids: Iterable<ChunkId>) => {
    for (const id of ids) {
      const part = smallChunks.get(id);
      if (part) await store.put(chunkKey(id), part, { sha256: id.slice('sha256-'.length) });
    }
  };
  if (changed.length > 0) {
    await upload(smallChunks.keys());
    await commitPastClaims(meta, changed, (chunks) => upload(chunks as ChunkId[]));
  }
  for (const path of gone) await meta.delete(path);
  log.info({ repo: hub.url, commit: sha, committed: changed.length, removed: gone.length }, 'imported a Hugging Face repo');
  return summary;
}
