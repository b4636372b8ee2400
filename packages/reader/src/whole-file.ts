import { type Entry, isNativeChunkId } from '@ferry/core';

/**
 * How a reader of a whole file (`ferry get`) orders its chunk requests. Pure, so that the fan-out
 * simulation of the benchmarks (test/bench/scenarios/fanout.mjs) orders them the same way.
 *
 * Many hosts that fetch one model at once and all in file order ask the owners of the same few
 * chunks at the same moment: those nodes are swamped (past their request limits at a thousand
 * hosts) while the others idle, and every reader waits for the slowest of them. Started at
 * different places, the readers spread their requests over all the nodes.
 */

/**
 * Chunk indices of a file of `count` chunks in the order to fetch them: the first chunk first (a
 * safetensors header, which a loader needs before anything else), then from `start` to the end,
 * then the ones between. `start` is clamped to 1..count; 1 (or count) is plain file order.
 */
export function wholeFileOrder(count: number, start: number): number[] {
  if (count <= 0) return [];
  const from = Math.min(Math.max(1, Math.floor(start)), count);
  const order = [0];
  for (let i = from; i < count; i++) order.push(i);
  for (let i = 1; i < from; i++) order.push(i);
  return order;
}

/** A place to start `wholeFileOrder` at, uniform over the chunks after the first. */
export function randomStart(count: number, random: () => number = Math.random): number {
  return 1 + Math.floor(random() * Math.max(0, count - 1));
}

/**
 * Whether a whole-file read must feed the file's sha256 in file order, which ties it to file order.
 * Only when the entry records one and some chunk is external: a native chunk's id is its sha256,
 * checked as it arrives, so a file of native chunks is whole and right once each chunk is, and is
 * not hashed a second time.
 */
export function hashesWholeFile(entry: Pick<Entry, 'sha256' | 'chunks'>): boolean {
  return entry.sha256 !== undefined && entry.chunks.some((c) => !isNativeChunkId(c.id));
}

/**
 * Chunk requests a read in `wholeFileOrder` keeps in flight: `prefetch` (what the caller asked
 * for), or more to keep the cache nodes busy (`readerWindow`, nodes × requests per node) but no
 * more than `WHOLE_FILE_WINDOW`. Readers that start apart keep every node busy with a few requests
 * each; more per reader would only add to what each node holds at once (a node refuses requests past
 * 256 MiB of distinct chunks, `cache.limits.maxBytesInFlight`) and to the reader's memory
 * (window × chunk size).
 */
export function wholeFileWindow(prefetch: number, readerWindow: number): number {
  return Math.max(1, prefetch, Math.min(readerWindow, WHOLE_FILE_WINDOW));
}

export const WHOLE_FILE_WINDOW = 16;

/** How to read a whole file. */
export interface WholeFileRead {
  /** Chunk indices in the order to fetch them. */
  order: number[];
  /**
   * The file's sha256 is fed in file order: the read is in file order and a chunk's slot is free
   * only once every chunk before it is. Otherwise a slot is free as soon as its chunk is.
   */
  hashed: boolean;
  /** Requests to keep in flight, given the reader's window now (it grows as cache nodes are found). */
  window(readerWindow: number): number;
}

/**
 * The plan of a whole-file read (`ferry get`): a file whose sha256 must be computed (see
 * `hashesWholeFile`) in file order with the reader's whole window, as before; any other in
 * `wholeFileOrder` from `start` (default: random) with `wholeFileWindow`.
 */
export function wholeFileRead(
  entry: Pick<Entry, 'sha256' | 'chunks'>,
  options: {
    prefetch: number;
    start?: number;
    random?: () => number;
    /** Hash the whole file against its recorded sha256 even when every chunk is checked by its id (`ferry get --verify-file`). */
    verifyFile?: boolean;
  },
): WholeFileRead {
  const count = entry.chunks.length;
  if (hashesWholeFile(entry) || (options.verifyFile && entry.sha256 !== undefined)) {
    return {
      order: Array.from({ length: count }, (_, i) => i),
      hashed: true,
      window: (readerWindow) => Math.max(1, options.prefetch, readerWindow),
    };
  }
  return {
    order: wholeFileOrder(count, options.start ?? randomStart(count, options.random)),
    hashed: false,
    window: (readerWindow) => wholeFileWindow(options.prefetch, readerWindow),
  };
}
