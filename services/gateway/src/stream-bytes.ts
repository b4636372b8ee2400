import type { ByteRange, Entry } from '@ferry/core';
import { piecesOf } from '@ferry/reader';

/**
 * The most bytes a GetObject stream of `range` holds: the chunks it fetches ahead plus the one
 * being sent and the one queued for the socket, each at most the entry's largest chunk.
 */
export function streamBytes(entry: Entry, range: ByteRange, prefetch: number): number {
  const pieces = piecesOf(entry, range.start, range.end);
  const largest = pieces.reduce((max, p) => Math.max(max, p.ref.size), 0);
  return Math.min(pieces.length, prefetch + 3) * largest;
}
