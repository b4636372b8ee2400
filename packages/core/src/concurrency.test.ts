import { describe, expect, it } from 'vitest';
import { concurrencyLimit, forEachLimit, readAhead } from './concurrency.js';
import { InvalidArgumentError } from './errors.js';

const tick = (ms = 1) => new Promise((r) => setTimeout(r, ms));

describe('forEachLimit', () => {
  it('calls fn for every item, in order, never more than limit at once', async () => {
    let running = 0;
    let most = 0;
    const seen: Array<[number, number]> = [];
    await forEachLimit([10, 11, 12, 13, 14, 15, 16], 3, async (item, index) => {
      running += 1;
      most = Math.max(most, running);
      seen.push([item, index]);
      await tick(item % 3);
      running -= 1;
    });
    expect(seen).toEqual([10, 11, 12, 13, 14, 15, 16].map((item, i) => [item, i]));
    expect(most).toBe(3);
    expect(running).toBe(0);
  });

  it('resolves at once for nothing, and accepts synchronous fns', async () => {
    await forEachLimit([], 4, () => {
      throw new Error('not called');
    });
    const out: number[] = [];
    await forEachLimit(new Set([1, 2, 3]), 2, (n) => {
      out.push(n);
    });
    expect(out).toEqual([1, 2, 3]);
  });

  it('takes the next item from an async source only when a call has finished', async () => {
    let produced = 0;
    let finished = 0;
    let mostHeld = 0;
    async function* source() {
      for (let i = 0; i < 50; i++) {
        await tick(0);
        produced += 1;
        mostHeld = Math.max(mostHeld, produced - finished);
        yield i;
      }
    }
    await forEachLimit(source(), 4, async () => {
      await tick(1);
      finished += 1;
    });
    expect(finished).toBe(50);
    expect(mostHeld).toBeLessThanOrEqual(4);
  });

  it('stops at the first failure: no new calls, the source closed, running calls waited for', async () => {
    let closed = false;
    const started: number[] = [];
    const done: number[] = [];
    async function* source() {
      try {
        for (let i = 0; ; i++) yield i;
      } finally {
        closed = true;
      }
    }
    const run = forEachLimit(source(), 3, async (i) => {
      started.push(i);
      if (i === 4) throw new Error('boom 4');
      if (i === 5) {
        await tick(5);
        throw new Error('boom 5, later');
      }
      await tick(20);
      done.push(i);
    });
    await expect(run).rejects.toThrow('boom 4');
    expect(closed).toBe(true);
    // 0..2 ran, 3 took the slot of the first to finish, 4 failed, 5 was already running.
    expect(Math.max(...started)).toBeLessThanOrEqual(6);
    // Nothing still running once it has rejected.
    const snapshot = [...done];
    await tick(40);
    expect(done).toEqual(snapshot);
    expect(done).toEqual(expect.arrayContaining([0, 1, 2]));
  });

  it('reports a failing source after the calls it started have finished', async () => {
    const done: number[] = [];
    async function* source() {
      yield 1;
      yield 2;
      throw new Error('listing failed');
    }
    await expect(
      forEachLimit(source(), 4, async (i) => {
        await tick(10);
        done.push(i);
      }),
    ).rejects.toThrow('listing failed');
    expect(done.sort()).toEqual([1, 2]);
  });

  it('turns a synchronous throw of fn into the failure', async () => {
    await expect(
      forEachLimit([1, 2, 3], 2, (i) => {
        if (i === 2) throw new Error('sync');
      }),
    ).rejects.toThrow('sync');
  });

  it.each([0, -1, 1.5, Number.NaN])('refuses limit %s', async (limit) => {
    await expect(forEachLimit([1], limit, () => {})).rejects.toBeInstanceOf(InvalidArgumentError);
  });
});

describe('forEachLimit with a limit that changes', () => {
  it('asks the limit again before each item, so the window can grow while it runs', async () => {
    let limit = 1;
    let running = 0;
    const peaks: number[] = [];
    await forEachLimit(
      Array.from({ length: 12 }, (_, i) => i),
      () => limit,
      async (i) => {
        running += 1;
        peaks[i] = running;
        if (i === 2) limit = 4;
        await new Promise((r) => setTimeout(r, 5));
        running -= 1;
      },
    );
    expect(Math.max(...peaks.slice(0, 3))).toBe(1);
    expect(Math.max(...peaks)).toBe(4);
  });
});

describe('concurrencyLimit', () => {
  it('runs at most max calls at once and starts waiting ones in arrival order', async () => {
    const limit = concurrencyLimit(2);
    let running = 0;
    let peak = 0;
    const started: number[] = [];
    const gates: Array<() => void> = [];
    const calls = [0, 1, 2, 3].map((i) =>
      limit(async () => {
        started.push(i);
        running += 1;
        peak = Math.max(peak, running);
        await new Promise<void>((resolve) => gates.push(resolve));
        running -= 1;
        return i;
      }),
    );
    await new Promise((resolve) => setImmediate(resolve));
    expect(started).toEqual([0, 1]);
    while (gates.length > 0 || started.length < 4) {
      gates.shift()?.();
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(await Promise.all(calls)).toEqual([0, 1, 2, 3]);
    expect(started).toEqual([0, 1, 2, 3]);
    expect(peak).toBe(2);
  });

  it('frees the slot of a call that throws', async () => {
    const limit = concurrencyLimit(1);
    await expect(limit(async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await limit(async () => 'next')).toBe('next');
    expect(() => concurrencyLimit(0)).toThrow('whole number');
  });
});

describe('readAhead', () => {
  it('pulls up to `ahead` items while the consumer works, in order', async () => {
    let produced = 0;
    async function* source() {
      for (let i = 0; i < 6; i++) {
        produced += 1;
        yield i;
      }
    }
    const seen: Array<[number, number]> = [];
    for await (const item of readAhead(source(), 2)) {
      await tick(5);
      seen.push([item, produced]);
    }
    expect(seen.map(([item]) => item)).toEqual([0, 1, 2, 3, 4, 5]);
    // While item 0 was in use, items 1 and 2 were already made.
    expect(seen[0]?.[1]).toBeGreaterThanOrEqual(3);
  });

  it('throws a failure of the source in its place and closes the source on an early return', async () => {
    async function* failing() {
      yield 1;
      throw new Error('listing failed');
    }
    const got: number[] = [];
    await expect(
      (async () => {
        for await (const item of readAhead(failing(), 3)) got.push(item);
      })(),
    ).rejects.toThrow('listing failed');
    expect(got).toEqual([1]);

    let closed = false;
    async function* endless() {
      try {
        for (let i = 0; ; i++) yield i;
      } finally {
        closed = true;
      }
    }
    for await (const item of readAhead(endless(), 2)) if (item === 3) break;
    expect(closed).toBe(true);
  });
});
