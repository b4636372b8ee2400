import type { Entry } from '@ferry/core';
import { describe, expect, it } from 'vitest';
import { S3Error } from './errors.js';
import { decodeToken, encodeToken, listKeys, prefixDir } from './listing.js';
import { checkPreconditions, etagOf, parseRange, planObject } from './objects.js';
import { keyToPath, parseUrl } from './target.js';
import { escapeXml, urlEncodeKey } from './xml.js';

function failure(fn: () => unknown): { code: string; status: number } | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    if (err instanceof S3Error) return { code: err.code, status: err.status };
    throw err;
  }
}

describe('Range', () => {
  it('reads the three forms and clamps the end', () => {
    expect(parseRange('bytes=0-9', 100)).toEqual({ start: 0, end: 9 });
    expect(parseRange('bytes=90-', 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange('bytes=-10', 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange('bytes=-1000', 100)).toEqual({ start: 0, end: 99 });
    expect(parseRange('bytes=50-1000', 100)).toEqual({ start: 50, end: 99 });
    expect(parseRange('bytes=99-99', 100)).toEqual({ start: 99, end: 99 });
  });

  it('ignores what it cannot serve, as S3 does: no header, bad syntax, several ranges, end before start', () => {
    for (const header of [undefined, 'bytes=', 'bytes=-', 'items=0-1', 'bytes=0-1,5-6', 'bytes=5-3', 'bytes=a-b']) {
      expect(parseRange(header, 100)).toBeUndefined();
    }
  });

  it('416 InvalidRange with Content-Range */size when no byte is selected', () => {
    expect(failure(() => parseRange('bytes=100-', 100))).toEqual({ code: 'InvalidRange', status: 416 });
    expect(failure(() => parseRange('bytes=-0', 100))).toEqual({ code: 'InvalidRange', status: 416 });
    expect(failure(() => parseRange('bytes=0-', 0))).toEqual({ code: 'InvalidRange', status: 416 });
    try {
      parseRange('bytes=200-300', 100);
    } catch (err) {
      expect((err as S3Error).headers['content-range']).toBe('bytes */100');
    }
  });
});

describe('conditional requests', () => {
  const etag = '"abc"';
  const mtime = Date.UTC(2024, 0, 2, 3, 4, 5, 678);
  const at = (deltaSeconds: number) => new Date(Math.floor(mtime / 1000) * 1000 + deltaSeconds * 1000).toUTCString();

  it('If-Match / If-Unmodified-Since → 412', () => {
    expect(checkPreconditions({ 'if-match': '"other"' }, etag, mtime)).toBe(412);
    expect(checkPreconditions({ 'if-match': '"other", "abc"' }, etag, mtime)).toBeUndefined();
    expect(checkPreconditions({ 'if-match': '*' }, etag, mtime)).toBeUndefined();
    expect(checkPreconditions({ 'if-match': 'W/"abc"' }, etag, mtime)).toBe(412);
    expect(checkPreconditions({ 'if-unmodified-since': at(-1) }, etag, mtime)).toBe(412);
    expect(checkPreconditions({ 'if-unmodified-since': at(0) }, etag, mtime)).toBeUndefined();
    // If-Match decides alone when present (RFC 9110 §13.2.2).
    expect(checkPreconditions({ 'if-match': etag, 'if-unmodified-since': at(-1) }, etag, mtime)).toBeUndefined();
  });

  it('If-None-Match / If-Modified-Since → 304', () => {
    expect(checkPreconditions({ 'if-none-match': etag }, etag, mtime)).toBe(304);
    expect(checkPreconditions({ 'if-none-match': 'W/"abc"' }, etag, mtime)).toBe(304);
    expect(checkPreconditions({ 'if-none-match': '"x"' }, etag, mtime)).toBeUndefined();
    expect(checkPreconditions({ 'if-modified-since': at(0) }, etag, mtime)).toBe(304);
    expect(checkPreconditions({ 'if-modified-since': at(-1) }, etag, mtime)).toBeUndefined();
    expect(checkPreconditions({ 'if-modified-since': 'not a date' }, etag, mtime)).toBeUndefined();
    expect(checkPreconditions({ 'if-none-match': '"x"', 'if-modified-since': at(5) }, etag, mtime)).toBeUndefined();
  });
});

describe('objects', () => {
  const entry = (over: Partial<Entry> = {}): Entry => ({
    path: '/m/x.bin',
    size: 10,
    mtime: 1_700_000_000_000,
    version: '1-0',
    chunkSize: 8,
    chunks: [
      { id: `sha256-${'a'.repeat(64)}` as Entry['chunks'][number]['id'], size: 8 },
      { id: `sha256-${'b'.repeat(64)}` as Entry['chunks'][number]['id'], size: 2 },
    ],
    ...over,
  });

  it('ETag follows the content, not the version; never 32 hex digits (rclone would take it for an MD5)', () => {
    expect(etagOf(entry())).toBe(etagOf(entry({ version: '2-0', mtime: 1 })));
    expect(etagOf(entry())).not.toBe(etagOf(entry({ chunks: [entry().chunks[1] as Entry['chunks'][number]], size: 2 })));
    expect(etagOf(entry({ sha256: 'f'.repeat(64) }))).toBe(`"${'f'.repeat(64)}"`);
    expect(etagOf(entry())).toMatch(/^"[0-9a-f]{64}"$/);
  });

  it('plans 200, 206, 304 and 412 with the right headers', () => {
    const e = entry();
    const full = planObject(e, {}, new Map());
    expect(full).toMatchObject({ status: 200, range: { start: 0, end: 9 } });
    expect(full.headers).toMatchObject({ 'content-length': '10', 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream' });
    const part = planObject(e, { range: 'bytes=-3' }, new Map());
    expect(part).toMatchObject({ status: 206, range: { start: 7, end: 9 } });
    expect(part.headers).toMatchObject({ 'content-length': '3', 'content-range': 'bytes 7-9/10' });
    expect(planObject(e, { range: 'bytes=0-1', 'if-range': '"stale"' }, new Map()).status).toBe(200);
    expect(planObject(e, { range: 'bytes=0-1', 'if-range': etagOf(e) }, new Map()).status).toBe(206);
    expect(planObject(e, { 'if-none-match': etagOf(e) }, new Map()).status).toBe(304);
    expect(planObject(e, { 'if-match': '"nope"' }, new Map()).status).toBe(412);
    const empty = planObject(entry({ size: 0, chunks: [] }), {}, new Map());
    expect(empty.range).toBeUndefined();
    expect(empty.headers['content-length']).toBe('0');
  });

  it('response-* overrides: printable ASCII only', () => {
    const plan = planObject(
      entry(),
      {},
      new Map([
        ['response-content-disposition', 'attachment; filename="x.bin"'],
        ['response-cache-control', 'no-cache\r\nset-cookie: a=b'],
      ]),
    );
    expect(plan.headers['content-disposition']).toBe('attachment; filename="x.bin"');
    expect(plan.headers['cache-control']).toBeUndefined();
  });
});

describe('request target', () => {
  it('splits bucket, key and query; decodes the key once', () => {
    expect(parseUrl('/').target).toEqual({ kind: 'service' });
    expect(parseUrl('/vol?list-type=2&prefix=a+b%2Fc').query).toEqual(
      new Map([
        ['list-type', '2'],
        ['prefix', 'a b/c'],
      ]),
    );
    expect(parseUrl('/vol/').target).toEqual({ kind: 'bucket', bucket: 'vol' });
    expect(parseUrl('/vol/a%2Fb/c%20d+e').target).toEqual({ kind: 'object', bucket: 'vol', key: 'a/b/c d+e' });
    expect(parseUrl('/vol/%252e%252e').target).toEqual({ kind: 'object', bucket: 'vol', key: '%2e%2e' });
    expect(parseUrl('/-/metrics').target).toEqual({ kind: 'internal', name: 'metrics' });
    expect(failure(() => parseUrl('/vol/%zz'))).toEqual({ code: 'InvalidURI', status: 400 });
  });

  it('keys become volume paths only when valid: traversal, NUL and empty segments are 400, a trailing "/" is 404', () => {
    expect(keyToPath('models/x.bin')).toBe('/models/x.bin');
    expect(keyToPath('%2e%2e')).toBe('/%2e%2e');
    for (const key of ['..', '../x', 'a/../b', 'a/./b', '.', 'a//b', '/etc/passwd', 'a\0b', 'a\\b', 'x'.repeat(1100)]) {
      expect(failure(() => keyToPath(key))).toEqual({ code: 'InvalidArgument', status: 400 });
    }
    expect(failure(() => keyToPath('models/'))).toEqual({ code: 'NoSuchKey', status: 404 });
  });
});

describe('listing helpers', () => {
  it('maps a prefix to the directory it lists', () => {
    expect(prefixDir('')).toEqual({ dir: '/', dirPart: '' });
    expect(prefixDir('mod')).toEqual({ dir: '/', dirPart: '' });
    expect(prefixDir('models/x')).toEqual({ dir: '/models', dirPart: 'models/' });
    expect(prefixDir('models/')).toEqual({ dir: '/models', dirPart: 'models/' });
    expect(prefixDir('a//')).toBeUndefined();
    expect(prefixDir('../x')).toBeUndefined();
  });

  it('continuation tokens round-trip and refuse anything else', () => {
    for (const key of ['a', 'models/x/', 'ünï/名前']) expect(decodeToken(encodeToken(key))).toBe(key);
    expect(decodeToken('')).toBeUndefined();
    expect(decodeToken('not a token!')).toBeUndefined();
  });
});

describe('xml', () => {
  it('escapes markup and keeps text readable', () => {
    expect(escapeXml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;');
    expect(escapeXml('名前 😀')).toBe('名前 😀');
    expect(escapeXml('a\u0001b')).toBe('a&#x1;b');
    expect(urlEncodeKey('a b/c+d')).toBe('a%20b/c%2Bd');
  });
});

describe("Ferry's own folder", () => {
  it('is not listed under any prefix that reaches into it', async () => {
    const entry = { path: '/.ferry/rev/hf/a/b/0123/config.json', size: 1, mtime: 0, version: '1', chunkSize: 1, chunks: [] } as Entry;
    let listed = 0;
    const list = async () => {
      listed++;
      return { items: [{ kind: 'file' as const, entry }] };
    };
    for (const prefix of ['.ferry/', '.ferry/rev/', '.ferry/rev/hf/a/b/0123/']) {
      expect((await listKeys(list, { prefix, maxKeys: 1000 })).contents, prefix).toEqual([]);
    }
    expect(listed).toBe(0);
  });
});
