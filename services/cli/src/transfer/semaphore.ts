/** Counts free slots; `acquire` waits for one. `drain` waits until all are free again. */
export class Semaphore {
  #free: number;
  readonly #size: number;
  readonly #waiting: Array<() => void> = [];
  readonly #idle: Array<() => void> = [];

  constructor(size: number) {
    this.#size = Math.max(1, size);
    this.#free = this.#size;
  }

  async acquire(): Promise<void> {
    if (this.#free > 0) {
      this.#free -= 1;
      return;
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }

  release(): void {
    const next = this.#waiting.shift();
    if (next) {
      next();
      return;
    }
    this.#free += 1;
    if (this.#free === this.#size) for (const done of this.#idle.splice(0)) done();
  }

  async drain(): Promise<void> {
    if (this.#free === this.#size) return;
    await new Promise<void>((resolve) => this.#idle.push(resolve));
  }
}
