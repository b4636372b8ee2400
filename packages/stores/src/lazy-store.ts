import type * as Store from './types.js';
import type { ObjectStore } from './types.js';

export interface LazyStoreOptions {
  url: string;
  capabilities: Store.StoreCapabilities;
  /** Makes the real store; called once, on the first call that needs it. */
  open: () => Promise<ObjectStore>;
}

/**
 * A store whose backend is made on first use. The cloud SDKs take a good part of a second to load,
 * and most commands (`ferry ls`, `ferry --help`, a warmup) never touch a cloud store: they should
 * not pay for it. Calls made before the backend is ready wait for it.
 */
export class LazyStore implements ObjectStore {
  readonly url: string;
  readonly capabilities: Store.StoreCapabilities;
  readonly #open: () => Promise<ObjectStore>;
  #inner: Promise<ObjectStore> | undefined;

  constructor(options: LazyStoreOptions) {
    this.url = options.url;
    this.capabilities = options.capabilities;
    this.#open = options.open;
  }

  #store(): Promise<ObjectStore> {
    this.#inner ??= this.#open();
    return this.#inner;
  }

  async head(key: string): Promise<Store.ObjectInfo> {
    return (await this.#store()).head(key);
  }

  async get(key: string, options?: Store.GetOptions): Promise<Store.GetResult> {
    return (await this.#store()).get(key, options);
  }

  async put(key: string, body: Store.PutBody, options?: Store.PutOptions): Promise<Store.PutResult> {
    return (await this.#store()).put(key, body, options);
  }

  async delete(key: string): Promise<void> {
    return (await this.#store()).delete(key);
  }

  async *list(prefix: string, options?: Store.ListOptions): AsyncIterable<Store.ListPage> {
    yield* (await this.#store()).list(prefix, options);
  }

  /** Closes the backend if it was ever made. */
  async close(): Promise<void> {
    if (!this.#inner) return;
    await (await this.#inner).close?.();
  }
}
