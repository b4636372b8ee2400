/** What a request holds of a service's budget; `release` is safe to call more than once. */
export interface BudgetLease {
  readonly bytes: number;
  release(): void;
}

export interface InFlightBudgetOptions {
  /** Streams (requests holding bytes) at once. */
  maxStreams: number;
  /** Bytes all streams together may hold in memory. */
  maxBytes: number;
}

/**
 * A service's global cap on concurrent streams and on the bytes they hold. A request asks before
 * it starts and is refused at once when either cap would be passed (the service answers "slow
 * down" and the client retries), so memory stays bounded however many clients connect, and no
 * refused request waits holding a socket.
 */
export class InFlightBudget {
  readonly maxStreams: number;
  readonly maxBytes: number;
  #streams = 0;
  #bytes = 0;

  constructor(options: InFlightBudgetOptions) {
    this.maxStreams = options.maxStreams;
    this.maxBytes = options.maxBytes;
  }

  get streams(): number {
    return this.#streams;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** A lease of `bytes` (capped at the whole budget, so one large request can still run alone), or undefined when full. */
  tryAcquire(bytes: number): BudgetLease | undefined {
    const want = Math.min(Math.max(0, bytes), this.maxBytes);
    if (this.#streams >= this.maxStreams || this.#bytes + want > this.maxBytes) return undefined;
    this.#streams += 1;
    this.#bytes += want;
    let held = true;
    return {
      bytes: want,
      release: () => {
        if (!held) return;
        held = false;
        this.#streams -= 1;
        this.#bytes -= want;
      },
    };
  }
}
