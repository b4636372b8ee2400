import { describe, expect, it } from 'vitest';
import { CopyRates } from './rates.js';

describe('CopyRates', () => {
  it('gives no rate from one reading, then the rate over the window, and the last rate to a reading too soon', () => {
    const rates = new CopyRates({ minGapMs: 1000, windowMs: 10_000 });
    expect(rates.observe('eu', { chunks: 0, bytes: 0 }, 0)).toBeUndefined();
    expect(rates.observe('eu', { chunks: 2, bytes: 2000 }, 2000)).toEqual({ bytesPerSecond: 1000, chunksPerSecond: 1, overSeconds: 2 });
    // Too soon: the same rate, the reading not kept.
    expect(rates.observe('eu', { chunks: 9, bytes: 9000 }, 2500)).toEqual({ bytesPerSecond: 1000, chunksPerSecond: 1, overSeconds: 2 });
    // A burst between readings is averaged over the window, not shown as a spike and a zero.
    expect(rates.observe('eu', { chunks: 10, bytes: 10_000 }, 4000)?.bytesPerSecond).toBe(2500);
    expect(rates.observe('eu', { chunks: 10, bytes: 10_000 }, 6000)?.bytesPerSecond).toBe(Math.round(10_000 / 6));
    // Past the window the base moves up: from the newest reading at least 10 s old.
    expect(rates.observe('eu', { chunks: 10, bytes: 10_000 }, 15_000)).toEqual({ bytesPerSecond: 0, chunksPerSecond: 0, overSeconds: 11 });
  });

  it('starts again when the totals go back (a flushed Redis), and keeps regions apart', () => {
    const rates = new CopyRates();
    rates.observe('eu', { chunks: 5, bytes: 500 }, 0);
    rates.observe('us', { chunks: 0, bytes: 0 }, 0);
    expect(rates.observe('eu', { chunks: 1, bytes: 100 }, 2000)).toBeUndefined();
    expect(rates.observe('us', { chunks: 4, bytes: 400 }, 2000)?.bytesPerSecond).toBe(200);
  });
});
