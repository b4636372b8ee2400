import { describe, expect, it } from 'vitest';
import { createStore, parseStoreUrl } from './create-store.js';

describe('store URLs', () => {
  it.each([
    ['file:///var/lib/ferry/src', { scheme: 'file', root: '/var/lib/ferry/src', fsync: true }],
    ['file:///data/x?fsync=0', { scheme: 'file', root: '/data/x', fsync: false }],
    ['memory://scratch', { scheme: 'memory', name: 'scratch' }],
    [
      's3://models-eu/ferry?region=eu-west-1&endpoint=http://127.0.0.1:9000&forcePathStyle=1&checksums=when_required',
      {
        scheme: 's3',
        bucket: 'models-eu',
        prefix: 'ferry',
        region: 'eu-west-1',
        endpoint: 'http://127.0.0.1:9000',
        forcePathStyle: true,
        checksums: 'when_required',
      },
    ],
    [
      'gs://models_us/a/b?endpoint=http://127.0.0.1:9199',
      { scheme: 'gs', bucket: 'models_us', prefix: 'a/b', endpoint: 'http://127.0.0.1:9199' },
    ],
    ['hf+https://huggingface.co/acme/tiny-llm', { scheme: 'hf', endpoint: 'https://huggingface.co', repo: 'acme/tiny-llm' }],
    ['hf+http://127.0.0.1:8080/datasets/acme/data', { scheme: 'hf', endpoint: 'http://127.0.0.1:8080', repo: 'datasets/acme/data' }],
  ])('parses %s', (url, expected) => {
    expect(parseStoreUrl(url)).toEqual(expected);
  });

  it.each([
    ['', 'invalid store URL "": empty'],
    ['/var/lib/ferry', 'invalid store URL "/var/lib/ferry": expected file:///dir, s3://bucket/prefix, gs://bucket/prefix or memory://name'],
    ['ftp://host/x', 'invalid store URL "ftp://host/x": unknown scheme "ftp:" (known: file, s3, gs, memory, hf+https)'],
    [
      'hf+https://huggingface.co/acme',
      'invalid store URL "hf+https://huggingface.co/acme": expected hf+https://host/org/name or hf+https://host/datasets/org/name',
    ],
    [
      'hf+https://huggingface.co/a/b/c',
      'invalid store URL "hf+https://huggingface.co/a/b/c": expected hf+https://host/org/name or hf+https://host/datasets/org/name',
    ],
    ['hf+https://huggingface.co/a/b?x=1', 'invalid store URL "hf+https://huggingface.co/a/b?x=1": unknown option "x"'],
    ['file://relative/dir', 'invalid store URL "file://relative/dir": file URLs have no host ("relative"); use file:///absolute/dir'],
    ['file:///', 'invalid store URL "file:///": expected file:///absolute/dir (not the filesystem root)'],
    ['s3://Bad_Bucket/x', 'invalid store URL "s3://Bad_Bucket/x": "Bad_Bucket" is not a valid bucket name'],
    [
      's3://bucket/x?regoin=eu',
      'invalid store URL "s3://bucket/x?regoin=eu": unknown option "regoin" (known: region, endpoint, forcePathStyle, checksums)',
    ],
    [
      's3://bucket/x?forcePathStyle=maybe',
      'invalid store URL "s3://bucket/x?forcePathStyle=maybe": forcePathStyle must be 1 or 0, got "maybe"',
    ],
    ['s3://bucket/../x', 'invalid store URL "s3://bucket/../x": the prefix may not contain "." or ".." segments'],
    [
      'gs://bucket/x?endpoint=127.0.0.1:9199',
      'invalid store URL "gs://bucket/x?endpoint=127.0.0.1:9199": endpoint must be http(s)://host[:port], got "127.0.0.1:9199"',
    ],
  ])('refuses %j in one line', (url, message) => {
    expect(() => parseStoreUrl(url)).toThrow(message);
    try {
      parseStoreUrl(url);
    } catch (err) {
      expect((err as { code: string }).code).toBe('INVALID_STORE_URL');
      expect((err as Error).message).not.toContain('\n');
    }
  });

  it('never repeats credentials pasted into a URL', () => {
    let message = '';
    try {
      createStore('s3://AKIAEXAMPLE:wJalrXUtnFEMI@bucket/prefix');
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('credentials do not belong in a store URL');
    expect(message).not.toContain('wJalrXUtnFEMI');
    expect(message).not.toContain('AKIAEXAMPLE');
  });
});
