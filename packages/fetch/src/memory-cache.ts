/**
 * Chunks held in process memory, least recently used evicted first, bounded in bytes. Chunks
 * are immutable and named by content, so nothing here is ever invalidated, only evicted.
 */
export class MemoryCache {
  readonly #capacity: number;
  readonly #items = new Map<string, Buffer>();
  #bytes = 0;

  constructor(capacityBytes: number) {
    this.#capacity = Math.max(0, capacityBytes);
  }

  get bytes(): number {
    return this.#bytes;
  }

  has(id: string): boolean {
    return this.#items.has(id);
  }

  get(id: string): Buffer | undefined {
    const hit = this.#items.get(id);
    if (hit) {
      // Map keeps insertion order: re-inserting makes this the most recently used.
      this.#items.delete(id);
      this.#items.set(id, hit);
    }
    return hit;
  }

  set(id: string, bytes: Buffer): void {
    if (bytes.length > this.#capacity) return;
    const old = this.#items.get(id);
    if (old) {
      this.#items.delete(id);
      this.#bytes -= old.length;
    }
    this.#items.set(id, bytes);
    this.#bytes += bytes.length;
    for (const [key, value] of this.#items) {
      if (this.#bytes <= this.#capacity) break;
      this.#items.delete(key);
      this.#bytes -= value.length;
    }
  }
}
