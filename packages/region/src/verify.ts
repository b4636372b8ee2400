import { randomUUID } from 'node:crypto';
import {
  type ChunkId,
  chunkDigest,
  chunkKey,
  type Entry,
  forEachLimit,
  isNativeChunkId,
  type Logger,
  messageOf,
  NotFoundError,
  normalizePath,
  sha256OfStream,
} from '@ferry/core';
import { GcMeta, verifySeenKey } from '@ferry/meta';
import type { RegionReader } from '@ferry/reader';
import { openReader } from './reading.js';
import type { Region } from './region.js';
import { type ChunkUse, repairChunks } from './repair.js';

/** Chunks read at once. */
const VERIFY_CONCURRENCY = 4;
/** Entries per scan page when the whole volume is verified. */
const SCAN_PAGE = 500;

export interface VerifyOptions {
  /** A file or folder; the whole volume when absent. */
  path?: string;
  /** Copy bad and missing chunks again and wait for them (see repair.ts). */
  repair?: boolean;
  /** Percent of chunks to check (0 < P ≤ 100, chosen at random); all when absent. */
  samplePercent?: number;
  /** Waits before each read so a background scrub stays under its rate (scrub.bytesPerSecond). */
  throttle?: { take(bytes: number): Promise<void> };
  /** Called before each page; throwing stops the pass (a lost lease). */
  check?: () => void;
  /** How long a repair waits for its copies (default 10 minutes). */
  repairTimeoutMs?: number;
  logger?: Logger;
}

export type ChunkProblem = 'missing' | 'corrupt' | 'origin-changed';

export interface BadChunk {
  chunk: string;
  problem: ChunkProblem;
  detail: string;
  /** Files that use the chunk. */
  files: string[];
  repaired: boolean;
}

export interface VerifyReport {
  region: string;
  path: string;
  /** Chunks checked and their bytes. */
  chunks: number;
  bytes: number;
  bad: BadChunk[];
  repaired: number;
  /** In a mirror: chunks not copied yet (the missing set), left to replication, not checked. */
  pending: number;
  /** Imported files whose bytes, read whole, do not hash to the sha256 their origin advertised. */
  badFiles: Array<{ path: string; detail: string }>;
}

/**
 * Check that the region's store holds every chunk of a path (or of the volume) and that each
 * hashes to its id: sha256 for native chunks; for imported (`ext-`) chunks the size, and the
 * sha256 recorded at import when there is one. In the source region an imported chunk lives at
 * its origin, which is checked for the etag and size the entry recorded (the origin is not ours
 * to repair). Walks entries page by page; with `repair`, bad chunks are copied again.
 */
