import { bearerAuth } from '@ferry/runtime';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';

export interface ApiOptions {
  /** Bearer token required on every route but /healthz; undefined only when `open` is set. */
  token?: string;
  /** Serve without a token (explicit opt-in in the config). */
  open: boolean;
  registry: Registry;
  status: () => Promise<unknown>;
  health: () => Promise<{ ok: boolean; detail?: Record<string, unknown> }>;
  /** Extra routes (warmup) registered by later parts of the daemon. */
  routes?: (app: FastifyInstance) => void;
  logger?: boolean | object;
}

/**
 * The daemon's control API. `build` returns the app without listening, so tests drive it with
 * `inject()`; the daemon calls `listen()`. /healthz stays open for probes and says nothing secret.
 */
export function build(options: ApiOptions): FastifyInstance {
  if (!options.open && !options.token) throw new Error('control API: a token is required unless api.open is true');
  const app = Fastify({ logger: options.logger ?? false, disableRequestLogging: true });

  app.addHook(
    'onRequest',
    bearerAuth({ token: options.token, open: (_req, path) => options.open || path === '/healthz', errorCode: 'unauthorized' }),
  );

  app.get('/healthz', async (_req, reply) => {
    const health = await options.health();
    return reply.code(health.ok ? 200 : 503).send(health);
  });
  app.get('/metrics', async (_req, reply) => {
    return reply.header('content-type', options.registry.contentType).send(await options.registry.metrics());
  });
  app.get('/status', async () => options.status());
  options.routes?.(app);
  return app;
}

/** Listen on `host:port` (IPv6 in brackets); returns the bound address. */
export { listen } from '@ferry/runtime';
