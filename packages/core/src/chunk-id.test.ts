import { describe, expect, it } from 'vitest';
import { chunkKey, externalChunkId, isChunkId, nativeChunkId, parseChunkId } from './chunk-id.js';
import { sha256Hex } from './hashing.js';

const hex = sha256Hex('hello');

describe('chunk ids', () => {
  it('accepts exactly sha256-/ext- followed by 64 lowercase hex', () => {
    expect(isChunkId(`sha256-${hex}`)).toBe(true);
    expect(isChunkId(`ext-${hex}`)).toBe(true);
    for (const bad of [
      `sha256-${hex.toUpperCase()}`,
      `sha256-${hex}0`,
      `md5-${hex}`,
      `sha256-../../${hex.slice(6)}`,
      `sha256-${hex}\n`,
      42,
    ]) {
      expect(isChunkId(bad)).toBe(false);
    }
    expect(() => parseChunkId('sha256-../../etc/passwd')).toThrow(
      'invalid chunk id "sha256-../../etc/passwd": expected sha256-<64 hex> or ext-<64 hex>',
    );
  });

  it('maps an id to its fan-out key', () => {
    expect(chunkKey(nativeChunkId(hex))).toBe(`chunks/${hex.slice(0, 2)}/${hex.slice(2, 4)}/sha256-${hex}`);
  });

  it('gives a new external id when any field of the origin range changes', () => {
    const base = { store: 's3://b/p', key: 'k', etag: 'e1', offset: 0, length: 10 };
    const id = externalChunkId(base);
    expect(id).toMatch(/^ext-[0-9a-f]{64}$/);
    expect(externalChunkId({ ...base })).toBe(id);
    expect(externalChunkId({ ...base, etag: 'e2' })).not.toBe(id);
    expect(externalChunkId({ ...base, offset: 10 })).not.toBe(id);
  });
});
