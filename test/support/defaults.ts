import { schemaDefaults } from '@ferry/core';

/** The config schema's defaults (the only place defaults live), for tests that build parts by hand. */
export const DEFAULTS = schemaDefaults();
const region = DEFAULTS.regions.r as NonNullable<(typeof DEFAULTS)['regions'][string]>;
const cache = region.cache as NonNullable<typeof region.cache>;

/** A cache node's limits: the schema's, with `overrides`. */
export function cacheLimits(overrides: Partial<typeof cache.limits> = {}): typeof cache.limits {
  return { ...cache.limits, ...overrides };
}

/** What a test's cache-node client needs beside its token: the schema's connect timeout. */
export const CACHE_CLIENT = { connectTimeoutMs: cache.connectTimeoutMs } as const;

/** What a test's copy queue needs beside its connection: the schema's attempts and backlog. */
export const COPY_QUEUE = { attempts: region.copy.attempts, backlog: region.copy.backlog } as const;

/** The control API's limits as the schema gives them. */
export const API_LIMITS = (region.api as NonNullable<typeof region.api>).limits;

/** A reader's memory and prefetch as the schema gives them. */
export const READER = { memoryBytes: DEFAULTS.reader.memoryBytes, prefetch: DEFAULTS.reader.prefetch } as const;
