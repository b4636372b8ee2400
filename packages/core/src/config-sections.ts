import { z } from 'zod';
import { parseDuration } from './duration.js';
import { messageOf } from './errors.js';
import { parseSize } from './size.js';

/** A value written as text or a number and read by `parse`, whose one-line error becomes the field's message. */
function parsed<T>(parse: (value: string | number) => T) {
  return z.union([z.string(), z.number()]).transform((value, ctx) => {
    try {
      return parse(value);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: messageOf(err) });
      return z.NEVER;
    }
  });
}

/** `8MiB`, `1.5 GB` or a number of bytes. */
export const size = parsed(parseSize);

/** `500ms`, `10s`, `5m` or a number of milliseconds. */
export const duration = parsed(parseDuration);

/**
 * A credential. An empty value means "not held by this process", so one config file can serve
 * every role: `writeToken: "${FERRY_CACHE_WRITE_TOKEN:-}"` is unset where that variable is not given.
 */
export const secret = z.string().transform((s) => (s === '' ? undefined : s));
export const pemPath = z.string().min(1);

/** What a service presents: PEM paths, read at start and again on SIGHUP. */
export const serverTls = z.object({ cert: pemPath, key: pemPath }).strict();

/**
 * TLS of a service that Ferry's own clients talk to (control API, cache nodes). The server uses
 * `cert` and `key`; a client only needs the section to be there (it then speaks https) and, for a
 * private CA, `ca`, trusted beside the system store.
 */
export const sharedTls = z
  .object({ cert: pemPath.optional(), key: pemPath.optional(), ca: pemPath.optional() })
  .strict()
  .refine((t) => (t.cert === undefined) === (t.key === undefined), { message: 'cert and key go together', path: ['cert'] });

const KiB = 1024;

/** Timeouts and header size every HTTP service enforces, so slow or hostile clients cannot hold sockets. */
const timeoutShape = {
  /** A request's line and headers must arrive within this (slowloris). */
  headersTimeout: duration.default(10_000).refine((n) => n >= 100, 'must be at least 100ms'),
  /** The whole request (headers and body, not the response) must arrive within this. */
  requestTimeout: duration.default(30_000).refine((n) => n >= 100, 'must be at least 100ms'),
  /** A connection with no bytes moving either way for this long is closed (also the keep-alive idle time). */
  idleTimeout: duration.default(60_000).refine((n) => n >= 100, 'must be at least 100ms'),
  /** Largest request line plus headers (HTTP 431 beyond it). */
  maxHeaderBytes: size.default(16 * KiB).refine((n) => n >= KiB && n <= 1024 * KiB, 'must be between 1KiB and 1MiB'),
};

/** Limits of the control API: timeouts and header size. */
export const apiLimits = z.object(timeoutShape).strict().prefault({});

/**
 * Limits of a data service: besides the timeouts, a global cap on concurrent streams and on the
 * bytes they hold in memory; beyond either, a request is answered "slow down" at once.
 */
export function dataLimits(defaults: { maxStreams: number; maxBytesInFlight: number }) {
  return z
    .object({
      ...timeoutShape,
      maxStreams: z.number().int().min(1).max(100_000).default(defaults.maxStreams),
      maxBytesInFlight: size.default(defaults.maxBytesInFlight).refine((n) => n >= 1024 * KiB, 'must be at least 1MiB'),
    })
    .strict()
    .prefault({});
}

/**
 * Cache credentials by role: `readToken` for readers (GET, HEAD, residency, metrics), `writeToken`
 * for what changes a node's bytes (PUT, DELETE, fill). `token` is the old single credential and
 * means both.
 */
export const cacheSection = z
  .object({
    replicas: z.number().int().min(1).max(8).default(2),
    readToken: secret.optional(),
    writeToken: secret.optional(),
    /** Deprecated: one token for both roles. */
    token: secret.optional(),
    connectTimeoutMs: z.number().int().min(10).max(60_000).default(300),
    /** Bytes per second a cache node's background scrub re-hashes its chunks at; 0 turns it off. */
    scrubBytesPerSecond: size.default(32 * 2 ** 20),
    tls: sharedTls.optional(),
    limits: dataLimits({ maxStreams: 1024, maxBytesInFlight: 256 * 1024 * KiB }),
  })
  .strict()
  .transform(({ token, ...rest }) => ({ ...rest, readToken: rest.readToken ?? token, writeToken: rest.writeToken ?? token }));

/** Control API credentials by role: `readToken` for status and metrics, `adminToken` for warmup and retry. */
export const apiSection = z
  .object({
    listen: z
      .string()
      .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'expected host:port, e.g. 127.0.0.1:7600')
      .default('127.0.0.1:7600'),
    readToken: secret.optional(),
    adminToken: secret.optional(),
    /** Deprecated: one token for both roles. */
    token: secret.optional(),
    /** Serve the control API without a token. Off by default. */
    open: z.boolean().default(false),
    tls: sharedTls.optional(),
    limits: apiLimits,
  })
  .strict()
  .transform(({ token, ...rest }) => ({ ...rest, readToken: rest.readToken ?? token, adminToken: rest.adminToken ?? token }));

/** Where a parsed document still uses a deprecated key, as `regions.eu.cache.token` paths. */
export function deprecatedKeys(doc: unknown): string[] {
  const regions = (doc as { regions?: unknown } | null)?.regions;
  if (regions === null || typeof regions !== 'object') return [];
  const found: string[] = [];
  for (const [name, region] of Object.entries(regions)) {
    for (const section of ['cache', 'api'] as const) {
      const part = (region as Record<string, unknown> | null)?.[section];
      if (part !== null && typeof part === 'object' && 'token' in part) found.push(`regions.${name}.${section}.token`);
    }
  }
  return found;
}
