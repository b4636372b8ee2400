import { type NewEntry, nativeChunkId, sha256Hex } from '@ferry/core';
import { describe, expect, it } from 'vitest';
import { decodeStoredEntry, encodeLogEntry, encodeStoredEntry, entryRest, validateNewEntry, volumePath } from './entry.js';

const id = nativeChunkId(sha256Hex('x'));
const base: NewEntry = {
  path: '/m/a',
  size: 12,
  mtime: 5,
  chunkSize: 8,
  chunks: [
    { id, size: 8 },
    { id, size: 4 },
  ],
};

describe('validateNewEntry', () => {
  it('returns a canonical copy: normalised path, known fields only, whole ms', () => {
    const input = { ...base, path: 'm/a/', mtime: 5.9, extra: 1, chunks: base.chunks.map((c) => ({ ...c, note: 'x' })) } as NewEntry;
    expect(validateNewEntry(input)).toEqual({ ...base, mtime: 5 });
    expect(Object.keys(validateNewEntry({ ...base, sha256: 'f'.repeat(64) }))).toEqual([
      'path',
      'size',
      'mtime',
      'chunkSize',
      'chunks',
      'sha256',
    ]);
  });

  it('names the entry and the problem', () => {
    expect(() => validateNewEntry({ ...base, size: 13 })).toThrow('invalid entry /m/a: size 13 does not match its chunks (12 bytes)');
    expect(() =>
      validateNewEntry({
        ...base,
        chunks: [
          { id, size: 4 },
          { id, size: 8 },
        ],
      }),
    ).toThrow('all but the last must be 8');
    expect(() =>
      validateNewEntry({
        ...base,
        chunks: [
          { id, size: 9 },
          { id, size: 3 },
        ],
      }),
    ).toThrow('expected 1..8');
    expect(() => validateNewEntry({ ...base, size: -1 })).toThrow('not a whole number of bytes');
    expect(() => validateNewEntry({ ...base, origin: { store: 's3://b', key: 'k', etag: '', size: 1, lastModified: 1 } })).toThrow(
      'origin.etag',
    );
    expect(() => validateNewEntry({ ...base, path: '/a/\uD800' })).toThrow('unpaired UTF-16 surrogate');
  });

  it('accepts an empty file and an imported one', () => {
    const origin = { store: 's3://bucket/p', key: 'k', etag: '"e"', size: 12, lastModified: 7 };
    expect(validateNewEntry({ ...base, size: 0, chunks: [] }).chunks).toEqual([]);
    expect(validateNewEntry({ ...base, origin }).origin).toEqual(origin);
  });
});

describe('entry layout', () => {
  it('puts version and path first, so the scripts can splice the rest', () => {
    const entry = { ...validateNewEntry({ ...base, path: '/q/"x"' }), version: '17-3' };
    const rest = entryRest(entry);
    expect(encodeStoredEntry(entry)).toBe(`{"version":"17-3","path":"/q/\\"x\\"",${rest}`);
    expect(encodeLogEntry(entry)).toBe(`{"path":"/q/\\"x\\"",${rest}`);
    expect(rest.startsWith('"size":12,"mtime":5,')).toBe(true);
    expect(decodeStoredEntry(encodeStoredEntry(entry))).toEqual(entry);
    expect(JSON.parse(encodeLogEntry(entry))).toEqual({ ...base, path: '/q/"x"' });
  });

  it('refuses paths that are not stored as the same text', () => {
    expect(volumePath('/ok/ü 模型', 'x')).toBe('/ok/ü 模型');
    expect(() => volumePath('/bad\uDC00', 'stat')).toThrow('stat "/bad\\udc00": contains an unpaired UTF-16 surrogate');
  });
});
