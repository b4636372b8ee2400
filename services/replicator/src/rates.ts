/** Copy throughput of a region: chunks and bytes per second between two readings of its copied totals. */
export interface Throughput {
  bytesPerSecond: number;
  chunksPerSecond: number;
  /** Seconds between the two readings. */
  overSeconds: number;
}

interface Reading {
  at: number;
  chunks: number;
  bytes: number;
}

/**
 * Rates from readings of each region's copied totals (kept in its Redis, so any process can read
 * them). A chunk counts when its copy ends, so a rate over one second jumps between zero and
 * bursts: the rate is taken over the readings of the last `windowMs` (10 s), from the newest
 * reading at least that old. A reading less than `minGapMs` after the last one gives the last
 * rate again, so a page polled often does not shorten the window. Bounded: a few readings a region.
 */
export class CopyRates {
  readonly #minGapMs: number;
  readonly #windowMs: number;
  readonly #readings = new Map<string, Reading[]>();
  readonly #rate = new Map<string, Throughput>();

  constructor(options: { minGapMs?: number; windowMs?: number } = {}) {
    this.#minGapMs = options.minGapMs ?? 1_000;
    this.#windowMs = options.windowMs ?? 10_000;
  }

  /** Record a reading of a region's totals; the rate over the window before it, if there is an earlier reading. */
  observe(region: string, totals: { chunks: number; bytes: number }, at = Date.now()): Throughput | undefined {
    const readings = this.#readings.get(region) ?? [];
    const last = readings.at(-1);
    if (!last || totals.chunks < last.chunks || totals.bytes < last.bytes) {
      // First reading, or the totals went back (a flushed Redis): start again from here.
      this.#readings.set(region, [{ at, ...totals }]);
      this.#rate.delete(region);
      return undefined;
    }
    if (at - last.at < this.#minGapMs) return this.#rate.get(region);
    readings.push({ at, ...totals });
    // Keep the newest reading at least a window old as the base, and those after it.
    while (readings.length > 2 && at - (readings[1] as Reading).at >= this.#windowMs) readings.shift();
    this.#readings.set(region, readings);
    const base = readings[0] as Reading;
    const seconds = (at - base.at) / 1000;
    const rate = {
      bytesPerSecond: Math.round((totals.bytes - base.bytes) / seconds),
      chunksPerSecond: Math.round(((totals.chunks - base.chunks) / seconds) * 100) / 100,
      overSeconds: Math.round(seconds * 10) / 10,
    };
    this.#rate.set(region, rate);
    return rate;
  }
}
