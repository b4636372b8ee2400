import { readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { Heartbeat } from '@ferry/cache';
import { InvalidArgumentError, type Logger, silentLogger } from '@ferry/core';
import type { KnownHashes } from '@ferry/fetch';
import { type Membership, parseNodeId } from '@ferry/meta';
import { closeGracefully, type ServerTlsFiles } from '@ferry/runtime';
import type { FastifyInstance } from 'fastify';
import { build, type CacheNodeLimits, listen } from './app.js';
import { type DirLock, lockCacheDir } from './dir-lock.js';
import { DiskCache } from './disk-cache.js';
import { type CacheMetrics, createCacheMetrics } from './metrics.js';
import { type Scrub, startScrub } from './scrub.js';
import type { EntryLookup, Upstream } from './upstream.js';

export interface CacheNodeOptions {
  /**
   * Placement hashes the id, so it must outlive restarts: default the id recorded in the cache
   * dir by an earlier run, else `<hostname>-<port>`; either way it is recorded in the dir.
   */
  id?: string;
  dir: string;
  capacity: number;
  /** Relative share of chunks (1:2:3 for 8/16/24 TB disks). */
  weight: number;
  /** What the node accepts (Region.credentials.cacheServer()): the readers' token and the daemons' write token. */
  tokens: { read: string; write?: string };
  /** host:port to listen on (port 0: any free port). */
  listen: string;
  /** URL other hosts reach this node at (default: from the listen address; the hostname when listening on all interfaces). */
  advertise?: string;
  upstream?: Upstream;
  /** The region's hashes of external chunks (an upload of one without a recorded hash is refused). */
  hashes?: KnownHashes;
  /** The region's entries (its `Meta`): where an external chunk's origin is looked up. */
  entries?: EntryLookup;
  /** Largest chunk accepted or fetched: the volume's chunkSize. */
  maxChunkBytes: number;
  /** The region's membership to heartbeat into; absent: the node serves but is not announced. */
  membership?: Membership;
  heartbeatMs?: number;
  /** How long `stop()` lets running requests finish before cutting their connections (a part of `replicator.stopTimeout`). */
  graceMs: number;
  /** Serve HTTPS only and advertise an https:// URL (`cache.tls` cert and key). */
  tls?: ServerTlsFiles;
  /** Timeouts, header size, streams and bytes in flight (`cache.limits`). */
  limits: CacheNodeLimits;
  /** Bytes per second the background scrub re-hashes held chunks at (`cache.scrubBytesPerSecond`); 0: no scrub. */
  scrubBytesPerSecond: number;
  /** Export the process metrics (CPU, memory, event loop) too: on for the cache-node process, off in tests. */
  processMetrics?: boolean;
  logger?: Logger;
}

const ID_FILE = '.node-id';

function advertisedUrl(host: string, port: number, tls: boolean): string {
  const h = host === '0.0.0.0' || host === '::' ? hostname() : host;
  return `${tls ? 'https' : 'http'}://${h.includes(':') ? `[${h}]` : h}:${port}`;
}

/** A running cache node: disk cache, HTTP API, membership heartbeat. `start()`, then `stop()`. */
export class CacheNode {
  /** The tokens the node accepts; replaced in place by `setTokens` (the app reads them per request). */
  readonly #tokens: { read: string; write?: string };
  readonly metrics: CacheMetrics;
  readonly #o: CacheNodeOptions;
  readonly #log: Logger;
  #cache: DiskCache | undefined;
  #app: FastifyInstance | undefined;
  #heartbeat: Heartbeat | undefined;
  #scrub: Scrub | undefined;
  #lock: DirLock | undefined;
  id = '';
  url = '';

  constructor(options: CacheNodeOptions) {
    if (!Number.isFinite(options.weight) || options.weight <= 0) {
      throw new InvalidArgumentError(`invalid cache node weight ${options.weight}: expected a positive number`);
    }
    this.#o = options;
    this.#tokens = { ...options.tokens };
    this.#log = options.logger ?? silentLogger;
    this.metrics = createCacheMetrics({ processMetrics: options.processMetrics ?? false });
  }

  /** Accept these tokens from now on (a reload of the config); requests in flight keep their check. */
  setTokens(tokens: { read: string; write?: string }): void {
    this.#tokens.read = tokens.read;
    this.#tokens.write = tokens.write;
  }

  get cache(): DiskCache {
    if (!this.#cache) throw new Error('cache node not started');
    return this.#cache;
  }

  get app(): FastifyInstance {
    if (!this.#app) throw new Error('cache node not started');
    return this.#app;
  }

  async start(): Promise<{ id: string; url: string }> {
    const given = this.#o.id === undefined ? undefined : parseNodeId(this.#o.id);
    // One node a dir: two would evict and fill one directory under one identity.
    this.#lock = await lockCacheDir(this.#o.dir);
    try {
      return await this.#start(given);
    } catch (err) {
      await this.#lock.release();
      throw err;
    }
  }

  async #start(given: string | undefined): Promise<{ id: string; url: string }> {
    const o = this.#o;
    this.#cache = await DiskCache.open({
      dir: o.dir,
      capacity: o.capacity,
      onEvict: (_id, reason) => this.metrics.evictions.inc({ reason }),
      logger: this.#log,
    });
    const recorded = await readFile(join(o.dir, ID_FILE), 'utf8').then(
      (text) => parseNodeId(text.trim()),
      () => undefined,
    );
    this.#app = build({
      cache: this.#cache,
      tokens: this.#tokens,
      maxChunkBytes: o.maxChunkBytes,
      limits: o.limits,
      metrics: this.metrics,
      logger: this.#log,
      ...(o.upstream ? { upstream: o.upstream } : {}),
      ...(o.entries ? { entries: o.entries } : {}),
      ...(o.hashes ? { hashes: o.hashes } : {}),
      ...(o.tls ? { tls: o.tls } : {}),
    });
    const bound = await listen(this.#app, o.listen, '--listen');
    this.id = given ?? recorded ?? parseNodeId(`${hostname()}-${bound.port}`);
    if (this.id !== recorded) await writeFile(join(o.dir, ID_FILE), `${this.id}\n`);
    this.url = (o.advertise ?? advertisedUrl(bound.host, bound.port, o.tls !== undefined)).replace(/\/+$/, '');
    this.#lock?.describe({ id: this.id, url: this.url });
    if (o.membership) {
      const cache = this.#cache;
      this.#heartbeat = new Heartbeat({
        membership: o.membership,
        id: this.id,
        info: () => ({
          url: this.url,
          weight: o.weight,
          capacity: o.capacity,
          used: cache.used,
          hits: this.metrics.hits.count,
          misses: this.metrics.misses.count,
        }),
        intervalMs: o.heartbeatMs ?? 1_000,
        logger: this.#log,
      });
      try {
        await this.#heartbeat.start();
      } catch (err) {
        // Not announced, not serving: a node nobody can find should not keep the port either.
        await this.#app.close();
        throw err;
      }
    }
    this.#scrub = startScrub({
      cache: this.#cache,
      bytesPerSecond: o.scrubBytesPerSecond,
      metrics: this.metrics,
      logger: this.#log.child({ component: 'scrub' }),
    });
    this.#log.info(
      {
        node: this.id,
        url: this.url,
        dir: o.dir,
        capacity: o.capacity,
        weight: o.weight,
        chunks: this.#cache.count,
        used: this.#cache.used,
      },
      'cache node started',
    );
    return { id: this.id, url: this.url };
  }

  /** Leave the membership first (clients stop asking), then finish requests in flight and close. */
  async stop(): Promise<void> {
    await this.#heartbeat?.stop();
    await this.#scrub?.stop();
    if (this.#app) await closeGracefully(this.#app, { graceMs: this.#o.graceMs });
    await this.#lock?.release();
    this.#log.info({ node: this.id }, 'cache node stopped');
  }
}
