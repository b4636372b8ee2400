export interface WaitOptions {
  /** Poll interval (default 25 ms). */
  everyMs?: number;
  /** A `check` that throws is "not yet" (default: the error is thrown). */
  tolerateErrors?: boolean;
}

/** Poll `check` until it is true; the ms it took. `every` is the poll interval in ms, or options. */
export function waitFor(
  check: () => Promise<boolean> | boolean,
  timeoutMs: number,
  what: string,
  every?: number | WaitOptions,
): Promise<number>;
