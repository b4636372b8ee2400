import { isFerryError } from '@ferry/core';

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
 * volume paths and chunk ids, never secrets); anything else is a bug and says only that.
 */
export function toS3Error(err: unknown): S3Error {
  if (err instanceof S3Error) return err;
  if (!isFerryError(err)) return new S3Error('InternalError', 'we encountered an internal error; please try again', { cause: err });
  switch (err.code) {
    case 'INVALID_PATH':
    case 'INVALID_ARGUMENT':
      return new S3Error('InvalidArgument', err.message, { cause: err });
    case 'RANGE_NOT_SATISFIABLE':
      return new S3Error('InvalidRange', 'the requested range is not satisfiable', { cause: err });
    case 'UNAVAILABLE':
    case 'TRANSIENT':
      return new S3Error('ServiceUnavailable', err.message, { cause: err });
    default:
      // NOT_FOUND here is a chunk no tier has (a missing key is answered before any read), CORRUPT
      // no good copy anywhere, PRECONDITION_FAILED an imported origin that changed: data errors.
      return new S3Error('InternalError', err.message, { cause: err });
  }
}
