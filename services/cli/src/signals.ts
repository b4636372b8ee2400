import type { Logger } from '@ferry/core';

/** Resolves on the first SIGTERM or SIGINT (logged); a second signal of the same kind exits with 130 at once. */
export function stopSignal(logger: Logger): Promise<void> {
  return new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, 'signal received');
      process.once(signal, () => process.exit(130));
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
