import { describe, expect, it } from 'vitest';
import { MemoryCache } from './memory-cache.js';

const chunk = (size = 100) => Buffer.alloc(size);

describe('MemoryCache', () => {
  it('keeps a one-pass scan to its probation share, and the chunks asked for twice through it', () => {
    const cache = new MemoryCache(1000);
    for (const id of ['hot-1', 'hot-2', 'hot-3']) {
      cache.set(id, chunk());
      expect(cache.get(id)).toBeDefined();
    }
    for (let i = 0; i < 1000; i++) {
      cache.set(`scan-${i}`, chunk());
      expect(cache.bytes).toBeLessThanOrEqual(300 + 250);
    }
    for (const id of ['hot-1', 'hot-2', 'hot-3']) expect(cache.has(id)).toBe(true);
    expect(cache.has('scan-999')).toBe(true);
    expect(cache.has('scan-0')).toBe(false);
  });

  it('uses the whole capacity for chunks asked for again, and sends the oldest of them back on probation', () => {
    const cache = new MemoryCache(1000);
    for (let i = 0; i < 10; i++) {
      cache.set(`c${i}`, chunk());
      cache.get(`c${i}`);
    }
    // 8 fit protected (875 bytes); the 2 oldest went back on probation (125): 1 of them stays.
    expect(cache.bytes).toBeLessThanOrEqual(1000);
    expect(['c0', 'c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7', 'c8', 'c9'].filter((id) => cache.has(id))).toHaveLength(9);
    expect(cache.has('c0')).toBe(false);
    // One more request saves a chunk on probation.
    expect(cache.get('c1')).toBeDefined();
    expect(cache.has('c1')).toBe(true);
  });

  it('protects a chunk fetched again after it left probation unasked (a second reader far behind the first)', () => {
    const cache = new MemoryCache(1000);
    for (let i = 0; i < 5; i++) cache.set(`first-pass-${i}`, chunk());
    expect(cache.has('first-pass-0')).toBe(false);
    cache.set('first-pass-0', chunk());
    for (let i = 0; i < 100; i++) cache.set(`scan-${i}`, chunk());
    expect(cache.has('first-pass-0')).toBe(true);
    // Only ids are remembered, as many as the capacity holds chunks: a chunk forgotten long ago starts over.
    cache.set('forgotten', chunk());
    for (let i = 0; i < 100; i++) cache.set(`more-${i}`, chunk());
    cache.set('forgotten', chunk());
    for (let i = 0; i < 5; i++) cache.set(`last-${i}`, chunk());
    expect(cache.has('forgotten')).toBe(false);
    expect(cache.has('first-pass-0')).toBe(true);
  });

  it('holds a chunk larger than the probation share when the capacity allows it', () => {
    const cache = new MemoryCache(1000);
    cache.set('big', chunk(600));
    expect(cache.get('big')).toBeDefined();
    cache.set('too-big', chunk(1001));
    expect(cache.has('too-big')).toBe(false);
  });

  it('never holds more than its capacity, whatever the order of requests', () => {
    let seed = 7;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const cache = new MemoryCache(2000);
    const sizes = new Map<string, number>();
    for (let step = 0; step < 20_000; step++) {
      const id = `c${random(60)}`;
      if (random(3) === 0) cache.get(id);
      else {
        const size = sizes.get(id) ?? 1 + random(700);
        sizes.set(id, size);
        cache.set(id, chunk(size));
      }
      expect(cache.bytes).toBeLessThanOrEqual(2000);
      const held = [...sizes.keys()].filter((key) => cache.has(key)).reduce((sum, key) => sum + (sizes.get(key) as number), 0);
      expect(held).toBe(cache.bytes);
    }
  });
});
