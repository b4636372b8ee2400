import { type Residency, residency } from '@ferry/cache';
import { type ChunkId, type FerryConfig, isWithin, messageOf, normalizePath, regionConfig } from '@ferry/core';
import { Membership } from '@ferry/meta';
import { cacheClient, type Region } from '@ferry/region';
import type { CopyRates } from './rates.js';
import { presence, type RegionStatus, regionStatus } from './status.js';

/*
 * What the status page shows and `ferry status --json` prints: one function per panel, given a
 * way to open any region of the volume. The daemon serves them (GET /api/…), the CLI prints them;
 * the same code computes both.
 */

/** Opens a region of the volume by name (the daemon keeps them open; the CLI opens each once). */
export type OpenRegion = (name: string) => Promise<Region>;

/** Every region of the volume, the source first. */
export interface RegionsPanel {
  volume: string;
  source: string;
  /** When the figures were read (ms). */
  at: number;
  regions: RegionStatus[];
}

function regionNames(config: FerryConfig, only?: string): string[] {
  if (only !== undefined) {
    regionConfig(config, only);
    return [only];
  }
  return [config.source, ...Object.keys(config.regions).filter((r) => r !== config.source)];
}

/** The status of every region (or one); a region that cannot be read is one entry with its error. */
export async function regionsPanel(options: {
  config: FerryConfig;
  open: OpenRegion;
  rates?: CopyRates;
  region?: string;
}): Promise<RegionsPanel> {
  const { config } = options;
  const regions = await Promise.all(
    regionNames(config, options.region).map(async (name): Promise<RegionStatus> => {
      try {
        return await regionStatus(await options.open(name), options.rates ? { rates: options.rates } : {});
      } catch (err) {
        return { region: name, role: name === config.source ? 'source' : 'mirror', error: messageOf(err) };
      }
    }),
  );
  return { volume: config.volume, source: config.source, at: Date.now(), regions };
}

export interface NodeStatus {
  id: string;
  url: string;
  weight: number;
  capacity: number;
  used: number;
  /** hits / (hits + misses) since the node started; null before its first read (or from a node that does not say). */
  hitRatio: number | null;
  hits?: number;
  misses?: number;
  /** Heartbeat seen within the membership's stale time. */
  up: boolean;
  /** Seconds since its last heartbeat. */
  silentSeconds: number;
}

/** The cache nodes of one region, as their heartbeats describe them. */
export interface NodesPanel {
  region: string;
  /** Whether the region has a cache tier at all (`cache:` in its config). */
  cache: boolean;
  replicas?: number;
  nodes: NodeStatus[];
}

export async function nodesPanel(region: Region): Promise<NodesPanel> {
  const cache = region.config.cache;
  if (!cache) return { region: region.name, cache: false, nodes: [] };
  const all = await new Membership({ redis: region.redis, volume: region.volume }).all();
  const nodes = all.map((m): NodeStatus => {
    const reads = m.hits !== undefined && m.misses !== undefined ? m.hits + m.misses : 0;
    return {
      id: m.id,
      url: m.url,
      weight: m.weight,
      capacity: m.capacity,
      used: m.used,
      hitRatio: reads > 0 ? Math.round(((m.hits ?? 0) / reads) * 1000) / 1000 : null,
      ...(m.hits !== undefined && m.misses !== undefined ? { hits: m.hits, misses: m.misses } : {}),
      up: m.up,
      silentSeconds: Math.round(m.silentMs / 100) / 10,
    };
  });
  return { region: region.name, cache: true, replicas: cache.replicas, nodes };
}

/** One region's readiness for a path: its store's copy, its nodes' copy, the warm rules over it. */
export interface PathRegion {
  region: string;
  path: string;
  /** Distinct chunks of the files under the path, those the region's store holds, and the percent. */
  chunks: number;
  present: number;
  percent: number;
  complete: boolean;
  /** Verified residency on the region's live cache nodes (when it has a cache and this process its read token). */
  residency?: Omit<Residency, 'incomplete'>;
  /** The region's warm rules that cover the path (or part of a folder). */
  rules: Array<{ path: string; replicas: number }>;
  error?: string;
  /** Why the cache residency could not be read (the store's percent above still holds). */
  cacheError?: string;
}

export interface PathPanel {
  path: string;
  files: number;
  bytes: number;
  regions: PathRegion[];
}

/** For a file or folder: present % in each region's store, cached % on each region's nodes, the warm rules over it. */
export async function pathPanel(options: { config: FerryConfig; open: OpenRegion; path: string; region?: string }): Promise<PathPanel> {
  const { config } = options;
  const path = normalizePath(options.path);
  const source = await options.open(config.source);
  const files = await source.meta.filesUnder(path);
  const chunkIds = files.flatMap((e) => e.chunks.map((c) => c.id));
  const regions = await Promise.all(
    regionNames(config, options.region).map(async (name): Promise<PathRegion> => {
      const rules = (regionConfig(config, name).warm ?? [])
        .filter((rule) => isWithin(path, rule.path) || isWithin(rule.path, path))
        .map((rule) => ({ path: rule.path, replicas: rule.replicas }));
      try {
        const region = await options.open(name);
        const p = await presence(region.mirror, chunkIds);
        // The cache nodes are a tier of their own: a node that cannot answer does not make the
        // region's store look empty.
        let cached: Residency | undefined;
        let cacheError: string | undefined;
        try {
          cached = await cacheResidency(region, chunkIds);
        } catch (err) {
          cacheError = `cache nodes: ${messageOf(err)}`;
        }
        const { incomplete: _omit, ...res } = cached ?? {};
        return {
          region: name,
          path,
          ...p,
          complete: p.percent === 100,
          ...(cached ? { residency: res as PathRegion['residency'] } : {}),
          rules,
          ...(cacheError ? { cacheError } : {}),
        };
      } catch (err) {
        return { region: name, path, chunks: 0, present: 0, percent: 0, complete: false, rules, error: messageOf(err) };
      }
    }),
  );
  return { path, files: files.length, bytes: files.reduce((sum, e) => sum + e.size, 0), regions };
}

/** Verified residency of chunks on a region's live cache nodes, when this process holds a cache token of the region. */
async function cacheResidency(region: Region, chunkIds: ChunkId[]): Promise<Residency | undefined> {
  const cache = region.config.cache;
  if (!cache || region.credentials.cache('read') === undefined) return undefined;
  const members = await new Membership({ redis: region.redis, volume: region.volume }).members();
  return residency({ members, replicas: cache.replicas, chunkIds, client: cacheClient(region, 'read') });
}
