import { ConflictError, type Logger, silentLogger } from '@ferry/core';
import type { ApiServerTokens } from '@ferry/region';
import { bearerRoles, errorHandler, type ServerLimits, type ServerTlsFiles, serviceApp } from '@ferry/runtime';
import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import { type PanelSource, pageRoutes } from './page.js';

export interface ApiOptions {
  /**
   * What the API accepts (Region.credentials.apiServer): the read token for status, metrics and a
   * warmup's state; the admin token for what queues work (it reads too); `open` needs none.
   */
  tokens: ApiServerTokens;
  registry: Registry;
  status: () => Promise<unknown>;
  health: () => Promise<{ ok: boolean; detail?: Record<string, unknown> }>;
  /** Queue the copies that failed for good again (POST /retry-failed, admin); how many. */
  retryFailed?: () => Promise<number>;
  /** The status page at `/` and its JSON panels under /api/ (absent: no page). */
  panels?: PanelSource;
  /** Extra routes (warmup) registered by later parts of the daemon. */
  routes?: (app: FastifyInstance) => void;
  /** Where failed requests are logged. */
  log?: Logger;
  /** Serve HTTPS only (`api.tls` cert and key). */
  tls?: ServerTlsFiles;
  /** Timeouts and header size (`api.limits`). */
  limits: ServerLimits;
}

/**
 * The daemon's control API. `build` returns the app without listening, so tests drive it with
 * `inject()`; the daemon calls `listen()`. /healthz stays open for probes and says nothing secret.
 */
export function build(options: ApiOptions): FastifyInstance {
  // The tokens object is read per request: the daemon swaps its tokens in place on a reload.
  const { tokens } = options;
  const { open } = tokens;
  const log = options.log ?? silentLogger;
  const app = serviceApp({
    logger: false,
    log,
    ...(options.tls ? { tls: options.tls } : {}),
    limits: options.limits,
  });

  // Reads (GET) take either token; anything that queues work (POST) needs the admin token; each
  // route says which, and the hook reads it from the route fastify matched. A browser signs in to
  // the page with Basic auth (any user, the token as password), on reads only.
  if (!open) {
    app.addHook(
      'onRequest',
      bearerRoles({
        roles: [
          ['read', () => tokens.read],
          ['admin', () => tokens.admin],
        ],
        basicRealm: 'ferry',
      }),
    );
  }
  app.setErrorHandler(errorHandler(log));
  const auth = (role: string) => ({ config: { auth: role } });

  app.get('/healthz', auth('open'), async (_req, reply) => {
    const health = await options.health();
    return reply.code(health.ok ? 200 : 503).send(health);
  });
  app.get('/metrics', auth('read'), async (_req, reply) => {
    return reply.header('content-type', options.registry.contentType).send(await options.registry.metrics());
  });
  app.get('/status', auth('read'), async () => options.status());
  app.post('/retry-failed', auth('admin'), async () => {
    if (!options.retryFailed) throw new ConflictError('this region has no copy queue');
    return { retried: await options.retryFailed() };
  });
  if (options.panels) pageRoutes(options.panels)(app);
  options.routes?.(app);
  return app;
}

/** Listen on `host:port` (IPv6 in brackets); returns the bound address. */
export { listen } from '@ferry/runtime';
