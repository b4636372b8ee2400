import { isAbsolute, normalize } from 'node:path';
import { InvalidStoreUrlError } from '@ferry/core';
import { FsStore } from './fs-store.js';
import { HfStore } from './hf-store.js';
import { LazyStore } from './lazy-store.js';
import { MemoryStore } from './memory-store.js';
import { PrefixStore } from './prefix-store.js';
import type { ObjectStore } from './types.js';

/** What the cloud backends offer, known without loading their SDKs. */
const CLOUD_CAPABILITIES = {
  s3: { scheme: 's3', serverSideIfMatch: true, maxObjectSize: 5 * 2 ** 40 },
  gs: { scheme: 'gs', serverSideIfMatch: true, maxObjectSize: 5 * 2 ** 40 },
} as const;

export type StoreUrl =
  | { scheme: 'file'; root: string; fsync: boolean }
  | { scheme: 'memory'; name: string }
  | {
      scheme: 's3';
      bucket: string;
      prefix: string;
      region?: string;
      endpoint?: string;
      forcePathStyle: boolean;
      checksums: 'when_required' | 'when_supported';
    }
  | { scheme: 'gs'; bucket: string; prefix: string; endpoint?: string; projectId?: string }
  /** A Hugging Face Hub repo, read-only (an import's origin): `hf+https://huggingface.co/org/name`. */
  | { scheme: 'hf'; endpoint: string; repo: string };

const S3_PARAMS = new Set(['region', 'endpoint', 'forcePathStyle', 'checksums']);
const GS_PARAMS = new Set(['endpoint', 'projectId']);
const FILE_PARAMS = new Set(['fsync']);

function bad(url: string, why: string): InvalidStoreUrlError {
  return new InvalidStoreUrlError(`invalid store URL "${redactStoreUrl(url)}": ${why}`);
}

/** A store URL safe to print: user info (never supported, but possibly pasted) removed. */
export function redactStoreUrl(url: string): string {
  return url.replace(/^([a-z0-9]+:\/\/)[^/@]*@/i, '$1***@');
}

function flag(url: string, name: string, value: string | null, fallback: boolean): boolean {
  if (value === null) return fallback;
  if (['1', 'true', 'yes'].includes(value)) return true;
  if (['0', 'false', 'no'].includes(value)) return false;
  throw bad(url, `${name} must be 1 or 0, got "${value}"`);
}

function checkParams(url: string, params: URLSearchParams, allowed: Set<string>): void {
  for (const name of params.keys()) {
    if (!allowed.has(name)) throw bad(url, `unknown option "${name}" (known: ${[...allowed].join(', ') || 'none'})`);
  }
}

/** S3 bucket names: 3–63 of a-z 0-9 . - ; GCS adds _ . Checked so typos fail before any request. */
function checkBucket(url: string, bucket: string, allowUnderscore: boolean): void {
  const pattern = allowUnderscore ? /^[a-z0-9][a-z0-9._-]{1,221}[a-z0-9]$/ : /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
  if (!pattern.test(bucket)) throw bad(url, `"${bucket}" is not a valid bucket name`);
}

