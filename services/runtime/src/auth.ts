import { timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';

/** Compare a secret a client sent with the expected one in constant time (for equal lengths). */
export function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The token of an `Authorization: Bearer <token>` header, if the request has one. */
export function bearerOf(req: FastifyRequest): string | undefined {
  const header = req.headers.authorization;
  return header?.startsWith('Bearer ') ? header.slice(7) : undefined;
}

/** Whether the request carries the expected bearer token; never true without one configured. */
export function hasBearer(req: FastifyRequest, token: string | undefined): boolean {
  const given = bearerOf(req);
  return given !== undefined && token !== undefined && token !== '' && sameSecret(given, token);
}

export interface BearerAuthOptions {
  /** The one token every guarded request must carry. */
  token: string | undefined;
  /** Requests that need no token (health probes); the path is given without its query. */
  open?: (req: FastifyRequest, path: string) => boolean;
  /** The `error` field of the 401 body (each service keeps its own error vocabulary). */
  errorCode?: string;
}

/**
 * An `onRequest` hook that answers 401 (with `WWW-Authenticate: Bearer`) unless the request
 * carries the token. Register it with `app.addHook('onRequest', bearerAuth({ … }))`.
 */
export function bearerAuth(options: BearerAuthOptions): (req: FastifyRequest, reply: FastifyReply) => Promise<void> {
  const errorCode = options.errorCode ?? 'UNAUTHORIZED';
  return async (req, reply) => {
    // The path without the query: a probe's `/healthz?verbose` is still an open route.
    if (options.open?.(req, req.url.split('?')[0] ?? '/')) return;
    if (hasBearer(req, options.token)) return;
    await reply.code(401).header('www-authenticate', 'Bearer').send({ error: errorCode, message: 'a valid bearer token is required' });
  };
}
