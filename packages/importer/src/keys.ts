import { createHash } from 'node:crypto';
import { MAX_PATH_BYTES, normalizePath } from '@ferry/core';
import { parseStoreUrl } from '@ferry/stores';

/** Why an origin object was not imported. Stable: scripts match on them in the JSON summary. */
export type SkipReason =
  | 'folder-marker'
  | 'control-character'
  | 'backslash'
  | 'empty-segment'
  | 'dot-segment'
  | 'invalid-unicode'
  | 'too-long'
  | 'invalid-path'
  | 'conflict'
  | 'conflict-directory';

export const SKIP_REASONS: Record<SkipReason, string> = {
  'folder-marker': 'folder marker (key ends with "/")',
  'control-character': 'key contains a control character',
  backslash: 'key contains a backslash',
  'empty-segment': 'key has an empty segment ("//" or a leading "/")',
  'dot-segment': 'key has a "." or ".." segment',
  'invalid-unicode': 'key is not valid Unicode',
  'too-long': `volume path would be longer than ${MAX_PATH_BYTES} bytes`,
  'invalid-path': 'key is not a valid volume path',
  conflict: 'a file that was not imported from this object exists at the path',
  'conflict-directory': 'the path is a directory, or lies under a file',
};

export type MappedKey = { path: string } | { reason: SkipReason };

// C0, DEL and C1, as normalizePath refuses them.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/**
 * The volume path of an origin key (relative to the origin URL's prefix) under `target`, or why
 * it has none. Every check runs before the path is built, and the result must come back from
 * normalizePath unchanged: a key can never name a path outside `target`.
 */
export function mapKey(target: string, key: string): MappedKey {
  if (key === '' || key.endsWith('/')) return { reason: 'folder-marker' };
  if (CONTROL.test(key)) return { reason: 'control-character' };
  if (key.includes('\\')) return { reason: 'backslash' };
  if (LONE_SURROGATE.test(key)) return { reason: 'invalid-unicode' };
  const segments = key.split('/');
  if (segments.some((s) => s === '')) return { reason: 'empty-segment' };
  if (segments.some((s) => s === '.' || s === '..')) return { reason: 'dot-segment' };
  const path = target === '/' ? `/${key}` : `${target}/${key}`;
  if (Buffer.byteLength(path, 'utf8') > MAX_PATH_BYTES) return { reason: 'too-long' };
  try {
    if (normalizePath(path) !== path) return { reason: 'invalid-path' };
  } catch {
    return { reason: 'invalid-path' };
  }
  return { path };
}

/**
 * The origin URL as it is recorded in `origin.store` and compared on every re-import: validated
 * (no credentials, known options), trailing slashes dropped and options sorted, so the same
 * origin typed two ways is one origin. Readers open it with createStore, so options such as an
 * endpoint stay in it.
 */
export function originStoreUrl(url: string): string {
  parseStoreUrl(url);
  const parsed = new URL(url);
  const scheme = parsed.protocol.slice(0, -1).toLowerCase();
  const path = parsed.pathname.replace(/\/+$/, '');
  const params = [...parsed.searchParams.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const query = new URLSearchParams(params).toString();
  const canonical = `${scheme}://${parsed.host}${path}${query ? `?${query}` : ''}`;
  parseStoreUrl(canonical);
  return canonical;
}

/** Identity of one import (origin + target): names its checkpoint in Redis. */
export function importId(originUrl: string, target: string): string {
  return createHash('sha256').update(`${originUrl}\n${target}`).digest('hex');
}
