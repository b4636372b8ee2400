import { bearerRoles, type ServerLimits, type ServerTlsFiles, serviceApp } from '@ferry/runtime';
import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';

export interface ApiOptions {
  /** Token for status, metrics and a warmup's state (`api.readToken`). */
  readToken?: string;
  /** Token for what queues work: warmup, retry (`api.adminToken`); it reads too. */
  adminToken?: string;
  /** One token for both roles (the deprecated `api.token`). */
  token?: string;
  /** Serve without a token (explicit opt-in in the config). */
  open: boolean;
  registry: Registry;
  status: () => Promise<unknown>;
  health: () => Promise<{ ok: boolean; detail?: Record<string, unknown> }>;
  /** Queue the copies that failed for good again (POST /retry-failed, admin); how many. */
  retryFailed?: () => Promise<number>;
  /** Extra routes (warmup) registered by later parts of the daemon. */
  routes?: (app: FastifyInstance) => void;
  logger?: boolean | object;
  /** Serve HTTPS only (`api.tls` cert and key). */
  tls?: ServerTlsFiles;
  /** Timeouts and header size (`api.limits`). */
  limits?: Partial<ServerLimits>;
}

/**
 * The daemon's control API. `build` returns the app without listening, so tests drive it with
 * `inject()`; the daemon calls `listen()`. /healthz stays open for probes and says nothing secret.
 */
export function build(options: ApiOptions): FastifyInstance {
  const readToken = options.readToken ?? options.token;
  const adminToken = options.adminToken ?? options.token;
  if (!options.open && !readToken && !adminToken) throw new Error('control API: a token is required unless api.open is true');
  const app = serviceApp({
    logger: options.logger ?? false,
    disableRequestLogging: true,
    ...(options.tls ? { tls: options.tls } : {}),
    ...(options.limits ? { limits: options.limits } : {}),
  });

  app.addHook(
    'onRequest',
    bearerRoles({
      roles: [
        ['read', readToken],
        ['admin', adminToken],
      ],
      // Reads (GET) take either token; anything that queues work (POST) needs the admin token.
      required: (req, path) => {
        if (options.open || path === '/healthz') return undefined;
        return req.method === 'GET' || req.method === 'HEAD' ? 'read' : 'admin';
      },
      errorCode: 'unauthorized',
      deniedCode: 'forbidden',
    }),
  );

  app.get('/healthz', async (_req, reply) => {
    const health = await options.health();
    return reply.code(health.ok ? 200 : 503).send(health);
  });
  app.get('/metrics', async (_req, reply) => {
    return reply.header('content-type', options.registry.contentType).send(await options.registry.metrics());
  });
  app.get('/status', async () => options.status());
  app.post('/retry-failed', async (_req, reply) => {
    if (!options.retryFailed) return reply.code(409).send({ error: 'unavailable', message: 'this region has no copy queue' });
    return { retried: await options.retryFailed() };
  });
  options.routes?.(app);
  return app;
}

/** Listen on `host:port` (IPv6 in brackets); returns the bound address. */
export { listen } from '@ferry/runtime';
