import { normalizePath } from '@ferry/core';
import { S3Error } from './errors.js';
import { decodeQueryComponent } from './sigv4.js';

/**
 * What a request addresses, read from the raw request target exactly once. Path-style only
 * (`/<bucket>/<key>`): virtual-host style would make the meaning of a path depend on the Host
 * header, and a gateway host named like the volume would then read the wrong keys.
 */
export type Target =
  | { kind: 'service' }
  | { kind: 'internal'; name: string }
  | { kind: 'bucket'; bucket: string }
  | { kind: 'object'; bucket: string; key: string };

export interface ParsedUrl {
  rawPath: string;
  rawQuery: string;
  /** Decoded query; the first value of a repeated name wins. */
  query: Map<string, string>;
  target: Target;
}

/** Paths under `/-/` are the gateway's own (metrics, health): no S3 bucket name starts with "-". */
export const INTERNAL_PREFIX = '/-/';

function decode(value: string, what: string, decoder: (v: string) => string = decodeURIComponent): string {
  try {
    return decoder(value);
  } catch {
    throw new S3Error('InvalidURI', `could not parse the ${what}: invalid percent-encoding`);
  }
}

export function parseUrl(url: string): ParsedUrl {
  const q = url.indexOf('?');
  const rawPath = q < 0 ? url : url.slice(0, q);
  const rawQuery = q < 0 ? '' : url.slice(q + 1);
  if (!rawPath.startsWith('/')) throw new S3Error('InvalidURI', 'could not parse the request URI');
  const query = new Map<string, string>();
  for (const part of rawQuery.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = decode(eq < 0 ? part : part.slice(0, eq), 'query string', decodeQueryComponent);
    if (!query.has(name)) query.set(name, eq < 0 ? '' : decode(part.slice(eq + 1), 'query string', decodeQueryComponent));
  }
  let target: Target;
  if (rawPath === '/') target = { kind: 'service' };
  else if (rawPath.startsWith(INTERNAL_PREFIX)) target = { kind: 'internal', name: rawPath.slice(INTERNAL_PREFIX.length) };
  else {
    const rest = rawPath.slice(1);
    const slash = rest.indexOf('/');
    const bucket = decode(slash < 0 ? rest : rest.slice(0, slash), 'bucket name');
    // The key is decoded once, as S3 does: "%2F" is a "/", "%252F" the three characters "%2F".
    const key = slash < 0 ? '' : decode(rest.slice(slash + 1), 'key');
    target = key === '' ? { kind: 'bucket', bucket } : { kind: 'object', bucket, key };
  }
  return { rawPath, rawQuery, query, target };
}

/**
 * The volume path of a key, validated before any lookup: normalizePath refuses "..", ".", empty
 * segments, NUL and control characters and over-long paths (400 InvalidArgument). A key that
 * normalizes to a different path (a trailing "/") names nothing in a volume: 404 NoSuchKey.
 */
export function keyToPath(key: string): string {
  const wanted = `/${key}`;
  let path: string;
  try {
    path = normalizePath(wanted);
  } catch (err) {
    throw new S3Error('InvalidArgument', `the key is not a valid volume path: ${(err as Error).message}`, { cause: err });
  }
  if (path !== wanted) throw new S3Error('NoSuchKey', 'the specified key does not exist');
  return path;
}
