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
  /**
   * Requests that need no token (health probes), told by the URL pattern of the route fastify
   * matched (`/healthz`; undefined when no route matched), never by the raw URL.
   */
  open?: (req: FastifyRequest, route: string | undefined) => boolean;
}

/**
 * An `onRequest` hook that answers 401 (with `WWW-Authenticate: Bearer`) unless the request
 * carries the token. Register it with `app.addHook('onRequest', bearerAuth({ … }))`.
 */
export function bearerAuth(options: BearerAuthOptions): (req: FastifyRequest, reply: FastifyReply) => Promise<void> {
  return bearerRoles({
    roles: [['any', options.token]],
    required: (req, route) => (options.open?.(req, route) ? undefined : 'any'),
  });
}

export interface BearerRolesOptions {
  /**
   * Each role and its token, weakest first. A token also grants every weaker role (the write
   * token reads too); a role without a token is granted to nobody. A token given as a function is
   * asked on every request, so a service can swap its tokens (a reload on SIGHUP) in place.
   */
  roles: ReadonlyArray<readonly [role: string, token: RoleToken]>;
  /**
   * The role a request needs, or undefined for an open route (default: the `auth` of the matched
   * route's config, and the weakest role for a request no route matched). It is told the URL
   * pattern of the route fastify matched (`/chunks/:id/fill`, undefined when none matched), never
   * the raw URL: `/chunks/x/%66ill` and `/chunks/x/fill` are the same route and need the same role.
   */
  required?: (req: FastifyRequest, route: string | undefined) => string | undefined;
  /**
   * Also take a token as the password of HTTP Basic auth (any user name) on GET and HEAD, and
   * offer Basic in the 401 of those, under this realm: a browser cannot send a bearer header to a
   * page, but asks for Basic credentials and sends them on the page's own reads. Writes still
   * need the bearer header.
   */
  basicRealm?: string;
}

/** What a route needs, declared with it: `app.get(path, { config: { auth: 'write' } }, handler)`; 'open' needs no token. */
export interface RouteAuth {
  auth?: string;
}

/**
 * The role a request needs, decided by the route fastify matched (its decoded path), never by
 * the raw URL: `/chunks/x/%66ill` is the fill route and needs what fill needs. A request no route
 * matched needs the weakest role, so unknown paths tell nothing to a caller without a token.
 */
function routeRole(req: FastifyRequest, weakest: string | undefined): string | undefined {
  const matched = req.routeOptions.url !== undefined;
  const auth = (req.routeOptions.config as RouteAuth | undefined)?.auth;
  if (!matched) return weakest;
  if (auth === 'open') return undefined;
  return auth ?? weakest;
}

/** Whether the request only reads (GET, HEAD): the requests Basic auth may carry. */
function isRead(req: FastifyRequest): boolean {
  return req.method === 'GET' || req.method === 'HEAD';
}

/** The password of an `Authorization: Basic` header (user name ignored), if the request has one. */
export function basicPasswordOf(req: FastifyRequest): string | undefined {
  const header = req.headers.authorization;
  if (!header?.startsWith('Basic ')) return undefined;
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? undefined : decoded.slice(colon + 1);
}

export type RoleToken = string | undefined | (() => string | undefined);

/** The strongest role whose token the request carries (its index in `roles`), or -1. */
function grantedRank(req: FastifyRequest, roles: BearerRolesOptions['roles'], basic: boolean): number {
  const given = bearerOf(req) ?? (basic && isRead(req) ? basicPasswordOf(req) : undefined);
  if (given === undefined) return -1;
  let rank = -1;
  // Every token is compared, so the time taken does not tell which role matched.
  roles.forEach(([, role], i) => {
    const token = typeof role === 'function' ? role() : role;
    if (token !== undefined && token !== '' && sameSecret(given, token)) rank = i;
  });
  return rank;
}

/**
 * An `onRequest` hook for credentials by role: 401 (with `WWW-Authenticate: Bearer`) without a
 * valid token, 403 when the token is valid but of a weaker role than the route needs.
 */
export function bearerRoles(options: BearerRolesOptions): (req: FastifyRequest, reply: FastifyReply) => Promise<void> {
  const rankOf = new Map(options.roles.map(([role], i) => [role, i]));
  const weakest = options.roles[0]?.[0];
  return async (req, reply) => {
    // Decided by the route fastify matched (its decoded path), so no spelling of a URL (percent-
    // encoding, a query) makes a request need less than its route does.
    const needed = options.required ? options.required(req, req.routeOptions.url) : routeRole(req, weakest);
    if (needed === undefined) return;
    const need = rankOf.get(needed) ?? Number.POSITIVE_INFINITY;
    const basic = options.basicRealm !== undefined;
    const has = grantedRank(req, options.roles, basic);
    if (has >= need) return;
    if (has < 0) {
      // One challenge per header line: browsers take the Basic one, API clients the Bearer one.
      const challenge = basic && isRead(req) ? [`Basic realm="${options.basicRealm}", charset="UTF-8"`, 'Bearer'] : 'Bearer';
      await reply
        .code(401)
        .header('www-authenticate', challenge)
        .send({ error: 'UNAUTHORIZED', message: 'a valid bearer token is required' });
      return;
    }
    await reply.code(403).send({ error: 'ACCESS_DENIED', message: `this request needs the ${needed} token` });
  };
}
