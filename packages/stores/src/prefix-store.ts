import type { GetOptions, GetResult, ListOptions, ListPage, ObjectInfo, ObjectStore, PutBody, PutOptions, PutResult } from './types.js';

/** Presents `prefix/…` of an inner store as the whole store. `prefix` has no leading/trailing `/`. */
export class PrefixStore implements ObjectStore {
  readonly url: string;
  readonly #inner: ObjectStore;
  readonly #prefix: string;

  constructor(options: { inner: ObjectStore; prefix: string; url?: string }) {
    this.#inner = options.inner;
    this.#prefix = options.prefix ? `${options.prefix}/` : '';
    this.url = options.url ?? `${options.inner.url.replace(/\/$/, '')}/${options.prefix}`;
  }

  get capabilities() {
    return this.#inner.capabilities;
  }

  #strip(info: ObjectInfo): ObjectInfo {
    return { ...info, key: info.key.slice(this.#prefix.length) };
  }

  async head(key: string): Promise<ObjectInfo> {
    return this.#strip(await this.#inner.head(this.#prefix + key));
  }

  async get(key: string, options?: GetOptions): Promise<GetResult> {
    const result = await this.#inner.get(this.#prefix + key, options);
    return { ...result, info: this.#strip(result.info) };
  }

  put(key: string, body: PutBody, options?: PutOptions): Promise<PutResult> {
    return this.#inner.put(this.#prefix + key, body, options);
  }

  delete(key: string): Promise<void> {
    return this.#inner.delete(this.#prefix + key);
  }

  async *list(prefix: string, options: ListOptions = {}): AsyncIterable<ListPage> {
    // Cursors are opaque and belong to the inner store: passed through unchanged.
    for await (const page of this.#inner.list(this.#prefix + prefix, options)) {
      const items = page.items.map((i) => this.#strip(i));
      yield page.cursor === undefined ? { items } : { items, cursor: page.cursor };
    }
  }

  close(): Promise<void> {
    return this.#inner.close?.() ?? Promise.resolve();
  }
}
