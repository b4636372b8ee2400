import { InvalidConfigError, type RegionConfig } from '@ferry/core';

/** What a process does with a region's cache nodes: read (readers, residency), or write (fills, PUT, DELETE). */
export type CacheRole = 'read' | 'write';
/** What a process does with a region's control API: read (status, metrics), or admin (warmup, retry). */
export type ApiRole = 'read' | 'admin';

/** The tokens a region's cache nodes accept, by role. */
export interface CacheServerTokens {
  read: string;
  write: string;
}

/** The tokens a region's control API accepts, by role; `open` serves it without one. */
export interface ApiServerTokens {
  read?: string;
  admin?: string;
  open: boolean;
}

/**
 * The one place where a region's credentials are resolved (the deprecated single `token` is
 * already spread over both roles by the config schema): which token this process sends for a
 * role, and which tokens its servers accept. A stronger token also does a weaker role's work, so
 * a process that holds only the write (or admin) token reads with it. An empty value in the config
 * means "not held by this process", so one file serves readers and daemons alike.
 */
export class Credentials {
  readonly #region: string;
  readonly #config: RegionConfig;

  constructor(region: string, config: RegionConfig) {
    this.#region = region;
    this.#config = config;
  }

  /** The token this process sends to the cache nodes as `role`, or undefined when it holds none for it. */
  cache(role: CacheRole): string | undefined {
    const cache = this.#config.cache;
    if (!cache) return undefined;
    return role === 'write' ? cache.writeToken : (cache.readToken ?? cache.writeToken);
  }

  /** The token this process sends to the control API as `role`, or undefined (fine for an `open` API). */
  api(role: ApiRole): string | undefined {
    const api = this.#config.api;
    if (!api) return undefined;
    return role === 'admin' ? api.adminToken : (api.readToken ?? api.adminToken);
  }

  /** Whether this process may use the control API as `role`: it holds the token, or the API is open. */
  canUseApi(role: ApiRole): boolean {
    return this.#config.api !== undefined && (this.#config.api.open || this.api(role) !== undefined);
  }

  /** The cache token of `role`, or one config error naming the key to set. */
  requireCache(role: CacheRole): string {
    const token = this.cache(role);
    if (token !== undefined) return token;
    const key = role === 'write' ? 'writeToken' : 'readToken';
    throw new InvalidConfigError(`regions.${this.#region}.cache.${key}: region ${this.#region} has no cache ${key} configured`);
  }

  /** What a cache node of the region accepts; a node needs both roles' tokens. */
  cacheServer(): CacheServerTokens {
    const cache = this.#config.cache;
    if (!cache?.readToken || !cache.writeToken) {
      throw new InvalidConfigError(
        `regions.${this.#region}.cache: set readToken and writeToken (e.g. "\${FERRY_CACHE_READ_TOKEN}") to run cache nodes in ${this.#region}`,
      );
    }
    return { read: cache.readToken, write: cache.writeToken };
  }

  /** What the region's control API accepts on `listen`: a token of some role, unless it is explicitly open. */
  apiServer(listen: string): ApiServerTokens {
    const api = this.#config.api;
    const open = api?.open ?? false;
    if (!open && !api?.readToken && !api?.adminToken) {
      throw new InvalidConfigError(
        `regions.${this.#region}.api: set a token (or open: true) to serve the control API on ${listen}: readToken for status and metrics, adminToken for warmup and retry`,
      );
    }
    return { ...(api?.readToken ? { read: api.readToken } : {}), ...(api?.adminToken ? { admin: api.adminToken } : {}), open };
  }
}
