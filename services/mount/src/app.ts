import { bearerAuth } from '@ferry/runtime';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';

export interface MountAppOptions {
  registry: Registry;
  /** Bearer token for /metrics; without one, /metrics answers 401 unless `open`. */
  token?: string;
  open: boolean;
  health: () => Promise<{ ok: boolean; detail?: Record<string, unknown> }>;
}

/** The mount's operations endpoint: `/healthz` (open) and `/metrics` (token unless `mount.open`). */
export function buildApp(options: MountAppOptions): FastifyInstance {
  // No logger: no request logs (fastify 5 deprecates disableRequestLogging, and its warning would break the one-line errors).
  const app = Fastify({ logger: false });
  app.addHook('onRequest', bearerAuth({ token: options.token, open: (_req, route) => options.open || route === '/healthz' }));
  app.get('/healthz', async (_req, reply) => {
    const health = await options.health();
    return reply.code(health.ok ? 200 : 503).send(health);
  });
  app.get('/metrics', async (_req, reply) =>
    reply.header('content-type', options.registry.contentType).send(await options.registry.metrics()),
  );
  return app;
}