export async function verifyRegion(region: Region, options: VerifyOptions = {}): Promise<VerifyReport> {
  const path = options.path === undefined ? '/' : normalizePath(options.path);
  const gc = new GcMeta({ redis: region.redis, keys: region.meta.keys, mirror: !region.isSource });
  const report: VerifyReport = { region: region.name, path, chunks: 0, bytes: 0, bad: [], repaired: 0, pending: 0, badFiles: [] };
  // Imported files whose origin advertised a sha256 (a Hub's lfs.oid): hashed whole, once each.
  const claimReader = openReader(region, { memoryBytes: 0, cache: false });
  const bad = new Map<string, { use: ChunkUse; problem: ChunkProblem; detail: string }>();
  // Which chunks were met already: a path's entries are read whole anyway, so a set in memory;
  // the whole volume's chunks may be tens of millions, so a set in Redis, dropped at the end.
  const seenKey = options.path === undefined ? verifySeenKey(region.volume, randomUUID()) : undefined;
  const seenHere = new Set<string>();
  const firstSeen = async (ids: string[]): Promise<boolean[]> => {
    if (seenKey) return gc.firstSeen(seenKey, ids);
    return ids.map((id) => !seenHere.has(id) && Boolean(seenHere.add(id)));
  };
  const sums = new Map<string, string | null>();
  try {
    for await (const entries of walk(region, options.path === undefined ? undefined : path)) {
      options.check?.();
      const all = chunkUses(entries);
      const first = await firstSeen(all.map((u) => u.id));
      let uses = all.filter((_, i) => first[i] && sampled(options.samplePercent));
      if (region.mirror && uses.length > 0) {
        // A mirror that is catching up lacks these by design: not bit rot, and already queued.
        const pending = new Set<string>(await region.mirror.missing(uses.map((u) => u.id)));
        report.pending += pending.size;
        uses = uses.filter((u) => !pending.has(u.id));
      }
      const recorded = await gc.exthash(uses.map((u) => u.id));
      for (const [i, u] of uses.entries()) if (recorded[i]) sums.set(u.id, recorded[i] ?? null);
      await forEachLimit(uses, VERIFY_CONCURRENCY, async (use) => {
        await options.throttle?.take(use.size);
        const problem = await checkChunk(region, use, sums.get(use.id) ?? null);
        report.chunks += 1;
        report.bytes += use.size;
        if (problem) bad.set(use.id, { use, ...problem });
      });
      // Recorded hashes are kept only for what a repair will check again.
      for (const use of uses) if (!bad.has(use.id)) sums.delete(use.id);
      for (const entry of entries) {
        if (!entry.origin || !entry.sha256 || entry.chunks.some((c) => bad.has(c.id))) continue;
        await options.throttle?.take(entry.size);
        const problem = await checkClaim(claimReader, entry);
        if (problem) report.badFiles.push({ path: entry.path, detail: problem });
      }
    }
  } finally {
    if (seenKey) await gc.dropSeen(seenKey).catch(() => {});
  }
  const files = await filesOf(region, options.path === undefined ? undefined : path, new Set(bad.keys()));
  let repaired = new Set<string>();
  if (options.repair && bad.size > 0) {
    repaired = await repairChunks(
      region,
      [...bad.values()].map((b) => b.use),
      {
        timeoutMs: options.repairTimeoutMs ?? 600_000,
        ...(options.logger ? { logger: options.logger } : {}),
      },
    );
    // A copy counts as a repair once the store holds it whole.
    for (const id of [...repaired]) {
      const b = bad.get(id);
      if (b && (await checkChunk(region, b.use, sums.get(id) ?? null))) repaired.delete(id);
    }
  }
  for (const [chunk, b] of bad) {
    report.bad.push({
      chunk,
      problem: b.problem,
      detail: b.detail,
      files: files.get(chunk) ?? [b.use.entry.path],
      repaired: repaired.has(chunk),
    });
  }
  report.repaired = repaired.size;
  await gc.record(
    { 'verified-chunks': report.chunks - bad.size, 'bad-chunks': bad.size + report.badFiles.length, 'repaired-chunks': repaired.size },
    // The last check's own figures: what is bad now (as far as it looked), beside the totals.
    {
      'last-verify-at': Date.now(),
      'last-verify-path': path,
      'last-verify-chunks': report.chunks,
      'last-verify-bad': bad.size - repaired.size,
      'last-verify-repaired': repaired.size,
    },
  );
  options.logger?.info({ region: region.name, path, chunks: report.chunks, bad: bad.size, repaired: repaired.size }, 'verify');
  return report;
}

/** Why an imported file's bytes do not match the sha256 its origin advertised, or undefined when they do. */
async function checkClaim(reader: RegionReader, entry: Entry): Promise<string | undefined> {
  try {
    const { sha256 } = await sha256OfStream(reader.stream(entry));
    return sha256 === entry.sha256 ? undefined : `its bytes hash to sha256 ${sha256}, not the ${entry.sha256} its origin advertised`;
  } catch (err) {
    return `its bytes could not be read whole: ${messageOf(err)}`;
  }
}

function sampled(percent: number | undefined): boolean {
  return percent === undefined || percent >= 100 || Math.random() * 100 < percent;
}

