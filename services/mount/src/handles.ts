import type { ChunkRef, Entry, Logger } from '@ferry/core';
import { messageOf, silentLogger } from '@ferry/core';

/** Where a chunk sits in its file (what the fetch engine needs for an imported file's origin). */
export interface ChunkContext {
  entry: Entry;
  offset: number;
}

export interface OpenFilesOptions {
  /** Verified bytes of one chunk, through the region's tiers (RegionReader.fetch). */
  fetch: (ref: ChunkRef, context: ChunkContext) => Promise<Buffer>;
  /** Chunks fetched ahead of a sequential reader. */
  prefetch: number;
  logger?: Logger;
  /** A chunk that could not be read is logged once per this long (default 60 s). */
  logEveryMs?: number;
}

interface Handle {
  /** The version this open reads, whatever the path holds later. */
  entry: Entry;
  /** Offset in the file where each chunk starts (plus the file size at the end). */
  starts: number[];
  /** Where the last read ended: the next read starting here is sequential. */
  next: number;
  /** Highest chunk index already asked for ahead. */
  ahead: number;
}

/** First index `i` with `starts[i] <= offset < starts[i + 1]`. */
function chunkAt(starts: number[], offset: number): number {
  let lo = 0;
  let hi = starts.length - 2;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if ((starts[mid] as number) <= offset) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * The open files of the mount. An open pins the entry it opened: every read of the handle is
 * served from that version's chunks, so a path replaced meanwhile never mixes two versions' bytes
 * in one handle. Reads are whole verified chunks (the fetch engine's memory cache and
 * single-flight make the many small kernel reads of one chunk cost one fetch); a reader that goes
 * on where it stopped gets the next chunks fetched ahead.
 */
export class OpenFiles {
  readonly #handles = new Map<number, Handle>();
  readonly #fetch: OpenFilesOptions['fetch'];
  readonly #prefetch: number;
  readonly #log: Logger;
  readonly #logEveryMs: number;
  readonly #logged = new Map<string, number>();
  #nextId = 1;

  constructor(options: OpenFilesOptions) {
    this.#fetch = options.fetch;
    this.#prefetch = Math.max(0, options.prefetch);
    this.#log = options.logger ?? silentLogger;
    this.#logEveryMs = options.logEveryMs ?? 60_000;
  }

  /** Open files right now. */
  get size(): number {
    return this.#handles.size;
  }

  open(entry: Entry): number {
    const starts = [0];
    for (const ref of entry.chunks) starts.push((starts.at(-1) as number) + ref.size);
    // Handles stay below 2^32 (exact as JavaScript numbers); skip 0 and ids still open after a wrap.
    do {
      this.#nextId = this.#nextId >= 0xffff_fffe ? 1 : this.#nextId + 1;
    } while (this.#handles.has(this.#nextId));
    this.#handles.set(this.#nextId, { entry, starts, next: 0, ahead: -1 });
    return this.#nextId;
  }

  entryOf(fh: number): Entry | undefined {
    return this.#handles.get(fh)?.entry;
  }

  release(fh: number): boolean {
    return this.#handles.delete(fh);
  }

  /**
   * Copy up to `length` bytes at `position` of the handle's version into `into`; returns the
   * number copied (0 at the end of the file), or undefined for an unknown handle. Rejects with
   * the fetch engine's error for a chunk no tier has a good copy of (logged here, once).
   */
  async read(fh: number, into: Buffer, length: number, position: number): Promise<number | undefined> {
    const parts = await this.slices(fh, Math.min(length, into.length), position);
    if (!parts) return undefined;
    let copied = 0;
    for (const part of parts) copied += part.copy(into, copied);
    return copied;
  }

  /**
   * The bytes `read` would copy, as views of the verified chunks (no copy: the FUSE reply sends
   * them as they are). Empty at the end of the file; undefined for an unknown handle.
   */
  async slices(fh: number, length: number, position: number): Promise<Buffer[] | undefined> {
    const handle = this.#handles.get(fh);
    if (!handle) return undefined;
    const { entry, starts } = handle;
    const end = Math.min(entry.size, position + length);
    if (position >= end) return [];
    const first = chunkAt(starts, position);
    const last = chunkAt(starts, end - 1);
    const sequential = position === handle.next;
    handle.next = end;
    const parts = [];
    for (let i = first; i <= last; i++) {
      const part = this.#chunk(entry, starts, i);
      part.catch(() => {}); // awaited in order below; one not reached after a failure must not go unhandled
      parts.push(part);
    }
    if (sequential) this.#readAhead(handle, last);
    const views: Buffer[] = [];
    for (const [k, part] of parts.entries()) {
      const bytes = await part;
      const chunkStart = starts[first + k] as number;
      const from = Math.max(position, chunkStart) - chunkStart;
      const to = Math.min(end, chunkStart + bytes.length) - chunkStart;
      if (to > from) views.push(bytes.subarray(from, to));
    }
    return views;
  }

  #chunk(entry: Entry, starts: number[], index: number): Promise<Buffer> {
    const ref = entry.chunks[index] as ChunkRef;
    return this.#fetch(ref, { entry, offset: starts[index] as number }).catch((err: unknown) => {
      this.#report(entry, ref, err);
      throw err;
    });
  }

  /** Ask for the chunks after `last` (they land in the fetch engine's memory cache). */
  #readAhead(handle: Handle, last: number): void {
    const until = Math.min(handle.entry.chunks.length - 1, last + this.#prefetch);
    for (let i = Math.max(last + 1, handle.ahead + 1); i <= until; i++) {
      this.#chunk(handle.entry, handle.starts, i).catch(() => {}); // a read of it reports the failure
    }
    handle.ahead = Math.max(handle.ahead, until);
  }

  /** One log line per unreadable chunk (and not again for a while): which chunk, which file, why. */
  #report(entry: Entry, ref: ChunkRef, err: unknown): void {
    const now = Date.now();
    const last = this.#logged.get(ref.id);
    if (last !== undefined && now - last < this.#logEveryMs) return;
    this.#logged.set(ref.id, now);
    if (this.#logged.size > 10_000) this.#logged.clear();
    this.#log.error({ chunk: ref.id, path: entry.path, version: entry.version, reason: messageOf(err) }, 'chunk unreadable: EIO');
  }
}
