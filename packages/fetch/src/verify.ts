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
 * Rejects with CorruptError naming `where`. The hash runs on the hash pool.
 */
export async function verifyChunk(ref: ChunkRef, bytes: Uint8Array, where: string, knownSha256?: string): Promise<void> {
  if (bytes.length !== ref.size) throw new CorruptError(`chunk ${ref.id} from ${where}: ${bytes.length} bytes, expected ${ref.size}`);
  const expected = isNativeChunkId(ref.id) ? chunkDigest(ref.id) : knownSha256;
  if (expected !== undefined && (await sha256Of(bytes)) !== expected) {
    throw new CorruptError(`chunk ${ref.id} from ${where}: sha256 mismatch`);
  }
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
 * `hashedChunkVerifier` for bytes held whole: checks them, and records an external chunk's hash
 * when `establish` is set and none is known, before the caller stores them. Resolves to the
 * bytes' sha256 when it was computed (a native chunk, or an external one with a hash), so a put
 * can hand it to the store.
 */
export async function verifyHashedChunk(
  ref: ChunkRef,
  bytes: Uint8Array,
  where: string,
  options: { hashes?: KnownHashes; establish?: boolean } = {},
): Promise<string | undefined> {
  if (bytes.length !== ref.size) throw new CorruptError(`chunk ${ref.id} from ${where}: ${bytes.length} bytes, expected ${ref.size}`);
  const { hashes } = options;
  const expected = isNativeChunkId(ref.id) ? chunkDigest(ref.id) : await hashes?.get(ref.id);
  if (expected === undefined && !(options.establish && hashes?.record)) return undefined;
  const sha256 = await sha256Of(bytes);
  if (expected !== undefined && sha256 !== expected) throw new CorruptError(`chunk ${ref.id} from ${where}: sha256 mismatch`);
  if (expected === undefined && hashes) await establishHash(hashes, ref, sha256, where);
  return sha256;
}
