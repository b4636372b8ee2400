import { httpStatusOf, isFerryError } from '@ferry/core';

/** The S3 error codes the gateway answers with, and their HTTP status. */
const STATUS = {
  AccessDenied: 403,
  AuthorizationHeaderMalformed: 400,
  AuthorizationQueryParametersError: 400,
  InternalError: 500,
  InvalidAccessKeyId: 403,
  InvalidArgument: 400,
  InvalidRange: 416,
  InvalidRequest: 400,
  InvalidURI: 400,
  NoSuchBucket: 404,
  NoSuchKey: 404,
  NotImplemented: 501,
  PreconditionFailed: 412,
  RequestTimeTooSkewed: 403,
  ServiceUnavailable: 503,
  SignatureDoesNotMatch: 403,
  SlowDown: 503,
} as const;

export type S3ErrorCode = keyof typeof STATUS;

/** An error answered as S3's XML `<Error>` document with S3's code and status. */
export class S3Error extends Error {
  readonly code: S3ErrorCode;
  readonly status: number;
  /** Extra response headers (Content-Range on 416). */
  readonly headers: Record<string, string>;

  constructor(code: S3ErrorCode, message: string, options: { cause?: unknown; headers?: Record<string, string> } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'S3Error';
    this.code = code;
    this.status = STATUS[code];
    this.headers = options.headers ?? {};
  }
}

/**
 * Any thrown value as an S3Error. Ferry's own errors keep their one-line message (they name
 * volume paths and chunk ids, never secrets) and are placed by core's status table: a bad request
 * is InvalidArgument, a range InvalidRange, a busy gateway SlowDown (S3 clients retry it), an
 * unreachable dependency ServiceUnavailable. Anything else during a read is a data error behind the
 * key (a chunk no tier has, no good copy anywhere, a changed origin) — a missing key is answered
 * before any read — so it is InternalError; and what is not Ferry's is a bug and says only that.
 */
export function toS3Error(err: unknown): S3Error {
  if (err instanceof S3Error) return err;
  if (!isFerryError(err)) return new S3Error('InternalError', 'we encountered an internal error; please try again', { cause: err });
  if (err.code === 'BUSY') return new S3Error('SlowDown', err.message, { cause: err });
  switch (httpStatusOf(err)) {
    case 400:
      return new S3Error('InvalidArgument', err.message, { cause: err });
    case 416:
      return new S3Error('InvalidRange', 'the requested range is not satisfiable', { cause: err });
    case 503:
      return new S3Error('ServiceUnavailable', err.message, { cause: err });
    default:
      return new S3Error('InternalError', err.message, { cause: err });
  }
}
