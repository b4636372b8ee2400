import type { FastifyInstance } from 'fastify';

/** How long running requests may take to finish once a service stops, unless it says otherwise. */
export const DEFAULT_GRACE_MS = 10_000;

/** How often a stopping service closes the kept-alive connections whose last response has ended. */
const IDLE_SWEEP_MS = 100;

/**
 * Stop accepting connections, let running requests finish for up to `graceMs`, then cut the
 * connections still open: a 100 GB download would otherwise hold the stop for minutes.
 */
export async function closeGracefully(app: FastifyInstance, options: { graceMs?: number } = {}): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, options.graceMs ?? DEFAULT_GRACE_MS);
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
