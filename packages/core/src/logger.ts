/**
 * The logging surface libraries use: a subset of pino's Logger, so services pass a pino child
 * logger and libraries do not depend on pino. Errors are logged as `{ err }`.
 */
export interface LogFn {
  (obj: object, msg?: string): void;
  (msg: string): void;
}

export interface Logger {
  error: LogFn;
  warn: LogFn;
  info: LogFn;
  debug: LogFn;
  child(bindings: Record<string, unknown>): Logger;
}

const noop: LogFn = () => {};

/** A logger that drops everything, for libraries used without one. */
export const silentLogger: Logger = {
  error: noop,
  warn: noop,
  info: noop,
  debug: noop,
  child: () => silentLogger,
};

/** Keys pino must redact wherever they appear in a log line. */
export const REDACT_PATHS = [
  'token',
  '*.token',
  'readToken',
  '*.readToken',
  'writeToken',
  '*.writeToken',
  'adminToken',
  '*.adminToken',
  'password',
  '*.password',
  'sentinelPassword',
  '*.sentinelPassword',
  'secretAccessKey',
  '*.secretAccessKey',
  'authorization',
  'headers.authorization',
  'req.headers.authorization',
  'req.headers["x-ferry-token"]',
  '*.redis',
];

/** A Redis URL with its password replaced, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url.replace(/\/\/[^@/]*@/, '//***@');
  }
}
