import { describe, expect, it } from 'vitest';
import { importId, mapKey, originStoreUrl } from './keys.js';

describe('mapKey', () => {
  it('maps keys relative to the origin prefix under the target', () => {
    expect(mapKey('/models', 'llama/config.json')).toEqual({ path: '/models/llama/config.json' });
    expect(mapKey('/', 'a b/模型 🚀.bin')).toEqual({ path: '/a b/模型 🚀.bin' });
  });

  it.each([
    ['', 'folder-marker'],
    ['dir/', 'folder-marker'],
    ['a//b', 'empty-segment'],
    ['/abs', 'empty-segment'],
    ['..', 'dot-segment'],
    ['.', 'dot-segment'],
    ['a/../../etc/passwd', 'dot-segment'],
    ['a/./b', 'dot-segment'],
    ['tab\there', 'control-character'],
    ['nul\u0000', 'control-character'],
    ['c1\u0085', 'control-character'],
    ['win\\path', 'backslash'],
    ['lone\uD800', 'invalid-unicode'],
    ['x'.repeat(1022), 'too-long'],
  ])('skips %j (%s)', (key, reason) => {
    expect(mapKey('/t', key)).toEqual({ reason });
  });

  it('counts bytes, not characters, against the 1024-byte limit', () => {
    expect(mapKey('/t', 'é'.repeat(510))).toEqual({ path: `/t/${'é'.repeat(510)}` }); // 3 + 1020 bytes
    expect(mapKey('/t', 'é'.repeat(511))).toEqual({ reason: 'too-long' });
  });
});

describe('originStoreUrl', () => {
  it('is the same for the same origin written two ways', () => {
    const a = originStoreUrl('s3://bucket/prefix/?region=eu-west-1&endpoint=http://127.0.0.1:9000');
    const b = originStoreUrl('s3://bucket/prefix?endpoint=http%3A%2F%2F127.0.0.1%3A9000&region=eu-west-1');
    expect(a).toBe(b);
    expect(originStoreUrl('file:///data/models/')).toBe('file:///data/models');
    expect(importId(a, '/m')).not.toBe(importId(a, '/n'));
  });

  it('refuses credentials and unknown options', () => {
    expect(() => originStoreUrl('s3://key:secret@bucket/p')).toThrow(/credentials/);
    expect(() => originStoreUrl('gs://bucket/p?token=x')).toThrow(/unknown option/);
  });
});
