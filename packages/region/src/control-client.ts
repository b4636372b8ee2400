import type { Residency } from '@ferry/cache';
import type { RegionConfig } from '@ferry/core';
import { HttpClient } from '@ferry/http';
import { readCa } from './tls.js';

type ApiConfig = NonNullable<RegionConfig['api']>;

const CONNECT_TIMEOUT_MS = 5_000;
const REQUEST_TIMEOUT_MS = 300_000;

/** What `POST /warmup` answers. */
export interface WarmupQueued {
  id: string;
  chunks: number;
  placements: number;
}

/** What `GET /warmup/:id` answers: the flow's job counts and the residency the nodes report now. */
export interface WarmupState {
  id: string;
  state: string;
  paths: string[];
  requestedAt: number;
  finishedOn?: number;
  /** Owners per chunk this warmup places. */
  replicas: number;
  /** The warm rule (its path) that queued it; absent for a request. */
  rule?: string;
  /** Fill children: processed (done), pending, failed for good. */
  children: { processed: number; pending: number; failed: number };
  /** Verified on the nodes now, not read from job states. */
  residency: Residency;
  /** Chunks of the paths not in the region's store yet (a mirror still copying); 0 in the source. */
  missing: number;
  /** Residency is 100 %. */
  complete: boolean;
  /**
   * What a deploy waits for: every chunk of the paths is in the region's store (`missing` 0) and
   * on all its owners (`complete`). Read from the region and the nodes now, not from job states.
   */
  ready: boolean;
  /** The flow is over (every child done or failed for good and the parent finished). */
  finished: boolean;
}

/** Base URL of a region's control API: its listen address (a wildcard host asked on loopback), https:// with `api.tls`. */
export function controlApiBase(api: ApiConfig): string {
  const host = api.listen.replace(/^(0\.0\.0\.0|\[::\]):/, '127.0.0.1:');
  return `${api.tls ? 'https' : 'http'}://${host}`;
}

/**
 * A typed client of a region replicator's control API (`regions.<r>.api`): queue a warmup and
 * follow it. Failures are Ferry errors with one line each: unreachable → UnavailableError,
 * refused token → UnauthorizedError, unknown id → NotFoundError, a refused request →
 * InvalidArgumentError.
 */
export class ControlClient {
  readonly base: string;
  /** Reads (status, a warmup's state) send the read token, or the admin token when that is all the process holds. */
  readonly #read: HttpClient;
  /** What queues work (warmup, retry) sends the admin token. */
  readonly #admin: HttpClient;

  constructor(options: { api: ApiConfig; region?: string; tokens: { read?: string; admin?: string } }) {
    this.base = controlApiBase(options.api);
    const key = `regions.${options.region ?? '<r>'}.api`;
    const ca = readCa(options.api.tls?.ca, `${key}.tls.ca`);
    const client = (token: string | undefined, role: string) =>
      new HttpClient({
        service: 'replicator API',
        ...(token ? { token } : {}),
        connectTimeoutMs: CONNECT_TIMEOUT_MS,
        requestTimeoutMs: REQUEST_TIMEOUT_MS,
        connections: 2,
        attempts: 3,
        ...(ca ? { ca } : {}),
        hints: { 401: `check ${key}.${role}`, 403: `this needs ${key}.adminToken`, tls: `check ${key}.tls.ca` },
      });
    this.#read = client(options.tokens.read, 'readToken');
    this.#admin = client(options.tokens.admin, 'adminToken');
  }

  async close(): Promise<void> {
    await Promise.all([this.#read.close(), this.#admin.close()]);
  }

  warmup(paths: string[]): Promise<WarmupQueued> {
    return this.#call<WarmupQueued>('POST', '/warmup', { paths });
  }

  /** Queue the copies that failed for good again; how many were queued. */
  retryFailed(): Promise<{ retried: number }> {
    return this.#call<{ retried: number }>('POST', '/retry-failed', {});
  }

  /** The region's status as its replicator reports it. */
  status(): Promise<Record<string, unknown>> {
    return this.#call<Record<string, unknown>>('GET', '/status');
  }

  warmupState(id: string): Promise<WarmupState> {
    return this.#call<WarmupState>('GET', `/warmup/${encodeURIComponent(id)}`);
  }

  #call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    const client = method === 'GET' ? this.#read : this.#admin;
    const url = `${this.base}${path}`;
    return client.json<T>(url, method, `replicator API at ${url}`, body);
  }
}
