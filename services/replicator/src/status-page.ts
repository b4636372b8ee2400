import type { FerryConfig, Logger } from '@ferry/core';
import { openRegion, type Region } from '@ferry/region';
import { History, type HistoryPanel } from './history.js';
import type { PanelSource } from './page.js';
import { type NodesPanel, nodesPanel, type PathPanel, pathPanel, type RegionsPanel, regionsPanel } from './panels.js';
import { CopyRates } from './rates.js';

/** How long after the page (or its JSON) was last read the history keeps sampling the other regions too. */
const WATCHED_MS = 3_600_000;

/**
 * The daemon's side of the status page: the panels of every region of the volume (the other
 * regions opened on first use, as a client reads them, and kept open), copy rates from readings
 * of each region's copied totals, and the last hour of lag and throughput, sampled in the
 * background from the moment the API listens: this region always (its own Redis and the source's,
 * which it reads anyway), the other regions only within an hour of someone reading the panels, so
 * an unwatched daemon does not poll every Redis of the volume.
 */
export class StatusPage implements PanelSource {
  readonly #config: FerryConfig;
  readonly #region: Region;
  readonly #log: Logger;
  readonly #rates = new CopyRates();
  readonly #history: History;
  readonly #others = new Map<string, Promise<Region>>();
  /** When the panels were last read (ms); 0: never. */
  #watchedAt = 0;

  constructor(options: { config: FerryConfig; region: Region; everyMs: number; logger: Logger }) {
    this.#config = options.config;
    this.#region = options.region;
    this.#log = options.logger;
    this.#history = new History({ everyMs: options.everyMs, read: () => this.#sample(), logger: options.logger });
    this.#history.start();
  }

  regions(): Promise<RegionsPanel> {
    this.#watchedAt = Date.now();
    return this.#regions();
  }

  nodes(): Promise<NodesPanel> {
    this.#watchedAt = Date.now();
    return nodesPanel(this.#region);
  }

  path(path: string): Promise<PathPanel> {
    this.#watchedAt = Date.now();
    return pathPanel({ config: this.#config, open: (name) => this.#open(name), path });
  }

  history(): HistoryPanel {
    this.#watchedAt = Date.now();
    return this.#history.panel();
  }

  #regions(only?: string): Promise<RegionsPanel> {
    return regionsPanel({
      config: this.#config,
      open: (name) => this.#open(name),
      rates: this.#rates,
      ...(only === undefined ? {} : { region: only }),
    });
  }

  /** What the history samples: every region while someone watches, else this one. */
  #sample(): Promise<RegionsPanel> {
    return this.#regions(Date.now() - this.#watchedAt < WATCHED_MS ? undefined : this.#region.name);
  }

  /** Stop sampling and close the other regions. */
  async stop(): Promise<void> {
    await this.#history.stop();
    const others = await Promise.allSettled(this.#others.values());
    this.#others.clear();
    await Promise.allSettled(others.map((r) => (r.status === 'fulfilled' ? r.value.close() : undefined)));
  }

  /** This region, or another one of the volume (a failed open is tried again next time). */
  #open(name: string): Promise<Region> {
    if (name === this.#region.name) return Promise.resolve(this.#region);
    let opened = this.#others.get(name);
    if (!opened) {
      const region = openRegion({
        config: this.#config,
        region: name,
        role: 'client',
        logger: this.#log.child({ of: name }),
        clientName: 'ferry-status',
      });
      opened = region.ready().then(
        () => region,
        async (err: unknown) => {
          this.#others.delete(name);
          await region.close().catch(() => {});
          throw err;
        },
      );
      this.#others.set(name, opened);
    }
    return opened;
  }
}
