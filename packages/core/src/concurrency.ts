import { InvalidArgumentError } from './errors.js';

/**
 * Run `fn` over `items` with at most `limit` calls in flight. The next item is taken from the
 * source only when a call has finished, so a lazy source (an async generator reading a file or a
 * listing) holds no more than `limit` items in memory at once, whatever its length.
 *
 * The first failure, of a call or of the source itself, stops it: no further item is taken, the
 * source is closed (`return()`, so a generator's `finally` runs), the calls already running are
 * waited for — nothing started here is still running when this returns — and that first error
 * is thrown. Later failures of calls already in flight are dropped.
 */
export async function forEachLimit<T>(
  items: Iterable<T> | AsyncIterable<T>,
  limit: number | (() => number),
  fn: (item: T, index: number) => Promise<void> | void,
): Promise<void> {
  // A function is asked again before each item: a window that grows as servers are discovered.
  const limitNow = typeof limit === 'function' ? () => Math.max(1, Math.floor(limit())) : () => limit;
  if (typeof limit === 'number' && (!Number.isInteger(limit) || limit < 1)) {
    throw new InvalidArgumentError(`concurrency limit must be a whole number ≥ 1, got ${limit}`);
  }
  const iterator: Iterator<T> | AsyncIterator<T> =
    Symbol.asyncIterator in Object(items) ? (items as AsyncIterable<T>)[Symbol.asyncIterator]() : (items as Iterable<T>)[Symbol.iterator]();
  let running = 0;
  let failed = false;
  let failure: unknown;
  let wake: (() => void) | undefined;
  const fail = (err: unknown) => {
    if (failed) return;
    failed = true;
    failure = err;
  };
  const finished = () => {
    running -= 1;
    const resume = wake;
    wake = undefined;
    resume?.();
  };
  // Resolved by the next call to finish (every finish wakes the one waiter there is).
  const oneFinished = () => new Promise<void>((resolve) => (wake = resolve));

  let exhausted = false;
  let index = 0;
  try {
    while (!failed) {
      while (running >= limitNow() && !failed) await oneFinished();
      if (failed) break;
      const next = await iterator.next();
      if (next.done) {
        exhausted = true;
        break;
      }
      // A call may have failed while the source was producing this item: it is not started.
      if (failed) break;
      running += 1;
      let call: Promise<void> | void;
      try {
        call = fn(next.value, index++);
      } catch (err) {
        call = Promise.reject(err);
      }
      Promise.resolve(call).then(finished, (err: unknown) => {
        fail(err);
        finished();
      });
    }
  } catch (err) {
    // The source threw: it is finished already, nothing to close.
    exhausted = true;
    fail(err);
  }
  if (!exhausted) {
    try {
      await iterator.return?.();
    } catch (err) {
      fail(err);
    }
  }
  while (running > 0) await oneFinished();
  if (failed) throw failure;
}

/**
 * The same bound for calls that arrive on their own (requests to a server) rather than from a
 * list: `limit(fn)` runs `fn` at once while fewer than `max` run, else when one of them ends.
 * Waiting calls start in arrival order.
 */
export function concurrencyLimit(max: number): <T>(fn: () => Promise<T>) => Promise<T> {
  if (!Number.isInteger(max) || max < 1) throw new InvalidArgumentError(`concurrency limit must be a whole number ≥ 1, got ${max}`);
  let active = 0;
  const waiting: Array<() => void> = [];
  return async <T>(fn: () => Promise<T>): Promise<T> => {
    if (active < max) active += 1;
    else await new Promise<void>((resolve) => waiting.push(resolve));
    try {
      return await fn();
    } finally {
      // A finished call hands its slot to the next waiter directly, so none can jump the line.
      const next = waiting.shift();
      if (next) next();
      else active -= 1;
    }
  };
}

/**
 * Items of `source` pulled up to `ahead` before they are asked for, so a slow consumer (a Redis
 * round trip per page) and a slow producer (a listing) overlap instead of taking turns. Memory
 * holds at most `ahead` items beyond the one being used. A failure of the source is thrown where
 * the item it failed on would have been; returning early closes the source.
 */
export async function* readAhead<T>(source: AsyncIterable<T>, ahead: number): AsyncGenerator<T> {
  if (!Number.isInteger(ahead) || ahead < 1) throw new InvalidArgumentError(`read-ahead must be a whole number ≥ 1, got ${ahead}`);
  const iterator = source[Symbol.asyncIterator]();
  const buffered: Array<Promise<IteratorResult<T>>> = [];
  let done = false;
  // An async generator queues next() calls and answers them in order, so asking `ahead` times
  // keeps that many items in the making.
  const fill = () => {
    while (!done && buffered.length < ahead) {
      const next = iterator.next();
      buffered.push(next);
      next.then(
        (r) => {
          if (r.done) done = true;
        },
        () => {
          done = true;
        },
      );
    }
  };
  try {
    fill();
    while (buffered.length > 0) {
      const result = await (buffered.shift() as Promise<IteratorResult<T>>);
      if (result.done) return;
      fill();
      yield result.value;
    }
  } finally {
    if (!done) await iterator.return?.();
  }
}

/**
 * A wait a loop can be woken from: `sleep(ms)` resolves after `ms`, or as soon as `wake()` is
 * called (a stop, new work). A daemon's loop sleeps between passes on one of these, so a stop or
 * a nudge never waits out the interval.
 */
export class Pause {
  #wake: (() => void) | undefined;

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(timer);
        if (self.#wake === done) self.#wake = undefined;
        resolve();
      }
      this.#wake = done;
    });
  }

  wake(): void {
    this.#wake?.();
  }
}

/**
 * One call for many keys, made as keys come in: the first key is sent at once, and keys asked for
 * while a call is in flight go together in the next one (at most `max` per call). For a lookup
 * many tasks make one key at a time (a Redis round trip per small file), so a slow store or
 * server batches more and a fast one waits for nothing. `run` answers in the order of its keys;
 * its failure fails every key of that call.
 */
export function coalesce<K, R>(run: (keys: K[]) => Promise<R[]>, max = 1000): (key: K) => Promise<R> {
  let queued: Array<{ key: K; resolve: (r: R) => void; reject: (err: unknown) => void }> = [];
  let inFlight = false;
  const send = (): void => {
    if (inFlight || queued.length === 0) return;
    const batch = queued.slice(0, max);
    queued = queued.slice(batch.length);
    inFlight = true;
    run(batch.map((b) => b.key))
      .then(
        (results) => {
          batch.forEach((b, i) => {
            b.resolve(results[i] as R);
          });
        },
        (err: unknown) => {
          for (const b of batch) b.reject(err);
        },
      )
      .finally(() => {
        inFlight = false;
        send();
      });
  };
  return (key) =>
    new Promise<R>((resolve, reject) => {
      queued.push({ key, resolve, reject });
      send();
    });
}
