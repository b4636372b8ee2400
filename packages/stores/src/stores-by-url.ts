import { createStore, type StoreCredentials } from './create-store.js';
import type { ObjectStore } from './types.js';

/**
 * Stores opened by URL on first use (createStore), the same store for that URL after: the origin
 * stores of imported files. `close()` closes every store opened here.
 */
export class StoresByUrl {
  readonly #stores = new Map<string, ObjectStore>();
  readonly #credentials: StoreCredentials;

  constructor(credentials: StoreCredentials = {}) {
    this.#credentials = credentials;
  }

  open(url: string): ObjectStore {
    let store = this.#stores.get(url);
    if (!store) {
      store = createStore(url, this.#credentials);
      this.#stores.set(url, store);
    }
    return store;
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.#stores.values()].map((s) => s.close?.()));
  }
}