/** Parse and validate a store URL without touching the network. */
export function parseStoreUrl(url: string): StoreUrl {
  if (typeof url !== 'string' || url.trim() === '') throw bad(String(url), 'empty');
  const scheme = /^([a-z0-9]+(?:\+https?)?):\/\//i.exec(url)?.[1]?.toLowerCase();
  if (!scheme) throw bad(url, 'expected file:///dir, s3://bucket/prefix, gs://bucket/prefix or memory://name');
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw bad(url, 'malformed URL');
  }
  if (parsed.username || parsed.password) {
    throw bad(url, 'credentials do not belong in a store URL; they come from the cloud SDK default chain');
  }
  const params = parsed.searchParams;
  const prefix = decodeURIComponent(parsed.pathname).replace(/^\/+|\/+$/g, '');
  // The URL parser resolves "." and ".." away, so look at the text as typed.
  const typedPath = url.slice(url.indexOf('://') + 3).split(/[?#]/)[0] ?? '';
  if (typedPath.split('/').some((s) => s === '.' || s === '..' || /^%2e(%2e)?$/i.test(s) || s === '.%2e' || s === '%2e.')) {
    throw bad(url, 'the prefix may not contain "." or ".." segments');
  }
  switch (scheme) {
    case 'file': {
      checkParams(url, params, FILE_PARAMS);
      if (parsed.host) throw bad(url, `file URLs have no host ("${parsed.host}"); use file:///absolute/dir`);
      const root = normalize(decodeURIComponent(parsed.pathname));
      if (!isAbsolute(root) || root === '/') throw bad(url, 'expected file:///absolute/dir (not the filesystem root)');
      return { scheme, root: root.replace(/\/+$/, ''), fsync: flag(url, 'fsync', params.get('fsync'), true) };
    }
    case 'memory':
      checkParams(url, params, new Set());
      if (!parsed.host) throw bad(url, 'expected memory://name');
      return { scheme, name: parsed.host + parsed.pathname.replace(/\/+$/, '') };
    case 's3': {
      checkParams(url, params, S3_PARAMS);
      checkBucket(url, parsed.host, false);
      const endpoint = params.get('endpoint') ?? undefined;
      if (endpoint !== undefined && !/^https?:\/\/[^/\s]+\/?$/.test(endpoint))
        throw bad(url, `endpoint must be http(s)://host[:port], got "${endpoint}"`);
      const checksums = params.get('checksums') ?? 'when_supported';
      if (checksums !== 'when_required' && checksums !== 'when_supported')
        throw bad(url, `checksums must be when_required or when_supported, got "${checksums}"`);
      const region = params.get('region') ?? undefined;
      return {
        scheme,
        bucket: parsed.host,
        prefix,
        ...(region ? { region } : {}),
        ...(endpoint ? { endpoint } : {}),
        forcePathStyle: flag(url, 'forcePathStyle', params.get('forcePathStyle'), false),
        checksums,
      };
    }
    case 'gs': {
      checkParams(url, params, GS_PARAMS);
      checkBucket(url, parsed.host, true);
      const endpoint = params.get('endpoint') ?? undefined;
      if (endpoint !== undefined && !/^https?:\/\/[^/\s]+\/?$/.test(endpoint))
        throw bad(url, `endpoint must be http(s)://host[:port], got "${endpoint}"`);
      const projectId = params.get('projectId') ?? undefined;
      return { scheme, bucket: parsed.host, prefix, ...(endpoint ? { endpoint } : {}), ...(projectId ? { projectId } : {}) };
    }
    case 'hf+http':
    case 'hf+https': {
      checkParams(url, params, new Set());
      const repo = /^(datasets\/)?[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/.test(prefix) ? prefix : undefined;
      if (!repo) throw bad(url, 'expected hf+https://host/org/name or hf+https://host/datasets/org/name');
      return { scheme: 'hf', endpoint: `${scheme.slice(3)}://${parsed.host}`, repo };
    }
    default:
      throw bad(url, `unknown scheme "${scheme}:" (known: file, s3, gs, memory, hf+https)`);
  }
}

/** Credentials that come from Ferry's config rather than an SDK's chain. */
export interface StoreCredentials {
  /** Bearer token for Hugging Face Hub origins (hub.token, HF_TOKEN). */
  hfToken?: string;
}

/** Open the store a URL names. Credentials come from each SDK's default chain (the Hub's: `credentials`). */
export function createStore(url: string, credentials: StoreCredentials = {}): ObjectStore {
  const spec = parseStoreUrl(url);
  const shown = redactStoreUrl(url);
  switch (spec.scheme) {
    case 'file':
      return new FsStore({ root: spec.root, fsync: spec.fsync });
    case 'hf':
      return new HfStore({ endpoint: spec.endpoint, repo: spec.repo, ...(credentials.hfToken ? { token: credentials.hfToken } : {}) });
    case 'memory':
      return new MemoryStore({ name: spec.name });
    // The cloud SDKs load on first use (see LazyStore).
    case 's3': {
      const inner = new LazyStore({
        url: `s3://${spec.bucket}`,
        capabilities: { ...CLOUD_CAPABILITIES.s3 },
        open: async () => {
          const { S3Store } = await import('./s3-store.js');
          return new S3Store({
            bucket: spec.bucket,
            ...(spec.region ? { region: spec.region } : {}),
            ...(spec.endpoint ? { endpoint: spec.endpoint } : {}),
            forcePathStyle: spec.forcePathStyle,
            checksums: spec.checksums,
          });
        },
      });
      return spec.prefix ? new PrefixStore({ inner, prefix: spec.prefix, url: shown }) : inner;
    }
    case 'gs': {
      const inner = new LazyStore({
        url: `gs://${spec.bucket}`,
        capabilities: { ...CLOUD_CAPABILITIES.gs },
        open: async () => {
          const { GcsStore } = await import('./gcs-store.js');
          return new GcsStore({
            bucket: spec.bucket,
            ...(spec.endpoint ? { endpoint: spec.endpoint } : {}),
            ...(spec.projectId ? { projectId: spec.projectId } : {}),
          });
        },
      });
      return spec.prefix ? new PrefixStore({ inner, prefix: spec.prefix, url: shown }) : inner;
    }
  }
}
