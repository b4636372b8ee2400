import type { Logger } from '@ferry/core';

/** The part of `process` that stopSignal uses (tests hand in an EventEmitter). */
export interface SignalSource {
  once(signal: 'SIGTERM' | 'SIGINT', listener: () => void): unknown;
  exit(code: number): unknown;
}

/** Resolves on the first SIGTERM or SIGINT (logged); a second signal of the same kind exits with 130 at once. */
export function stopSignal(logger: Logger, signals: SignalSource = process): Promise<void> {
  return new Promise<void>((resolve) => {
    const stop = (signal: 'SIGTERM' | 'SIGINT') => {
      logger.info({ signal }, 'signal received');
      signals.once(signal, () => signals.exit(130));
      resolve();
    };
    signals.once('SIGTERM', () => stop('SIGTERM'));
    signals.once('SIGINT', () => stop('SIGINT'));
  });
}
