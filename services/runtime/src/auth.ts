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
  return bearerRoles({
    roles: [['any', options.token]],
    required: (req, path) => (options.open?.(req, path) ? undefined : 'any'),
    ...(options.errorCode ? { errorCode: options.errorCode } : {}),
  });
}

export interface BearerRolesOptions {
  /**
   * Each role and its token, weakest first. A token also grants every weaker role (the write
   * token reads too); a role without a token is granted to nobody.
   */
  roles: ReadonlyArray<readonly [role: string, token: string | undefined]>;
  /** The role a request needs, or undefined for an open route; the path is given without its query. */
  required: (req: FastifyRequest, path: string) => string | undefined;
  /** The `error` field of the 401 body. */
  errorCode?: string;
  /** The `error` field of the 403 body (a valid token of a weaker role). */
  deniedCode?: string;
}

/** The strongest role whose token the request carries (its index in `roles`), or -1. */
function grantedRank(req: FastifyRequest, roles: BearerRolesOptions['roles']): number {
  const given = bearerOf(req);
  if (given === undefined) return -1;
  let rank = -1;
  // Every token is compared, so the time taken does not tell which role matched.
  roles.forEach(([, token], i) => {
    if (token !== undefined && token !== '' && sameSecret(given, token)) rank = i;
  });
  return rank;
}

/**
 * An `onRequest` hook for credentials by role: 401 (with `WWW-Authenticate: Bearer`) without a
 * valid token, 403 when the token is valid but of a weaker role than the route needs.
 */
export function bearerRoles(options: BearerRolesOptions): (req: FastifyRequest, reply: FastifyReply) => Promise<void> {
  const errorCode = options.errorCode ?? 'UNAUTHORIZED';
  const deniedCode = options.deniedCode ?? 'FORBIDDEN';
  const rankOf = new Map(options.roles.map(([role], i) => [role, i]));
  return async (req, reply) => {
    // The path without the query: a probe's `/healthz?verbose` is still an open route.
    const needed = options.required(req, req.url.split('?')[0] ?? '/');
    if (needed === undefined) return;
    const need = rankOf.get(needed) ?? Number.POSITIVE_INFINITY;
    const has = grantedRank(req, options.roles);
    if (has >= need) return;
    if (has < 0) {
      await reply.code(401).header('www-authenticate', 'Bearer').send({ error: errorCode, message: 'a valid bearer token is required' });
      return;
    }
    await reply.code(403).send({ error: deniedCode, message: `this request needs the ${needed} token` });
  };
}
