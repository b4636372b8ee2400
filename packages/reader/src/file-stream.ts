import { Readable } from 'node:stream';
import type { ChunkRef, Entry } from '@ferry/core';
import { RangeNotSatisfiableError } from '@ferry/core';
import type { ChunkContext } from '@ferry/fetch';

export interface ReadRangeOptions {
  /** First byte (default 0). */
  start?: number;
  /** Last byte, inclusive (default the last byte of the file). */
  end?: number;
}

interface Piece {
  ref: ChunkRef;
  /** Offset of the chunk in the file. */
  offset: number;
}

/** The chunks a byte range touches, with their offsets. */
export function piecesOf(entry: Entry, start: number, end: number): Piece[] {
  const pieces: Piece[] = [];
  let offset = 0;
  for (const ref of entry.chunks) {
    if (offset + ref.size > start && offset <= end) pieces.push({ ref, offset });
    offset += ref.size;
    if (offset > end) break;
  }
  return pieces;
}

/**
 * Bytes `start..end` of a file as a stream, fetching chunks in order with a window of
 * `prefetch` chunks in flight. Memory stays bounded by the window, never by the file size.
 */
export function readRange(
  entry: Entry,
  fetch: (ref: ChunkRef, context: ChunkContext) => Promise<Buffer>,
  options: ReadRangeOptions & {
    /** Chunks fetched ahead of the one being sent (memory: (prefetch + 1) × chunk size). */
    prefetch: number;
  },
): Readable {
  const start = options.start ?? 0;
  const end = Math.min(options.end ?? entry.size - 1, entry.size - 1);
  if (entry.size > 0 && (start < 0 || start > end)) {
    throw new RangeNotSatisfiableError(`range ${start}-${options.end ?? ''} is outside ${entry.path} (${entry.size} bytes)`);
  }
  const pieces = entry.size === 0 ? [] : piecesOf(entry, start, end);
  const window = Math.max(0, options.prefetch);
  async function* generate(): AsyncGenerator<Buffer> {
    const pending: Promise<Buffer>[] = [];
    let next = 0;
    const fill = () => {
      while (next < pieces.length && pending.length <= window) {
        const piece = pieces[next++];
        if (!piece) break;
        const promise = fetch(piece.ref, { entry, offset: piece.offset });
        promise.catch(() => {}); // surfaced when awaited in order
        pending.push(promise);
      }
    };
    for (const piece of pieces) {
      fill();
      const bytes = await (pending.shift() as Promise<Buffer>);
      const from = Math.max(0, start - piece.offset);
      const to = Math.min(bytes.length, end - piece.offset + 1);
      yield from === 0 && to === bytes.length ? bytes : bytes.subarray(from, to);
    }
  }
  return Readable.from(generate(), { objectMode: false, highWaterMark: 1 });
}
