import {
  AccessDeniedError,
  CorruptError,
  FerryError,
  InvalidArgumentError,
  InvalidConfigError,
  NotFoundError,
  PreconditionFailedError,
  RangeNotSatisfiableError,
  TransientError,
  UnauthorizedError,
  UnavailableError,
} from '@ferry/core';
import { UNREACHABLE } from './net-errors.js';

/** An S3 etag without its quotes (and weak marker). */
export function unquote(etag: string | undefined): string {
  return (etag ?? '').replace(/^(W\/)?"(.*)"$/, '$2');
}

const UNAUTHORIZED = new Set(['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'ExpiredToken', 'InvalidToken', 'TokenRefreshRequired']);

/**
 * SDK and network errors as core errors. Messages are one line built from error names, statuses
 * and errno codes only: SDK messages can span lines and echo request details.
 */
export function translateS3Error(
  err: unknown,
  c: { label: string; bucket: string; endpoint: string; op: string; key: string | undefined; ifMatch: string | undefined },
): Error {
  if (err instanceof FerryError) return err;
  const e = (err ?? {}) as {
    name?: string;
    message?: string;
    code?: unknown;
    errors?: { code?: unknown }[];
    $metadata?: { httpStatusCode?: number };
  };
  const name = e.name ?? 'Error';
  const status = e.$metadata?.httpStatusCode ?? 0;
  const message = String(e.message ?? '');
  // Node network errors carry an errno code, also inside the AggregateError of happy eyeballs.
  const code = typeof e.code === 'string' ? e.code : e.errors?.[0]?.code;
  const errno = typeof code === 'string' && /^E[A-Z]+$/.test(code) ? code : undefined;
  const what = `${c.label}: ${c.op}${c.key === undefined ? '' : ` ${c.key}`}`;
  const cause = { cause: err };
  if (name === 'NoSuchBucket' || (status === 404 && c.op === 'list')) {
    return new NotFoundError(`${c.label}: bucket "${c.bucket}" does not exist`, cause);
  }
  if (status === 404 || name === 'NoSuchKey') return new NotFoundError(`${c.label}: no object ${c.key}`, cause);
  if (status === 412) return new PreconditionFailedError(`${c.label}: ${c.key} changed (expected etag ${unquote(c.ifMatch)})`, cause);
  if (status === 416 || name === 'InvalidRange') return new RangeNotSatisfiableError(`${what}: the range starts past the end`, cause);
  if (name === 'CredentialsProviderError') {
    return new UnauthorizedError(`${c.label}: no AWS credentials found (environment, shared config, SSO or instance role)`, cause);
  }
  if (UNAUTHORIZED.has(name) || status === 401) return new UnauthorizedError(`${c.label}: credentials rejected (${name})`, cause);
  if (status === 403) return new AccessDeniedError(`${what}: access denied (${name})`, cause);
  if (/region is missing/i.test(message)) {
    return new InvalidConfigError(`${c.label}: no region: set ?region= in the store URL or AWS_REGION`, cause);
  }
  if (status === 301 || name === 'PermanentRedirect' || name === 'AuthorizationHeaderMalformed') {
    return new InvalidConfigError(`${c.label}: the bucket is in another region or behind another endpoint (${name})`, cause);
  }
  if (/checksum mismatch/i.test(message)) return new CorruptError(`${what}: checksum mismatch`, cause);
  if ((errno && UNREACHABLE.has(errno)) || (name === 'TimeoutError' && /establish/.test(message))) {
    return new UnavailableError(`${c.label}: cannot reach ${c.endpoint} (${errno ?? 'connection timed out'})`, cause);
  }
  if (errno || name === 'TimeoutError') return new TransientError(`${what}: connection failed (${errno ?? 'timed out'})`, cause);
  if (status >= 500 || status === 429 || /SlowDown|Throttl|RequestTimeout/.test(name)) {
    return new TransientError(`${what}: the server answered ${status} ${name}; try again later`, cause);
  }
  if (status >= 400) return new InvalidArgumentError(`${what}: refused (${status} ${name})`, cause);
  return new TransientError(`${what}: ${name}: ${message.split('\n')[0]?.slice(0, 200)}`, cause);
}
