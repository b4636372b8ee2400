import { type Logger, REDACT_PATHS } from '@ferry/core';
import pino from 'pino';

/** The root logger of a Ferry process: JSON lines, secrets redacted. */
export function createLogger(options: { name: string; level?: string; destination?: number }): Logger {
  return pino(
    {
      name: options.name,
      level: options.level ?? process.env.FERRY_LOG_LEVEL ?? 'info',
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      base: { pid: process.pid },
    },
    pino.destination({ dest: options.destination ?? 2, sync: true }),
  ) as unknown as Logger;
}
