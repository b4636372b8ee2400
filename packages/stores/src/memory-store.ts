import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { NotFoundError, PreconditionFailedError } from '@ferry/core';
import { bodyLength, bodyStream, readAll } from './body.js';
import { assertValidKey, compareKeys, resolveRange } from './keys.js';
import type * as Store from './types.js';
import type { ObjectStore } from './types.js';

interface Held {
  bytes: Buffer;
  etag: string;
  lastModified: number;
}

/** Named in-process stores, so two `memory://x` URLs in one process are the same store. */
const registry = new Map<string, Map<string, Held>>();

/** In-memory store for unit tests and the embedded demo's scratch space. */
export class MemoryStore implements ObjectStore {
  readonly url: string;
  readonly capabilities: Store.StoreCapabilities = { scheme: 'memory', serverSideIfMatch: true, maxObjectSize: 2 ** 31 - 1 };
  readonly #objects: Map<string, Held>;
  #counter = 0;

  constructor(options: { name?: string } = {}) {
    const name = options.name ?? `anon-${process.pid}-${Math.random().toString(36).slice(2)}`;
    this.url = `memory://${name}`;
    let objects = registry.get(name);
    if (!objects) {
      objects = new Map();
      registry.set(name, objects);
    }
    this.#objects = objects;
  }

  #held(key: string): Held {
    assertValidKey(key);
    const held = this.#objects.get(key);
    if (!held) throw new NotFoundError(`${this.url}: no object ${key}`);
    return held;
  }

  async head(key: string): Promise<Store.ObjectInfo> {
    const held = this.#held(key);
    return { key, size: held.bytes.length, etag: held.etag, lastModified: held.lastModified };
  }

  async get(key: string, options: Store.GetOptions = {}): Promise<Store.GetResult> {
    const held = this.#held(key);
    if (options.ifMatch !== undefined && options.ifMatch !== held.etag) {
      throw new PreconditionFailedError(`${this.url}: ${key} changed (etag ${held.etag}, expected ${options.ifMatch})`);
    }
    const { start, end } = resolveRange(options.range, held.bytes.length, key);
    const info = { key, size: held.bytes.length, etag: held.etag, lastModified: held.lastModified };
    return { info, start, end, body: Readable.from([held.bytes.subarray(start, end + 1)]) };
  }

  async put(key: string, body: Store.PutBody): Promise<Store.PutResult> {
    assertValidKey(key);
    bodyLength(body);
    const bytes = await readAll(bodyStream(body, key));
    this.#counter += 1;
    const etag = createHash('md5').update(bytes).update(String(this.#counter)).digest('hex');
    this.#objects.set(key, { bytes, etag, lastModified: Date.now() });
    return { etag };
  }

  async delete(key: string): Promise<void> {
    assertValidKey(key);
    this.#objects.delete(key);
  }

  async *list(prefix: string, options: Store.ListOptions = {}): AsyncIterable<Store.ListPage> {
    const pageSize = Math.max(1, Math.min(options.pageSize ?? 1000, 10_000));
    const keys = [...this.#objects.keys()]
      .filter((k) => k.startsWith(prefix) && (options.cursor === undefined || compareKeys(k, options.cursor) > 0))
      .sort(compareKeys);
    for (let i = 0; i < keys.length || i === 0; i += pageSize) {
      const items = keys.slice(i, i + pageSize).flatMap((key) => {
        const held = this.#objects.get(key);
        return held ? [{ key, size: held.bytes.length, etag: held.etag, lastModified: held.lastModified }] : [];
      });
      const last = i + pageSize < keys.length ? items.at(-1)?.key : undefined;
      yield last === undefined ? { items } : { items, cursor: last };
    }
  }
}
