import { type Logger, messageOf } from '@ferry/core';
import type { RegionsPanel } from './panels.js';

/** One sample of a region: lag and copy throughput at a moment. */
export interface Sample {
  /** ms */
  at: number;
  lagSeconds: number | null;
  lagRecords: number | null;
  bytesPerSecond: number | null;
  chunksPerSecond: number | null;
}

/** What GET /api/history answers: each region's samples, oldest first, over the last `keepSeconds`. */
export interface HistoryPanel {
  everySeconds: number;
  keepSeconds: number;
  regions: Record<string, Sample[]>;
}

/**
 * The last hour of lag and copy throughput of every region, sampled by the daemon and kept in
 * its memory (a restart starts an empty history; Prometheus keeps the long one). Bounded: at most
 * keep / every samples per region.
 */
export class History {
  readonly #everyMs: number;
  readonly #keepMs: number;
  readonly #read: () => Promise<RegionsPanel>;
  readonly #log: Logger;
  readonly #samples = new Map<string, Sample[]>();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;

  constructor(options: { everyMs: number; keepMs?: number; read: () => Promise<RegionsPanel>; logger: Logger }) {
    this.#everyMs = options.everyMs;
    this.#keepMs = options.keepMs ?? 3_600_000;
    this.#read = options.read;
    this.#log = options.logger;
  }

  start(): void {
    const tick = () => {
      this.#running = this.sample().finally(() => {
        this.#running = undefined;
        if (this.#timer) this.#timer = setTimeout(tick, this.#everyMs);
      });
    };
    this.#timer = setTimeout(tick, 0);
  }

  async stop(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  /** Read every region once and keep the sample. */
  async sample(): Promise<void> {
    try {
      this.record(await this.#read());
    } catch (err) {
      this.#log.warn({ reason: messageOf(err) }, 'status history: could not sample the regions');
    }
  }

  record(panel: RegionsPanel): void {
    const oldest = panel.at - this.#keepMs;
    for (const r of panel.regions) {
      if (r.role !== 'mirror' || r.error) continue;
      const samples = this.#samples.get(r.region) ?? [];
      samples.push({
        at: panel.at,
        lagSeconds: r.lag?.seconds ?? null,
        lagRecords: r.lag?.records ?? null,
        bytesPerSecond: r.throughput?.bytesPerSecond ?? null,
        chunksPerSecond: r.throughput?.chunksPerSecond ?? null,
      });
      while ((samples[0]?.at ?? panel.at) < oldest) samples.shift();
      this.#samples.set(r.region, samples);
    }
  }

  panel(): HistoryPanel {
    return {
      everySeconds: this.#everyMs / 1000,
      keepSeconds: this.#keepMs / 1000,
      regions: Object.fromEntries([...this.#samples].map(([region, samples]) => [region, [...samples]])),
    };
  }
}
