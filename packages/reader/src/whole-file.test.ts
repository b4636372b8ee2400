import { describe, expect, it } from 'vitest';
import { hashesWholeFile, randomStart, WHOLE_FILE_WINDOW, wholeFileOrder, wholeFileRead, wholeFileWindow } from './whole-file.js';

const native = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `sha256-${String(i).padStart(64, '0')}`, size: 1 }));
const external = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `ext-${String(i).padStart(64, '0')}`, size: 1 }));

describe('wholeFileOrder', () => {
  it('takes the first chunk first, then from the start to the end, then the ones between', () => {
    expect(wholeFileOrder(8, 5)).toEqual([0, 5, 6, 7, 1, 2, 3, 4]);
    expect(wholeFileOrder(8, 1)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(wholeFileOrder(1, 3)).toEqual([0]);
    expect(wholeFileOrder(0, 3)).toEqual([]);
  });

  it('is every chunk once, wherever it starts (clamped to the file)', () => {
    for (const start of [-3, 0, 1, 2, 9, 10, 11, 1e9]) {
      const order = wholeFileOrder(10, start);
      expect(order[0]).toBe(0);
      expect([...order].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    }
  });

  it('starts readers that draw a random start all over the file', () => {
    let seed = 7;
    const random = () => {
      seed = (seed * 16807) % 2147483647;
      return (seed - 1) / 2147483646;
    };
    const starts = Array.from({ length: 1000 }, () => randomStart(100, random));
    expect(Math.min(...starts)).toBe(1);
    expect(Math.max(...starts)).toBe(99);
    expect(randomStart(1)).toBe(1);
  });
});

describe('wholeFileRead', () => {
  it('reads a file of native chunks from its start on, slots free as chunks arrive, window at most WHOLE_FILE_WINDOW', () => {
    const plan = wholeFileRead({ sha256: 'f'.repeat(64), chunks: native(6) }, { prefetch: 8, start: 4 });
    expect(plan).toMatchObject({ order: [0, 4, 5, 1, 2, 3], hashed: false });
    expect(hashesWholeFile({ sha256: 'f'.repeat(64), chunks: native(6) })).toBe(false);
    expect(plan.window(2000)).toBe(WHOLE_FILE_WINDOW);
    expect(plan.window(4)).toBe(8);
    expect(wholeFileWindow(64, 2000)).toBe(64);
  });

  it('reads a file with external chunks and a recorded sha256 in file order with the whole window, to hash it', () => {
    const chunks = [...native(2), ...external(3)];
    const plan = wholeFileRead({ sha256: 'f'.repeat(64), chunks }, { prefetch: 8, start: 3 });
    expect(plan).toMatchObject({ order: [0, 1, 2, 3, 4], hashed: true });
    expect(plan.window(2000)).toBe(2000);
    // No sha256 to check: nothing ties the read to file order.
    expect(wholeFileRead({ chunks }, { prefetch: 8, start: 3 })).toMatchObject({ order: [0, 3, 4, 1, 2], hashed: false });
  });
  it('hashes a file of native chunks as a whole, in file order, only when asked (--verify-file) and a sha256 is recorded', () => {
    const plan = wholeFileRead({ sha256: 'f'.repeat(64), chunks: native(5) }, { prefetch: 8, start: 3, verifyFile: true });
    expect(plan).toMatchObject({ order: [0, 1, 2, 3, 4], hashed: true });
    expect(wholeFileRead({ chunks: native(5) }, { prefetch: 8, start: 3, verifyFile: true })).toMatchObject({ hashed: false });
  });
});
