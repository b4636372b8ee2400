/**
 * Every failure Ferry reports is one of these. `code` is stable (scripts and tests match on it);
 * `message` is one line a person can act on; `cause` keeps the underlying error for logs.
 * SDK and system errors are translated into these at the edge that talks to them.
 */
export type ErrorCode =
  | 'NOT_FOUND'
  | 'PRECONDITION_FAILED'
  | 'INVALID_PATH'
  | 'INVALID_CONFIG'
  | 'INVALID_ARGUMENT'
  | 'INVALID_STORE_URL'
  | 'READ_ONLY_REGION'
  | 'CORRUPT'
  | 'TRANSIENT'
  | 'UNAUTHORIZED'
  | 'ACCESS_DENIED'
  | 'UNAVAILABLE'
  | 'RANGE_NOT_SATISFIABLE'
  | 'CONFLICT'
  | 'FENCED'
  | 'CHUNK_CLAIMED'
  | 'GC_REFUSED'
  | 'NOT_DURABLE'
  | 'BUSY'
  | 'LOCAL_IO';

export interface FerryErrorOptions {
  cause?: unknown;
}

export abstract class FerryError extends Error {
  abstract readonly code: ErrorCode;
  /** True when the same call may succeed if tried again (network blips, throttling). */
  readonly retryable: boolean = false;

  constructor(message: string, options?: FerryErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
  }
}

/** The base of each error class: its stable code, and whether trying again may succeed. */
function coded<C extends ErrorCode>(code: C, retryable = false) {
  return class extends FerryError {
    readonly code: C = code;
    override readonly retryable: boolean = retryable;
  };
}

export class NotFoundError extends coded('NOT_FOUND') {}
export class PreconditionFailedError extends coded('PRECONDITION_FAILED') {}
export class InvalidPathError extends coded('INVALID_PATH') {}
export class InvalidConfigError extends coded('INVALID_CONFIG') {}
export class InvalidArgumentError extends coded('INVALID_ARGUMENT') {}
export class InvalidStoreUrlError extends coded('INVALID_STORE_URL') {}
export class ReadOnlyRegionError extends coded('READ_ONLY_REGION') {}
/** Bytes that do not match their id (sha256, length or etag). Never served, never stored. */
export class CorruptError extends coded('CORRUPT') {}
export class TransientError extends coded('TRANSIENT', true) {}
/** Missing or wrong credentials / token. */
export class UnauthorizedError extends coded('UNAUTHORIZED') {}
/** Credentials are fine but do not allow this operation. */
export class AccessDeniedError extends coded('ACCESS_DENIED') {}
/** A service Ferry depends on (Redis, an object store endpoint) cannot be reached. */
export class UnavailableError extends coded('UNAVAILABLE', true) {}
export class RangeNotSatisfiableError extends coded('RANGE_NOT_SATISFIABLE') {}
/** A concurrent change won (e.g. a rename target appeared). Nothing was applied. */
export class ConflictError extends coded('CONFLICT') {}
/**
 * A write refused because the writer's fencing token is no longer the current one: another
 * replica took the lease since. Nothing was written; the writer must stop acting as the leader.
 */
export class FencedError extends coded('FENCED') {}
/**
 * A commit refused because garbage collection has claimed some of its chunks: their objects are
 * being (or have been) deleted. Nothing was written; the writer uploads those chunks again once
 * the claims are gone and commits again.
 */
export class ChunkClaimedError extends coded('CHUNK_CLAIMED') {
  readonly chunks: readonly string[];
  constructor(message: string, options: FerryErrorOptions & { chunks?: readonly string[] } = {}) {
    super(message, options);
    this.chunks = options.chunks ?? [];
  }
}
/**
 * Garbage collection refused to run in a region whose metadata is not whole (a mirror with no
 * cursor, a resync under way, a fencing token Redis no longer holds): nothing was deleted.
 * `reason` is one word (no-cursor, resync, fenced); it goes away by itself once the region's
 * watcher has caught up.
 */
