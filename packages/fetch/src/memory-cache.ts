/** Share of the capacity chunks asked for once may take, unless the owner says otherwise. */
const PROBATION_SHARE = 1 / 8;

/**
 * Chunks held in process memory, bounded in bytes. Chunks are immutable and named by content,
 * so nothing here is ever invalidated, only evicted.
 *
 * A segmented LRU with a memory of what it let go (2Q): a chunk enters on probation (an eighth of
 * the capacity) and is protected once it is asked for again. One pass over a large file — an S3
 * client reading 4 GiB through the gateway — only ever cycles the probation segment: it neither
 * evicts the chunks that many readers share nor holds the whole capacity with chunks nobody asks
 * for twice. The ids of chunks that left probation unasked are remembered (ids only, as many as
 * the capacity holds chunks): a chunk fetched again while remembered goes straight to protected,
 * so a second reader minutes behind the first still makes the file's chunks stay. A protected
 * chunk pushed out by newer ones goes back on probation, where one more request saves it.
 */
export class MemoryCache {
  readonly #capacity: number;
  readonly #probationCapacity: number;
  /** Map keeps insertion order: the first key of each is its least recently used. */
  readonly #probation = new Map<string, Buffer>();
  readonly #protected = new Map<string, Buffer>();
  /** Ids (and sizes) of chunks that left probation without a second request. */
  readonly #remembered = new Map<string, number>();
  #probationBytes = 0;
  #protectedBytes = 0;
  #rememberedBytes = 0;

  /** `probationBytes`: how much of the capacity chunks asked for once may hold (default an eighth). */
  constructor(capacityBytes: number, options: { probationBytes?: number } = {}) {
    this.#capacity = Math.max(0, capacityBytes);
    this.#probationCapacity = Math.min(this.#capacity, Math.max(0, options.probationBytes ?? Math.floor(this.#capacity * PROBATION_SHARE)));
  }

  get bytes(): number {
    return this.#probationBytes + this.#protectedBytes;
  }

  has(id: string): boolean {
    return this.#protected.has(id) || this.#probation.has(id);
  }

  get(id: string): Buffer | undefined {
    const hit = this.#protected.get(id);
    if (hit) {
      this.#protected.delete(id);
      this.#protected.set(id, hit);
      return hit;
    }
    const probationary = this.#probation.get(id);
    if (probationary) {
      // Asked for again: worth keeping.
      this.#probation.delete(id);
      this.#probationBytes -= probationary.length;
      this.#protect(id, probationary);
    }
    return probationary;
  }

  set(id: string, bytes: Buffer): void {
    if (this.#protected.has(id) || bytes.length > this.#capacity) return;
    const old = this.#probation.get(id);
    if (old) {
      this.#probation.delete(id);
      this.#probationBytes -= old.length;
    }
    const remembered = this.#remembered.get(id);
    if (remembered !== undefined) {
      // Asked for again since it left: worth keeping.
      this.#remembered.delete(id);
      this.#rememberedBytes -= remembered;
      this.#protect(id, bytes);
      return;
    }
    this.#admit(id, bytes);
    this.#trim(id);
  }

  /** On probation as its most recently used; the oldest leave while it is over its share (never the newest). */
  #admit(id: string, bytes: Buffer): void {
    this.#probation.set(id, bytes);
    this.#probationBytes += bytes.length;
    for (const [key, value] of this.#probation) {
      if (this.#probationBytes <= this.#probationCapacity || key === id) break;
      this.#probation.delete(key);
      this.#probationBytes -= value.length;
      this.#remember(key, value.length);
    }
  }

  #remember(id: string, size: number): void {
    this.#remembered.set(id, size);
    this.#rememberedBytes += size;
    for (const [key, value] of this.#remembered) {
      if (this.#rememberedBytes <= this.#capacity) break;
      this.#remembered.delete(key);
      this.#rememberedBytes -= value;
    }
  }

  #protect(id: string, bytes: Buffer): void {
    this.#protected.set(id, bytes);
    this.#protectedBytes += bytes.length;
    for (const [key, value] of this.#protected) {
      if (this.#protectedBytes <= this.#capacity - this.#probationCapacity || key === id) break;
      this.#protected.delete(key);
      this.#protectedBytes -= value.length;
      this.#admit(key, value);
    }
    this.#trim(id);
  }

  /** Hold to the capacity in total, probation first, keeping `keep` (a chunk of a cache smaller than a few chunks). */
  #trim(keep: string): void {
    for (const segment of [this.#probation, this.#protected]) {
      for (const [key, value] of segment) {
        if (this.bytes <= this.#capacity) return;
        if (key === keep) continue;
        segment.delete(key);
        if (segment === this.#probation) {
          this.#probationBytes -= value.length;
          this.#remember(key, value.length);
        } else this.#protectedBytes -= value.length;
      }
    }
  }
}
