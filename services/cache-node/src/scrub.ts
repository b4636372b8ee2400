import type { Logger } from '@ferry/core';
import type { DiskCache } from './disk-cache.js';
import type { CacheMetrics } from './metrics.js';

export interface ScrubOptions {
  cache: DiskCache;
  /** Bytes hashed per second, on average (`cache.scrubBytesPerSecond`); 0: no scrub. */
  bytesPerSecond: number;
  metrics: CacheMetrics;
  logger: Logger;
  /** Pause between passes over an empty or fully checked cache (default 10 s). */
  idleMs?: number;
}

export interface Scrub {
  /** Ends the current pause or check; resolves when the loop has stopped. */
  stop(): Promise<void>;
}

/**
 * The background scrub: re-hashes every held chunk, least recently used first, paced to
 * `bytesPerSecond`, and evicts what fails (a file that rotted under its verified state). Reads
 * serve verified files without hashing them; this is what catches a bit flipped since.
 */
export function startScrub(options: ScrubOptions): Scrub {
  const { cache, metrics, logger } = options;
  let stopped = options.bytesPerSecond <= 0;
  let wake: (() => void) | undefined;
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      timer.unref();
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  const loop = (async () => {
    while (!stopped) {
      let checked = 0;
      for (const id of cache.ids()) {
        if (stopped) break;
        const size = cache.sizeOf(id);
        if (size === undefined) continue;
        const started = performance.now();
        try {
          const state = await cache.check(id);
          if (state === 'corrupt') {
            metrics.corrupt.inc({ where: 'scrub' });
            logger.error({ chunk: id }, 'scrub: cached chunk failed verification; evicted');
          }
          if (state !== 'missing') metrics.scrubbedBytes.inc(size);
        } catch (err) {
          logger.warn({ err, chunk: id }, 'scrub: could not check a cached chunk');
        }
        checked += 1;
        // Paced: this chunk's share of a second at the configured rate, less the time it took.
        const due = (size / options.bytesPerSecond) * 1000 - (performance.now() - started);
        if (due > 0) await pause(due);
      }
      if (!stopped && checked === 0) await pause(options.idleMs ?? 10_000);
      else if (!stopped) metrics.scrubPasses.inc();
    }
  })();
  return {
    async stop() {
      stopped = true;
      wake?.();
      await loop;
    },
  };
}
