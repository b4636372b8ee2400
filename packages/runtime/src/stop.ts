import type { Logger } from '@ferry/core';
import type { FastifyInstance } from 'fastify';

/** How often a stopping service closes the kept-alive connections whose last response has ended. */
const IDLE_SWEEP_MS = 100;

/**
 * Stop accepting connections, let running requests finish for up to `graceMs`, then cut the
 * connections still open: a 100 GB download would otherwise hold the stop for minutes.
 */
export async function closeGracefully(app: FastifyInstance, options: { graceMs: number }): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, options.graceMs);
  });
  // close() only drops the connections idle at that moment; one whose response ends later would
  // stay kept alive (and hold the close) until its client lets go.
  const sweep = setInterval(() => app.server.closeIdleConnections(), IDLE_SWEEP_MS);
  const closing = app.close();
  try {
    await Promise.race([closing, grace]);
  } finally {
    clearTimeout(timer);
    clearInterval(sweep);
  }
  app.server.closeAllConnections();
  await closing;
}

/**
 * Run a service's stop, but not for longer than `timeoutMs`: resolves true when it finished in
 * time, false (after a warning) when the deadline passed first. Whatever it was waiting on (a
 * Redis or a store that does not answer) is left behind: the caller exits the process, which
 * releases it as a kill -9 would.
 */
export async function stopWithin(
  stop: () => Promise<void>,
  options: { timeoutMs: number; logger: Logger; what: string },
): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), options.timeoutMs);
  });
  const stopped = stop().then(
    () => true as const,
    (err: unknown) => {
      options.logger.warn({ err }, `${options.what}: stop failed`);
      return true as const;
    },
  );
  const inTime = await Promise.race([stopped, deadline]);
  clearTimeout(timer);
  if (!inTime) options.logger.warn({ deadlineMs: options.timeoutMs }, `${options.what}: stop deadline passed; exiting with work in flight`);
  return inTime;
}

/**
 * After a daemon has stopped, make sure the process ends: a connection or timer some library
 * keeps (a reconnecting client, a socket to a dead peer) must not hold it open. The timer itself
 * does not keep the process alive.
 */
export function exitSoon(code: number, afterMs = 1_000, exit: (code: number) => void = (c) => process.exit(c)): void {
  setTimeout(() => exit(code), afterMs).unref();
}