/** Entries of a path (one read), or of the volume page by page. */
async function* walk(region: Region, path: string | undefined): AsyncGenerator<Entry[]> {
  if (path !== undefined) {
    const entries = await region.meta.filesUnder(path);
    for (let i = 0; i < entries.length; i += SCAN_PAGE) yield entries.slice(i, i + SCAN_PAGE);
    return;
  }
  let cursor: string | undefined;
  do {
    const page = await region.meta.scanEntries({ ...(cursor ? { cursor } : {}), count: SCAN_PAGE });
    yield page.entries;
    cursor = page.cursor;
  } while (cursor);
}

/** Each chunk of these entries once, with the first file and offset it was found at. */
export function chunkUses(entries: Entry[]): ChunkUse[] {
  const uses = new Map<string, ChunkUse>();
  for (const entry of entries) {
    let offset = 0;
    for (const ref of entry.chunks) {
      if (!uses.has(ref.id)) uses.set(ref.id, { id: ref.id, size: ref.size, entry, offset });
      offset += ref.size;
    }
  }
  return [...uses.values()];
}

/** Every file that uses one of `chunks` (a second walk, only when some chunk was bad). */
async function filesOf(region: Region, path: string | undefined, chunks: Set<string>): Promise<Map<string, string[]>> {
  const files = new Map<string, string[]>();
  if (chunks.size === 0) return files;
  for await (const entries of walk(region, path)) {
    for (const entry of entries) {
      for (const id of new Set(entry.chunks.map((c) => c.id as string))) {
        if (!chunks.has(id)) continue;
        const list = files.get(id) ?? [];
        if (!list.includes(entry.path)) list.push(entry.path);
        files.set(id, list);
      }
    }
  }
  for (const list of files.values()) list.sort();
  return files;
}

/** What is wrong with one chunk in the region, or undefined when it is whole. */
async function checkChunk(
  region: Region,
  use: ChunkUse,
  recordedSha: string | null,
): Promise<{ problem: ChunkProblem; detail: string } | undefined> {
  const native = isNativeChunkId(use.id);
  if (!native && region.isSource) return checkOrigin(region, use);
  const expected = native ? chunkDigest(use.id) : recordedSha;
  try {
    const { sha256, bytes } = await digestOf(region, use.id);
    if (bytes !== use.size) return { problem: 'corrupt', detail: `${bytes} bytes in the store, expected ${use.size}` };
    if (expected && sha256 !== expected) return { problem: 'corrupt', detail: `sha256 ${sha256} in the store, expected ${expected}` };
    return undefined;
  } catch (err) {
    if (err instanceof NotFoundError) return { problem: 'missing', detail: `no object ${chunkKey(use.id)} in the store` };
    throw err;
  }
}

/** The sha256 and length of a chunk's object in the region's store, streamed through the hash pool. */
export async function digestOf(region: Region, id: ChunkId): Promise<{ sha256: string; bytes: number }> {
  const { body } = await region.store.get(chunkKey(id));
  return sha256OfStream(body);
}

/** An imported chunk in the source: the origin object still has the entry's etag and covers the chunk. */
async function checkOrigin(region: Region, use: ChunkUse): Promise<{ problem: ChunkProblem; detail: string } | undefined> {
  const origin = use.entry.origin;
  if (!origin) return { problem: 'missing', detail: 'an imported chunk whose file records no origin' };
  try {
    const info = await region.origins.open(origin.store).head(origin.key);
    if (info.etag !== origin.etag)
      return { problem: 'origin-changed', detail: `origin ${origin.key} has etag ${info.etag}, imported at ${origin.etag}` };
    if (info.size < use.offset + use.size)
      return { problem: 'origin-changed', detail: `origin ${origin.key} is ${info.size} bytes, too short` };
    return undefined;
  } catch (err) {
    if (err instanceof NotFoundError)
      return { problem: 'missing', detail: `origin ${origin.store} ${origin.key} is gone: ${messageOf(err)}` };
    throw err;
  }
}
