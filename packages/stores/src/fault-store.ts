import { Transform } from 'node:stream';
import { seededRandom, TransientError } from '@ferry/core';
import type { GetOptions, GetResult, ListOptions, ListPage, ObjectInfo, ObjectStore, PutBody, PutOptions, PutResult } from './types.js';

export type StoreOperation = 'head' | 'get' | 'put' | 'delete' | 'list';

export interface FaultOptions {
  inner: ObjectStore;
  /** Probability (0–1) that a call fails with TransientError before reaching the inner store. */
  failRate?: number;
  /** Fail exactly the calls this returns true for (checked before failRate). */
  failWhen?: (op: StoreOperation, key: string, call: number) => boolean;
  /** Which operations failRate applies to (default: all). */
  operations?: StoreOperation[];
  /** Extra latency before each call, in ms. */
  latencyMs?: number;
  /** Probability (0–1) that a get's body stops early (the stream then errors with TransientError). */
  truncateRate?: number;
  /** Seed for a repeatable sequence of faults. */
  seed?: number;
}

/** Counts of what the decorator did, for assertions. */
export interface FaultStats {
  calls: Record<StoreOperation, number>;
  failed: number;
  truncated: number;
}

/** Wraps a store and injects transient failures, latency and truncated bodies. */
export class FaultStore implements ObjectStore {
  readonly stats: FaultStats = { calls: { head: 0, get: 0, put: 0, delete: 0, list: 0 }, failed: 0, truncated: 0 };
  readonly #o: FaultOptions;
  readonly #random: () => number;

  constructor(options: FaultOptions) {
    this.#o = options;
    this.#random = seededRandom(options.seed ?? Date.now());
  }

  get url() {
    return this.#o.inner.url;
  }

  get capabilities() {
    return this.#o.inner.capabilities;
  }

  async #before(op: StoreOperation, key: string): Promise<void> {
    const call = ++this.stats.calls[op];
    if (this.#o.latencyMs) await new Promise((r) => setTimeout(r, this.#o.latencyMs));
    const applies = !this.#o.operations || this.#o.operations.includes(op);
    if (this.#o.failWhen?.(op, key, call) || (applies && this.#random() < (this.#o.failRate ?? 0))) {
      this.stats.failed += 1;
      throw new TransientError(`injected fault: ${op} ${key} (call ${call})`);
    }
  }

  async head(key: string): Promise<ObjectInfo> {
    await this.#before('head', key);
    return this.#o.inner.head(key);
  }

  async get(key: string, options?: GetOptions): Promise<GetResult> {
    await this.#before('get', key);
    const result = await this.#o.inner.get(key, options);
    if (this.#random() >= (this.#o.truncateRate ?? 0)) return result;
    this.stats.truncated += 1;
    const length = result.end - result.start + 1;
    const cutAt = Math.floor(length / 2);
    let seen = 0;
    const cut = new Transform({
      transform(chunk: Buffer, _enc, done) {
        const room = cutAt - seen;
        seen += chunk.length;
        if (room >= chunk.length) return done(null, chunk);
        if (room > 0) this.push(chunk.subarray(0, room));
        result.body.destroy();
        done(new TransientError(`injected fault: body of ${key} truncated after ${cutAt} bytes`));
      },
    });
    result.body.on('error', (err) => cut.destroy(err));
    return { ...result, body: result.body.pipe(cut) };
  }

  async put(key: string, body: PutBody, options?: PutOptions): Promise<PutResult> {
    await this.#before('put', key);
    return this.#o.inner.put(key, body, options);
  }

  async delete(key: string): Promise<void> {
    await this.#before('delete', key);
    return this.#o.inner.delete(key);
  }

  async *list(prefix: string, options?: ListOptions): AsyncIterable<ListPage> {
    await this.#before('list', prefix);
    yield* this.#o.inner.list(prefix, options);
  }

  close(): Promise<void> {
    return this.#o.inner.close?.() ?? Promise.resolve();
  }
}
