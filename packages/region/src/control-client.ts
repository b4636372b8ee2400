import { rootCertificates } from 'node:tls';
import type { Residency } from '@ferry/cache';
import {
  AccessDeniedError,
  InvalidArgumentError,
  messageOf,
  NotFoundError,
  type RegionConfig,
  tlsFailure,
  UnauthorizedError,
  UnavailableError,
} from '@ferry/core';
import { Agent, type Dispatcher, request } from 'undici';
import { readCa } from './tls.js';

type ApiConfig = NonNullable<RegionConfig['api']>;

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
  /** Sent with reads (status, a warmup's state): the read token, else the admin token. */
  readonly #readToken: string | undefined;
  /** Sent with what queues work (warmup, retry). */
  readonly #adminToken: string | undefined;

  readonly #agent: Agent;

  constructor(options: { api: ApiConfig; region?: string }) {
    this.base = controlApiBase(options.api);
    this.#readToken = options.api.readToken ?? options.api.adminToken;
    this.#adminToken = options.api.adminToken;
    const ca = readCa(options.api.tls?.ca, `regions.${options.region ?? '<r>'}.api.tls.ca`);
    // Node's `ca` replaces the default store, so the default roots go along with the private CA.
    this.#agent = new Agent({ connect: { timeout: 5_000, ...(ca ? { ca: [...rootCertificates, ca.toString()] } : {}) } });
  }

  close(): Promise<void> {
    return this.#agent.close();
  }

  /** Whether a region's config lets a client queue work on its control API (the admin token, or `open`). */
  static usable(api: RegionConfig['api']): api is ApiConfig {
    return api !== undefined && (api.adminToken !== undefined || api.open);
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

  async #call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    const url = `${this.base}${path}`;
    const token = method === 'GET' ? this.#readToken : this.#adminToken;
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, {
        method,
        dispatcher: this.#agent,
        headers: {
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (err) {
      const tls = tlsFailure(err);
      if (tls) throw new UnauthorizedError(`replicator API at ${url}: ${tls} (check api.tls.ca)`, { cause: err });
      const reason = (err as { code?: string }).code ?? messageOf(err);
      throw new UnavailableError(`replicator API at ${url}: ${reason}`, { cause: err });
    }
    const text = await res.body.text();
    const status = res.statusCode;
    let json: Record<string, unknown> = {};
    try {
      json = JSON.parse(text) as Record<string, unknown>;
    } catch {}
    if (status >= 200 && status < 300) return json as T;
    const message = `replicator API ${method} ${path}: ${String(json.message ?? `HTTP ${status}`)}`;
    if (status === 401) throw new UnauthorizedError(`${message} (check api.${method === 'GET' ? 'readToken' : 'adminToken'})`);
    if (status === 403) throw new AccessDeniedError(`${message} (this needs api.adminToken)`);
    if (status === 404) throw new NotFoundError(message);
    if (status === 400) throw new InvalidArgumentError(message);
    throw new UnavailableError(message);
  }
}
