import {
  type ChunkRef,
  type Entry,
  InvalidArgumentError,
  InvalidPathError,
  type NewEntry,
  normalizePath,
  type Origin,
  parseChunkId,
} from '@ferry/core';

/*
 * How entries are written to Redis. The Lua scripts never re-encode an entry (cjson would turn
 * `[]` into `{}`, escape "/" and round big numbers); they splice strings instead, so the layout is
 * fixed here and nowhere else:
 *
 *   stored (entries hash):  {"version":"<id>","path":<path JSON>,<rest>
 *   change record `put`:    {"path":<path JSON>,<rest>
 *
 * where <rest> is the entry's other fields as JSON without the opening brace (`"size":…}`).
 * A path's JSON is the path in quotes with `"` escaped: normalised paths contain no backslash or
 * control character, which is what makes that the same text JSON.stringify produces.
 */

const SHA256_HEX = /^[0-9a-f]{64}$/;
// A lone UTF-16 surrogate cannot be encoded as UTF-8: the hash key and the JSON would differ.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** A normalised volume path that Redis stores as the same text (see LONE_SURROGATE). */
export function volumePath(input: string, what: string): string {
  const path = normalizePath(input);
  if (LONE_SURROGATE.test(path)) throw new InvalidPathError(`${what} ${JSON.stringify(path)}: contains an unpaired UTF-16 surrogate`);
  return path;
}

/** A normalised path that can name a file (not the root). */
export function filePath(input: string, what: string): string {
  const path = volumePath(input, what);
  if (path === '/') throw new InvalidPathError(`${what} /: the root is a directory, not a file`);
  return path;
}

function fail(path: string, problem: string): never {
  throw new InvalidArgumentError(`invalid entry ${path}: ${problem}`);
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function validChunks(path: string, chunks: unknown, chunkSize: number, size: number): ChunkRef[] {
  if (!Array.isArray(chunks)) fail(path, 'chunks must be an array');
  let total = 0;
  const out = chunks.map((chunk: Partial<ChunkRef> | null, i): ChunkRef => {
    const id = parseChunkId(chunk?.id);
    const n = chunk?.size;
    if (!isCount(n) || n === 0 || n > chunkSize) fail(path, `chunk ${i} has size ${n}, expected 1..${chunkSize}`);
    if (i < chunks.length - 1 && n !== chunkSize) fail(path, `chunk ${i} has size ${n}; all but the last must be ${chunkSize}`);
    total += n;
    return { id, size: n };
  });
  if (total !== size) fail(path, `size ${size} does not match its chunks (${total} bytes)`);
  return out;
}

function validOrigin(path: string, origin: Partial<Origin>): Origin {
  const { store, key, etag, size, lastModified } = origin;
  if (typeof store !== 'string' || store === '') fail(path, 'origin.store must be a non-empty string');
  if (typeof key !== 'string' || key === '') fail(path, 'origin.key must be a non-empty string');
  if (typeof etag !== 'string' || etag === '') fail(path, 'origin.etag must be a non-empty string');
  if (!isCount(size)) fail(path, `origin.size ${size} is not a whole number of bytes`);
  if (typeof lastModified !== 'number' || !Number.isFinite(lastModified)) fail(path, 'origin.lastModified must be a number');
  return { store, key, etag, size, lastModified };
}

/**
 * A validated copy of an entry in canonical field order, unknown fields dropped. Sizes must add
 * up (sum of chunk sizes = size, fixed-size chunks but the last) because readers compute byte
 * offsets from them.
 */
export function validateNewEntry(input: NewEntry): NewEntry {
  if (input === null || typeof input !== 'object') throw new InvalidArgumentError('invalid entry: expected an object');
  const path = filePath(input.path, 'invalid entry');
  const { size, mtime, sha256, chunkSize } = input;
  if (!isCount(size)) fail(path, `size ${size} is not a whole number of bytes`);
  if (typeof mtime !== 'number' || !Number.isFinite(mtime)) fail(path, `mtime ${mtime} is not a number of ms`);
  if (!isCount(chunkSize) || chunkSize === 0) fail(path, `chunkSize ${chunkSize} is not a positive whole number`);
  if (sha256 !== undefined && (typeof sha256 !== 'string' || !SHA256_HEX.test(sha256)))
    fail(path, 'sha256 must be 64 lowercase hex digits');
  const entry: NewEntry = { path, size, mtime: Math.trunc(mtime), chunkSize, chunks: validChunks(path, input.chunks, chunkSize, size) };
  if (sha256 !== undefined) entry.sha256 = sha256;
  if (input.origin !== undefined) entry.origin = validOrigin(path, input.origin ?? {});
  return entry;
}

/** The text after `"path":<path JSON>,` in both layouts: every field but version and path. */
export function entryRest(entry: NewEntry): string {
  const body: Record<string, unknown> = { size: entry.size, mtime: entry.mtime };
  if (entry.sha256 !== undefined) body.sha256 = entry.sha256;
  body.chunkSize = entry.chunkSize;
  body.chunks = entry.chunks.map((c) => ({ id: c.id, size: c.size }));
  if (entry.origin !== undefined) body.origin = entry.origin;
  return JSON.stringify(body).slice(1);
}

/** The entries-hash value of an entry (what the scripts write; a mirror should store the same). */
export function encodeStoredEntry(entry: Entry): string {
  return `{"version":${JSON.stringify(entry.version)},"path":${JSON.stringify(entry.path)},${entryRest(entry)}`;
}

/** An entry as it appears in a change record's `put` array (no version: it is the record id). */
export function encodeLogEntry(entry: NewEntry): string {
  return `{"path":${JSON.stringify(entry.path)},${entryRest(entry)}`;
}

/** Parse an entries-hash value. */
export function decodeStoredEntry(json: string): Entry {
  const entry = JSON.parse(json) as Entry;
  if (typeof entry?.path !== 'string' || typeof entry.version !== 'string' || !Array.isArray(entry.chunks)) {
    throw new InvalidArgumentError(`malformed entry in Redis: ${json.slice(0, 120)}`);
  }
  return entry;
}

/** Space-separated chunk ids, one per occurrence, as the scripts take them (ids contain no spaces). */
export function chunkIdList(entry: NewEntry): string {
  return entry.chunks.map((c) => c.id).join(' ');
}
