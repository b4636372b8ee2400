import { CacheNodeClient } from '@ferry/cache';
import { InvalidConfigError, type Logger, type RegionConfig } from '@ferry/core';
import { readCa } from './tls.js';

type CacheConfig = NonNullable<RegionConfig['cache']>;

/**
 * What a process does with a region's cache nodes: `read` (readers, residency checks) or `write`
 * (warm fills, PUT, DELETE — the replicator's workers and a direct warmup).
 */
export type CacheRole = 'read' | 'write';

/** The token a role sends, or undefined when the config does not give it one. */
export function cacheToken(cache: RegionConfig['cache'], role: CacheRole): string | undefined {
  if (!cache) return undefined;
  // The write token reads too: a daemon that only writes need not hold both.
  return role === 'write' ? cache.writeToken : (cache.readToken ?? cache.writeToken);
}

/** Whether the region's config lets this role talk to its cache nodes. */
export function hasCacheAccess(cache: RegionConfig['cache'], role: CacheRole): cache is CacheConfig {
  return cacheToken(cache, role) !== undefined;
}

/**
 * A cache-node client of a region with the credential of `role` (and its TLS trust), or a clear
 * config error naming the key to set.
 */
export function cacheClient(options: { region: string; cache: RegionConfig['cache']; role: CacheRole; logger: Logger }): CacheNodeClient {
  const { cache, role, region } = options;
  const token = cacheToken(cache, role);
  if (!cache || !token) {
    const key = role === 'write' ? 'writeToken' : 'readToken';
    throw new InvalidConfigError(`regions.${region}.cache.${key}: region ${region} has no cache ${key} configured`);
  }
  const ca = readCa(cache.tls?.ca, `regions.${region}.cache.tls.ca`);
  return new CacheNodeClient({ token, connectTimeoutMs: cache.connectTimeoutMs, ...(ca ? { ca } : {}), logger: options.logger });
}
