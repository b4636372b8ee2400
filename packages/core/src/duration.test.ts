import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from './duration.js';

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['2s', 2_000],
    ['1.5s', 1_500],
    ['10m', 600_000],
    ['24h', 86_400_000],
    ['1d', 86_400_000],
    ['250', 250],
    [' 3 S ', 3_000],
    [0, 0],
    [1500, 1_500],
  ])('%j', (input, ms) => expect(parseDuration(input)).toBe(ms));

  it.each(['', 's', '2 fortnights', '-1s', '1e3s', '2s3'])('rejects %j with one line', (input) => {
    expect(() => parseDuration(input)).toThrow(/^invalid duration "[^\n]*": expected a number with a unit \(ms, s, m, h, d\)/);
  });

  it.each([-1, Number.NaN, Number.POSITIVE_INFINITY])('rejects the number %d', (input) => {
    expect(() => parseDuration(input)).toThrow('invalid duration');
  });

  it('formats', () => {
    expect(formatDuration(500)).toBe('500ms');
    expect(formatDuration(10_000)).toBe('10s');
    expect(formatDuration(1_500)).toBe('1.5s');
    expect(formatDuration(600_000)).toBe('10m');
  });
});
