import { ERROR_CLASSES, type ErrorCode, type FerryError, isFerryError, messageOf } from './errors.js';

/**
 * The one table between Ferry's errors and HTTP: every service answers an error with this status
 * and a body `{ error: <code>, message }`, and every client turns such an answer back into the same
 * error class (`errorFromResponse`), so a code means the same thing on both sides of a socket.
 */
export const HTTP_STATUS: Readonly<Record<ErrorCode, number>> = Object.freeze({
  INVALID_ARGUMENT: 400,
  INVALID_PATH: 400,
  INVALID_STORE_URL: 400,
  UNAUTHORIZED: 401,
  ACCESS_DENIED: 403,
  READ_ONLY_REGION: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  FENCED: 409,
  CHUNK_CLAIMED: 409,
  GC_REFUSED: 409,
  NOT_DURABLE: 503,
  PRECONDITION_FAILED: 412,
  RANGE_NOT_SATISFIABLE: 416,
  CORRUPT: 422,
  INVALID_CONFIG: 500,
  LOCAL_IO: 500,
  TRANSIENT: 503,
  UNAVAILABLE: 503,
  BUSY: 503,
});

/** What an answer's status means when its body names no code (a proxy, a framework's own 4xx). */
const BY_STATUS: ReadonlyArray<readonly [number, ErrorCode]> = [
  [400, 'INVALID_ARGUMENT'],
  [401, 'UNAUTHORIZED'],
  [403, 'ACCESS_DENIED'],
  [404, 'NOT_FOUND'],
  [409, 'CONFLICT'],
  [412, 'PRECONDITION_FAILED'],
  [416, 'RANGE_NOT_SATISFIABLE'],
  [422, 'CORRUPT'],
  [429, 'BUSY'],
];

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(HTTP_STATUS, value);
}

/** The status an error is answered with: Ferry's by the table, a framework's own (a 4xx with `statusCode`) as it says, else 500. */
export function httpStatusOf(err: unknown): number {
  if (isFerryError(err)) return HTTP_STATUS[err.code];
  const status = (err as { statusCode?: unknown } | undefined)?.statusCode;
  return typeof status === 'number' && status >= 400 && status < 600 ? status : 500;
}

/** The JSON body of an error answer. A failure that is not Ferry's says only that it is internal when it is a 5xx. */
export function errorBody(err: unknown): { error: string; message: string } {
  if (isFerryError(err)) return { error: err.code, message: err.message };
  const status = httpStatusOf(err);
  const code = (err as { code?: unknown } | undefined)?.code;
  if (status >= 500) return { error: 'INTERNAL', message: 'internal error' };
  return { error: typeof code === 'string' ? code : 'INVALID_ARGUMENT', message: messageOf(err) };
}

/**
 * The error an answer of a Ferry service stands for: the class its body's `error` code names, or
 * by its status when the body names none. `where` leads the message (which server, which call);
 * `hints` adds what to check by status (the config key of a refused token).
 */
export function errorFromResponse(
  status: number,
  body: unknown,
  where: string,
  hints: Readonly<Partial<Record<number, string>>> = {},
): FerryError {
  const fields = (body !== null && typeof body === 'object' ? body : {}) as { error?: unknown; message?: unknown };
  const said = typeof fields.message === 'string' && fields.message !== '' ? fields.message : `HTTP ${status}`;
  const hint = hints[status];
  const message = `${where}: ${said}${hint ? ` (${hint})` : ''}`;
  const code: ErrorCode = isErrorCode(fields.error)
    ? fields.error
    : (BY_STATUS.find(([s]) => s === status)?.[1] ?? (status >= 500 ? 'TRANSIENT' : 'INVALID_ARGUMENT'));
  return new ERROR_CLASSES[code](message);
}
