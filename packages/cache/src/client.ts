import { type ChunkId, type Logger, messageOf, parseChunkId, silentLogger, UnavailableError } from '@ferry/core';
import { BoundedBody } from '@ferry/fetch';
import { BodyCutShort, HttpClient, type HttpMethod, type HttpResponse, type Received, Unreachable } from '@ferry/http';

/** Enough of a member to talk to it. */
export interface NodeRef {
  readonly id: string;
  readonly url: string;
}

export interface CacheClientOptions {
  /** Bearer token sent to the nodes: `cache.readToken` for readers, `cache.writeToken` for the daemons that fill. */
  token: string;
  /** TCP connect timeout (config `cache.connectTimeoutMs`): a dead host fails fast. */
  connectTimeoutMs: number;
  /** Longest wait for response headers, and for each piece of a body. Default 15 s. */
  requestTimeoutMs?: number;
  /**
   * Longest wait for the headers of a chunk read that the node may read through (default
   * `requestTimeoutMs` when that is given, else 60 s):
   * the node may first fetch the chunk from a remote store, behind the other fills it is doing
   * for a crowd of cold readers. Given up sooner, the reader would fetch the chunk from the
   * source itself, the egress the cache exists to save, and skip the node for `downForMs`.
   */
  readThroughTimeoutMs?: number;
  /**
   * CA certificates (PEM) trusted for https:// nodes, in addition to the system store (config
   * `cache.tls.ca`, read by the caller). Without it the system store alone.
   */
  ca?: string | Buffer;
  /** How long a node that failed to answer is skipped (default 3 s). */
  downForMs?: number;
  /** Connections kept per node (default 16). */
  connections?: number;
  /** The region whose nodes these are: its config keys are named in the hints of a refusal. */
  region?: string;
  logger?: Logger;
}

export type FillState = 'held' | 'fetched' | 'missing';

export interface InventoryPage {
  items: Array<{ id: ChunkId; size: number }>;
  cursor?: string;
}

/** Largest body accepted from a node when the chunk size is not known up front. */
const MAX_BODY = 2 ** 30;
const REQUEST_TIMEOUT_MS = 15_000;
const READ_THROUGH_TIMEOUT_MS = 60_000;
const DOWN_FOR_MS = 3_000;
const CONNECTIONS = 16;

/** A node as requests to it are named in errors. */
const where = (node: NodeRef) => `cache node ${node.id} at ${node.url}`;

/**
 * HTTP client of the cache nodes. A node that cannot be reached (refused, connect timeout, reset,
 * no headers in time) is remembered as down for `downForMs`: callers check `isDown` and skip it, so
 * a dead node costs one fast failure, not one per chunk.
 */
export class CacheNodeClient {
  readonly #http: HttpClient;
  readonly #downForMs: number;
  readonly #readThroughTimeoutMs: number;
  readonly #down = new Map<string, number>();
  readonly #log: Logger;

