import { describe, expect, it } from 'vitest';
import { formatBytes, parseSize } from './size.js';

describe('parseSize', () => {
  it.each([
    ['8MiB', 8 * 2 ** 20],
    ['200GiB', 200 * 2 ** 30],
    ['1.5 GB', 1.5e9],
    ['4096', 4096],
    ['64kib', 65536],
  ])('%s', (input, bytes) => expect(parseSize(input)).toBe(bytes));

  it.each(['', 'MiB', '8 parsecs', '-1MiB', '1e9'])('rejects %j', (input) => {
    expect(() => parseSize(input)).toThrow(/invalid size/);
  });

  it('formats', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(8 * 2 ** 20)).toBe('8.0 MiB');
  });
});