export class GcRefusedError extends coded('GC_REFUSED', true) {
  readonly reason: string;
  constructor(message: string, options: FerryErrorOptions & { reason?: string } = {}) {
    super(message, options);
    this.reason = options.reason ?? 'unknown';
  }
}
/**
 * A change was applied by the Redis master but fewer replicas than `minReplicas` confirmed it in
 * time: a failover now could lose it. Running the same command again is safe.
 */
export class NotDurableError extends coded('NOT_DURABLE', true) {}
/** A service at its limit of work in flight: nothing was done; try again shortly (HTTP 503 + Retry-After). */
export class BusyError extends coded('BUSY', true) {}
/** A local file or directory could not be read or written. */
export class LocalIoError extends coded('LOCAL_IO') {}

/** The class of each code: what a client makes of a code a service answered with. */
export const ERROR_CLASSES: Readonly<Record<ErrorCode, new (message: string, options?: FerryErrorOptions) => FerryError>> = Object.freeze({
  NOT_FOUND: NotFoundError,
  PRECONDITION_FAILED: PreconditionFailedError,
  INVALID_PATH: InvalidPathError,
  INVALID_CONFIG: InvalidConfigError,
  INVALID_ARGUMENT: InvalidArgumentError,
  INVALID_STORE_URL: InvalidStoreUrlError,
  READ_ONLY_REGION: ReadOnlyRegionError,
  CORRUPT: CorruptError,
  TRANSIENT: TransientError,
  UNAUTHORIZED: UnauthorizedError,
  ACCESS_DENIED: AccessDeniedError,
  UNAVAILABLE: UnavailableError,
  RANGE_NOT_SATISFIABLE: RangeNotSatisfiableError,
  CONFLICT: ConflictError,
  FENCED: FencedError,
  CHUNK_CLAIMED: ChunkClaimedError,
  GC_REFUSED: GcRefusedError,
  NOT_DURABLE: NotDurableError,
  BUSY: BusyError,
  LOCAL_IO: LocalIoError,
});

export function isFerryError(err: unknown): err is FerryError {
  return err instanceof FerryError;
}

export function isRetryable(err: unknown): boolean {
  return err instanceof FerryError && err.retryable;
}

/** Message of any thrown value, for the places that must print something. */
export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** Translate a Node fs error on a local path into a one-line LocalIoError / NotFoundError. */
export function localIoError(err: unknown, what: string, path: string): FerryError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return new NotFoundError(`${what} ${path}: no such file or directory`, { cause: err });
    case 'EACCES':
    case 'EPERM':
      return new LocalIoError(`${what} ${path}: permission denied`, { cause: err });
    case 'EISDIR':
      return new LocalIoError(`${what} ${path}: is a directory`, { cause: err });
    case 'ENOTDIR':
      return new LocalIoError(`${what} ${path}: not a directory`, { cause: err });
    case 'ENOSPC':
      return new LocalIoError(`${what} ${path}: no space left on device`, { cause: err });
    default:
      return new LocalIoError(`${what} ${path}: ${messageOf(err)}`, { cause: err });
  }
}

/** Codes of a TLS handshake that could not verify the peer (or was no TLS at all). */
const TLS_CODES =
  /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_(GET|VERIFY)_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|HOSTNAME_MISMATCH)/;

/**
 * One line saying why a TLS connection failed verification, or undefined when `err` is not such a
 * failure (a client without the right CA, a plain-HTTP port, an expired or misnamed certificate).
 */
export function tlsFailure(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const { code, reason } = e as { code?: unknown; reason?: unknown };
    if (typeof code !== 'string' || !TLS_CODES.test(code)) continue;
    // OpenSSL's own message is lines of its internals (file, line, alert number); its reason is the words.
    const text = code.startsWith('ERR_SSL_') && typeof reason === 'string' ? reason : messageOf(e).split('\n')[0];
    return `TLS: ${text} (${code})`;
  }
  return undefined;
}