  constructor(options: CacheClientOptions) {
    this.#downForMs = options.downForMs ?? DOWN_FOR_MS;
    const r = options.region ?? '<r>';
    // A client given its own request timeout (and no read-through one) waits that long for everything.
    this.#readThroughTimeoutMs = options.readThroughTimeoutMs ?? options.requestTimeoutMs ?? READ_THROUGH_TIMEOUT_MS;
    this.#log = options.logger ?? silentLogger;
    this.#http = new HttpClient({
      service: 'cache node',
      token: options.token,
      connectTimeoutMs: options.connectTimeoutMs,
      requestTimeoutMs: options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS,
      connections: options.connections ?? CONNECTIONS,
      ...(options.ca ? { ca: options.ca } : {}),
      hints: {
        401: `the node refused the token: check regions.${r}.cache.readToken / writeToken`,
        403: `this needs the write token: regions.${r}.cache.writeToken`,
        tls: `check regions.${r}.cache.tls.ca`,
      },
    });
  }

  isDown(node: NodeRef): boolean {
    const until = this.#down.get(node.id);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.#down.delete(node.id);
    return false;
  }

  markDown(node: NodeRef, reason: string): void {
    if (!this.isDown(node)) this.#log.warn({ node: node.id, url: node.url, reason }, 'cache node unreachable; skipping it for a while');
    this.#down.set(node.id, Date.now() + this.#downForMs);
  }

  /** A request to a node; one that cannot reach it (or not trust it) marks the node down. */
  async #send(
    node: NodeRef,
    method: HttpMethod,
    path: string,
    extra: { headers?: Record<string, string>; body?: Buffer | string; signal?: AbortSignal; headersTimeoutMs?: number } = {},
  ): Promise<HttpResponse> {
    try {
      return await this.#http.send(`${node.url}${path}`, method, where(node), extra);
    } catch (err) {
      this.#noteFailure(node, err);
      throw err;
    }
  }

  /** A request that got no answer, or a body cut short, marks its node down (an abort does not). */
  #noteFailure(node: NodeRef, err: unknown): void {
    if (err instanceof Unreachable) this.markDown(node, err.reason);
    else if ((err as Error).name !== 'AbortError') this.markDown(node, messageOf(err));
  }

  /** Turn a response that is not one of `ok` into a Ferry error (its body consumed). */
  async #fail(node: NodeRef, what: string, res: HttpResponse): Promise<never> {
    throw await this.#http.failure(res, `cache node ${node.id}: ${what}`);
  }

  /**
   * A chunk's bytes, or undefined when the node does not have it. With `size` the node reads it
   * through from the region's stores on a miss (and keeps it), so undefined then means the region
   * does not have it either. With `path` too (a file that lists this external chunk) the node can
   * also read it from the file's origin object.
   */
  async get(node: NodeRef, id: ChunkId, options: { size?: number; path?: string; signal?: AbortSignal } = {}): Promise<Buffer | undefined> {
    const chunk = parseChunkId(id);
    // Received straight into one (reused) chunk buffer: chunk bodies are most of what a reader moves.
    const body = new BoundedBody(options.size ?? MAX_BODY);
    let res: Received;
    try {
      res = await this.#http.receive(`${node.url}/chunks/${chunk}${chunkQuery(options)}`, where(node), {
        onBody: (piece) => body.push(piece),
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.size !== undefined ? { headersTimeoutMs: this.#readThroughTimeoutMs } : {}),
      });
    } catch (err) {
      body.discard();
      this.#noteFailure(node, err);
      if (err instanceof BodyCutShort) {
        throw new UnavailableError(`cache node ${node.id}: get ${chunk}: body cut short: ${err.message}`, { cause: err.cause });
      }
      throw err;
    }
    if (res.statusCode === 200) return body.bytes;
    body.discard();
    if (res.statusCode === 404) return undefined;
    throw this.#http.failureOf(res.statusCode, res.text ?? '', `cache node ${node.id}: get ${chunk}`);
  }

  /** The chunk's size when the node holds it (no read-through, no recency change). */
  async head(node: NodeRef, id: ChunkId): Promise<number | undefined> {
    const chunk = parseChunkId(id);
    const res = await this.#send(node, 'HEAD', `/chunks/${chunk}`);
    await res.body.dump();
    if (res.statusCode === 404) return undefined;
    if (res.statusCode !== 200) return this.#fail(node, `head ${chunk}`, res);
    return Number(res.headers['content-length']);
  }

  /** Which of `ids` the node holds, asked in batches of 5,000. */
  async has(node: NodeRef, ids: readonly ChunkId[]): Promise<Set<ChunkId>> {
    const held = new Set<ChunkId>();
    for (let i = 0; i < ids.length; i += 5_000) {
      const batch = ids.slice(i, i + 5_000).map((id) => parseChunkId(id));
      const res = await this.#send(node, 'POST', '/chunks/has', {
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ids: batch }),
      });
      if (res.statusCode !== 200) return this.#fail(node, 'has', res);
      for (const id of ((await res.body.json()) as { has: string[] }).has) held.add(parseChunkId(id));
    }
    return held;
  }

  /**
   * Make the node hold a chunk, reading it from the region's stores itself (or, for an external
   * chunk with `path`, from that file's origin); nothing comes back here.
   */
  async fill(node: NodeRef, ref: { id: ChunkId; size: number; path?: string }, signal?: AbortSignal): Promise<FillState> {
    const chunk = parseChunkId(ref.id);
    const query = chunkQuery({ size: ref.size, ...(ref.path !== undefined ? { path: ref.path } : {}) });
    const res = await this.#send(node, 'POST', `/chunks/${chunk}/fill${query}`, signal ? { signal } : {});
    if (res.statusCode === 404) {
      await res.body.dump();
      return 'missing';
    }
    if (res.statusCode !== 200) return this.#fail(node, `fill ${chunk}`, res);
    return ((await res.body.json()) as { state: FillState }).state;
  }

  /**
   * Tell the node that the copy it served of `id` failed verification here. The node checks its
   * own copy again and evicts it when it is wrong (`evicted`); a good copy stays (`verified`: the
   * bytes were damaged on the way), and `missing` when it no longer holds it.
   */
  async reportBad(node: NodeRef, id: ChunkId): Promise<'evicted' | 'verified' | 'missing'> {
    const chunk = parseChunkId(id);
    const res = await this.#send(node, 'POST', `/chunks/${chunk}/bad`);
    if (res.statusCode !== 200) return this.#fail(node, `report ${chunk}`, res);
    return ((await res.body.json()) as { state: 'evicted' | 'verified' | 'missing' }).state;
  }

  /** Store bytes on the node; it verifies them against the id and refuses (CorruptError) a bad copy. */
  async put(node: NodeRef, id: ChunkId, bytes: Buffer): Promise<'stored' | 'exists'> {
    const chunk = parseChunkId(id);
    const res = await this.#send(node, 'PUT', `/chunks/${chunk}`, {
      headers: { 'content-type': 'application/octet-stream', 'x-ferry-size': String(bytes.length) },
      body: bytes,
    });
    if (res.statusCode !== 200 && res.statusCode !== 201) return this.#fail(node, `put ${chunk}`, res);
    await res.body.dump();
    return res.statusCode === 201 ? 'stored' : 'exists';
  }

  async delete(node: NodeRef, id: ChunkId): Promise<void> {
    const chunk = parseChunkId(id);
    const res = await this.#send(node, 'DELETE', `/chunks/${chunk}`);
    if (res.statusCode !== 204) return this.#fail(node, `delete ${chunk}`, res);
    await res.body.dump();
  }

  async inventory(node: NodeRef, options: { cursor?: string; limit?: number } = {}): Promise<InventoryPage> {
    const params = new URLSearchParams();
    if (options.cursor) params.set('cursor', options.cursor);
    if (options.limit) params.set('limit', String(options.limit));
    const res = await this.#send(node, 'GET', `/inventory?${params}`);
    if (res.statusCode !== 200) return this.#fail(node, 'inventory', res);
    return (await res.body.json()) as InventoryPage;
  }

  /** Every chunk the node holds, page by page. */
  async *inventoryAll(node: NodeRef, limit = 10_000): AsyncIterable<{ id: ChunkId; size: number }> {
    let cursor: string | undefined;
    do {
      const page = await this.inventory(node, { limit, ...(cursor ? { cursor } : {}) });
      yield* page.items;
      cursor = page.cursor;
    } while (cursor);
  }

  /** The node's Prometheus metrics text. */
  async metrics(node: NodeRef): Promise<string> {
    const res = await this.#send(node, 'GET', '/metrics');
    if (res.statusCode !== 200) return this.#fail(node, 'metrics', res);
    return res.body.text();
  }

  close(): Promise<void> {
    return this.#http.close();
  }
}

/** `?size=…&path=…` of a chunk request, empty when neither is given. */
function chunkQuery(options: { size?: number; path?: string }): string {
  const params = new URLSearchParams();
  if (options.size !== undefined) params.set('size', String(options.size));
  if (options.path !== undefined) params.set('path', options.path);
  const text = params.toString();
  return text === '' ? '' : `?${text}`;
}

/** One sample of a Prometheus text exposition (`name` without labels), or undefined. */
export function metricValue(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}
