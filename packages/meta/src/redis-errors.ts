import { AccessDeniedError, isFerryError, messageOf, redactUrl, tlsFailure, UnauthorizedError, UnavailableError } from '@ferry/core';
import { describeRedis, lastRedisError, type RedisClient } from './redis.js';

const SOCKET_REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  ETIMEDOUT: 'connection timed out',
  ECONNRESET: 'connection reset',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EPIPE: 'connection closed',
};

function socketReason(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === undefined ? undefined : SOCKET_REASONS[code];
}

function isConnectionFailure(err: unknown): boolean {
  if (socketReason(err) !== undefined) return true;
  const name = (err as Error | undefined)?.name;
  const message = messageOf(err);
  return (
    name === 'MaxRetriesPerRequestError' ||
    name === 'ClusterAllFailedError' ||
    message === 'Connection is closed.' ||
    message === 'Command timed out' ||
    message.includes("Stream isn't writeable") ||
    message.includes('None of startup nodes is available') ||
    message.includes('All sentinels are unreachable')
  );
}

// Node's codes for a server certificate the client cannot trust, and for a client certificate the server refused.
const UNTRUSTED = /^(UNABLE_TO_(GET_ISSUER_CERT(_LOCALLY)?|VERIFY_LEAF_SIGNATURE)|SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT)$/;
const REFUSED = /_ALERT_(CERTIFICATE_REQUIRED|UNKNOWN_CA|BAD_CERTIFICATE)$/;

/** What to look at after a failed TLS handshake with Redis, by Node's code for it. */
function tlsHint(err: unknown): string {
  const code = String((err as NodeJS.ErrnoException).code);
  if (UNTRUSTED.test(code)) return "; the region's redis.tls.ca must hold the CA that signed the server's certificate";
  if (REFUSED.test(code)) return "; the server refused this client's certificate (the region's redis.tls.cert and key)";
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return "; the server's certificate must name the host or address the client connects to";
  return '';
}

const UNAVAILABLE_REPLIES = /^(LOADING|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|BUSY|READONLY)\b/;

/**
 * A Ferry error for a failure of a Redis call: unreachable or not ready → UnavailableError (one
 * line naming the target without password: `target`, else how the client was made), refused
 * credentials or a server certificate the client does not trust → UnauthorizedError. Anything
 * else (a bug, a corrupt key) is returned unchanged.
 */
export function translateRedisError(err: unknown, redis: RedisClient, target?: string): unknown {
  if (isFerryError(err)) return err;
  // A caller may name the Redis by its URL: shown without the password, like describeRedis does.
  const where = target === undefined ? describeRedis(redis) : redactUrl(target);
  const last = lastRedisError(redis);
  // Retrying cannot fix a certificate: said as such, not as one more unreachable Redis.
  const handshake = tlsFailure(err) ? err : isConnectionFailure(err) && tlsFailure(last) ? last : undefined;
  if (handshake) return new UnauthorizedError(`Redis at ${where}: ${tlsFailure(handshake)}${tlsHint(handshake)}`, { cause: handshake });
  if (isConnectionFailure(err)) {
    const reason = socketReason(err) ?? socketReason(last) ?? (last ? messageOf(last).split('\n')[0] : 'no connection');
    return new UnavailableError(`cannot reach Redis at ${where}: ${reason}`, { cause: last ?? err });
  }
  const message = messageOf(err);
  if (/^(NOAUTH|WRONGPASS)\b/.test(message)) {
    return new UnauthorizedError(`Redis at ${where} refused the credentials: ${message.split('\n')[0]}`, { cause: err });
  }
  if (isNoPermission(err)) {
    const reason = noPermissionReply(err);
    return new AccessDeniedError(
      `Redis at ${where} refused a command of this process's user: ${reason}; the role's rules are printed by \`ferry redis-acl\``,
      { cause: err },
    );
  }
  if (UNAVAILABLE_REPLIES.test(message)) {
    return new UnavailableError(`Redis at ${where} cannot serve the request: ${message.split('\n')[0]}`, { cause: err });
  }
  return err;
}

/** Check that Redis answers; throws a one-line UnavailableError/UnauthorizedError otherwise. */
export async function pingRedis(redis: RedisClient): Promise<void> {
  try {
    await redis.ping();
  } catch (err) {
    throw translateRedisError(err, redis);
  }
}

/**
 * The server's ACL refused a command or a key to this connection's user (NOPERM), directly or
 * as the reason a transaction was discarded (EXECABORT with the queued command's NOPERM).
 */
export function isNoPermission(err: unknown): boolean {
  return noPermissionReply(err) !== undefined;
}

function noPermissionReply(err: unknown): string | undefined {
  // Also when already translated: the server's reply is the cause.
  const reply = err instanceof AccessDeniedError ? (err as Error).cause : err;
  const replies = [messageOf(reply), ...((reply as { previousErrors?: unknown[] } | undefined)?.previousErrors ?? []).map(messageOf)];
  return replies.find((m) => m.startsWith('NOPERM'))?.split('\n')[0];
}
