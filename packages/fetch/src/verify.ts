import { type ChunkId, type ChunkRef, CorruptError, chunkDigest, isNativeChunkId, sha256Of, VerifyingStream } from '@ferry/core';

/**
 * The sha256 of external chunks as a region knows them. An external id names where the bytes
 * are (origin, etag, range), not what they are, so the first verified copy — read from the origin
 * under its etag guard — records its hash, and every later copy is checked against it.
 */
export interface KnownHashes {
  get(id: ChunkId): Promise<string | undefined>;
  /** Record the hash of a first verified copy; resolves to the hash that holds (an earlier record wins). */
  record?(id: ChunkId, sha256: string): Promise<string>;
}

/**
 * Check bytes against a chunk id: sha256 for native chunks; for external ones the sha256 the
 * region recorded for it when known, else the length (the read was guarded by the origin's etag).
 * Rejects with CorruptError naming `where`. The hash runs on the hash pool. Resolves to the bytes'
 * sha256 when it was computed; `hash` computes it even with nothing to check it against.
 */
export async function verifyChunk(
  ref: ChunkRef,
  bytes: Uint8Array,
  where: string,
  knownSha256?: string,
  options: { hash?: boolean } = {},
): Promise<string | undefined> {
  if (bytes.length !== ref.size) throw new CorruptError(`chunk ${ref.id} from ${where}: ${bytes.length} bytes, expected ${ref.size}`);
  const expected = isNativeChunkId(ref.id) ? chunkDigest(ref.id) : knownSha256;
  if (expected === undefined && !options.hash) return undefined;
  const sha256 = await sha256Of(bytes);
  if (expected !== undefined && sha256 !== expected) throw new CorruptError(`chunk ${ref.id} from ${where}: sha256 mismatch`);
  return sha256;
}

/**
 * Record the hash of an external chunk's first verified copy; a different hash recorded first
 * means these bytes are not the ones the region already serves (CorruptError).
 */
export async function establishHash(hashes: KnownHashes, ref: ChunkRef, sha256: string, where: string): Promise<void> {
  if (isNativeChunkId(ref.id) || !hashes.record) return;
  const held = await hashes.record(ref.id, sha256);
  if (held !== sha256) throw new CorruptError(`chunk ${ref.id} from ${where}: sha256 differs from the copy this region verified first`);
}

/**
 * The streaming form of `verifyChunk`, for copies that never hold a whole chunk: a pass-through
 * that fails with CorruptError before it ends when the bytes do not match, so a store `put` fed
 * by it never commits a bad copy.
 */
export function chunkVerifier(ref: ChunkRef, where: string, knownSha256?: string): VerifyingStream {
  const sha256 = isNativeChunkId(ref.id) ? chunkDigest(ref.id) : knownSha256;
  return new VerifyingStream({ ...(sha256 ? { sha256 } : {}), length: ref.size, what: `chunk ${ref.id} from ${where}` });
}

/**
 * `chunkVerifier` with the region's known hashes: an external chunk is checked against its
 * recorded sha256, and when it has none and `establish` is set (the bytes come from the origin
 * under its etag guard) the copy's hash is recorded before the stream ends, so a put fed by it
 * commits only bytes the region agrees on.
 */
export async function hashedChunkVerifier(
  ref: ChunkRef,
  where: string,
  options: { hashes?: KnownHashes; establish?: boolean } = {},
): Promise<VerifyingStream> {
  const { hashes } = options;
  if (isNativeChunkId(ref.id) || !hashes) return chunkVerifier(ref, where);
  const known = await hashes.get(ref.id);
  if (known || !options.establish || !hashes.record) return chunkVerifier(ref, where, known);
  return new VerifyingStream({
    length: ref.size,
    what: `chunk ${ref.id} from ${where}`,
    settle: (sha256) => establishHash(hashes, ref, sha256, where),
  });
}

/**
 * `verifyChunk` against `known`, and when nothing is known and `recordIn` is given (the bytes
 * come from an authoritative place: the origin under its etag guard), record the copy's hash as
 * the one the region serves, before the caller uses the bytes. Resolves to the bytes' sha256
 * when it was computed.
 */
export async function verifyAndRecord(
  ref: ChunkRef,
  bytes: Uint8Array,
  where: string,
  known: string | undefined,
  recordIn?: KnownHashes,
): Promise<string | undefined> {
  const establish = known === undefined && recordIn?.record !== undefined && !isNativeChunkId(ref.id);
  const sha256 = await verifyChunk(ref, bytes, where, known, { hash: establish });
  if (establish && recordIn && sha256) await establishHash(recordIn, ref, sha256, where);
  return sha256;
}

/**
 * `hashedChunkVerifier` for bytes held whole: the region's known hash looked up, then
 * `verifyAndRecord`. Resolves to the bytes' sha256 when it was computed (a native chunk, or an
 * external one with a hash), so a put can hand it to the store.
 */
export async function verifyHashedChunk(
  ref: ChunkRef,
  bytes: Uint8Array,
  where: string,
  options: { hashes?: KnownHashes; establish?: boolean } = {},
): Promise<string | undefined> {
  const { hashes } = options;
  const known = isNativeChunkId(ref.id) ? undefined : await hashes?.get(ref.id);
  return verifyAndRecord(ref, bytes, where, known, options.establish ? hashes : undefined);
}
