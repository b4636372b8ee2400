import { z } from 'zod';
import { duration, pemPath } from './config-sections.js';
import { redactUrl } from './logger.js';

/**
 * A Redis user name or password; empty counts as not given, so `${FERRY_REDIS_USER:-}` in a
 * config shared by several roles leaves a process without that region's credentials unset.
 */
const credential = z
  .string()
  .transform((s) => (s === '' ? undefined : s))
  .optional();

/*
 * Where a region's Redis is: one server (a URL), a master found through Sentinel, or a Redis
 * Cluster, each optionally over TLS. The schema is part of the config schema; the description is
 * what every message about a connection shows (never a password).
 */

const hostPortPattern = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;
const hostPortList = z
  .array(z.string().regex(hostPortPattern, 'expected host:port, e.g. 10.0.0.5:26379'))
  .min(1, 'name at least one host:port');

const urlSchema = z.string().regex(/^rediss?:\/\/\S+$/, 'expected redis://host:port/db or rediss://…');

/**
 * TLS to Redis, as PEM paths read when a process opens the region. `ca` is trusted beside the
 * system store (a private CA); `cert` and `key` are the client's own certificate, for servers
 * that ask for one (`tls-auth-clients yes`).
 */
const tlsSchema = z
  .object({ ca: pemPath.optional(), cert: pemPath.optional(), key: pemPath.optional() })
  .strict()
  .refine((t) => (t.cert === undefined) === (t.key === undefined), { message: 'cert and key go together', path: ['cert'] });

/**
 * One server, when the URL alone cannot say enough: a CA or client certificate for TLS, or a
 * password kept out of the URL (a `${file:…}` secret, or one that would need URL escaping).
 */
const urlObjectSchema = z
  .object({
    url: urlSchema,
    /** The Redis user (ACL) this process connects as; without one, `default`. */
    user: credential,
    password: credential,
    tls: tlsSchema.optional(),
  })
  .strict()
  // The URL says whether the connection is TLS; a `tls` section beside redis:// would be ignored.
  .refine((t) => t.tls === undefined || t.url.startsWith('rediss://'), { message: 'tls needs a rediss:// URL', path: ['url'] })
  .refine((t) => (t.user === undefined && t.password === undefined) || !/^rediss?:\/\/[^/@]*@/.test(t.url), {
    message: 'give the user and password in the URL or as user/password, not both',
    path: ['url'],
  });

const sentinelSchema = z
  .object({
    /** Sentinel addresses; any one that answers names the current master. */
    sentinels: hostPortList,
    /** The master's name in the Sentinel configuration (`sentinel monitor <name> …`). */
    name: z.string().min(1),
    /** The Redis user (ACL) this process connects as; without one, `default`. */
    user: credential,
    /** The password of the master and its replicas (of `user`, when given). */
    password: credential,
    /** The sentinels' own password (`requirepass` in their configuration), when they have one. */
    sentinelPassword: z.string().min(1).optional(),
    /** TLS to the sentinels and to the servers alike: the sentinels say where the master is, which is no less worth protecting. */
    tls: tlsSchema.optional(),
    db: z.number().int().min(0).max(15).default(0),
    /**
     * A change is reported done only once this many replicas have it (WAIT): a failover then
     * cannot lose an acknowledged put. 0 turns the wait off.
     */
    minReplicas: z.number().int().min(0).max(16).default(1),
    /** How long a change waits for those replicas before it says it may be lost in a failover. */
    replicaTimeout: duration.default(2_000),
  })
  .strict();

const clusterSchema = z
  .object({
    /** Some of the cluster's nodes; the client learns the rest from them. */
    cluster: hostPortList,
    /** The Redis user (ACL) this process connects as; without one, `default`. */
    user: credential,
    password: credential,
    /** TLS to every node (what the nodes say to each other is their own `tls-cluster` / `tls-replication`). */
    tls: tlsSchema.optional(),
    /** As for Sentinel: replicas of the volume's master that must have a change before it is acknowledged. */
    minReplicas: z.number().int().min(0).max(16).default(1),
    replicaTimeout: duration.default(2_000),
  })
  .strict();

export type RedisTls = z.output<typeof tlsSchema>;
export type RedisUrlTarget = z.output<typeof urlObjectSchema>;
export type RedisSentinelTarget = z.output<typeof sentinelSchema>;
export type RedisClusterTarget = z.output<typeof clusterSchema>;
/** A region's `redis`: a URL (alone, or with TLS files and credentials), a Sentinel-managed master, or a Cluster. */
export type RedisTarget = string | RedisUrlTarget | RedisSentinelTarget | RedisClusterTarget;

const SHAPES =
  'expected a redis:// URL, { sentinels: ["host:port", …], name: "mymaster" }, { cluster: ["host:port", …] } or { url: "rediss://…", tls: { ca } }';

/**
 * The three shapes, told apart by their key field so a mistake is reported against the shape the
 * user meant (a union would only say "invalid input").
 */
export const redisTargetSchema = z.unknown().transform((value, ctx): RedisTarget => {
  const shape =
    typeof value === 'string'
      ? urlSchema
      : value !== null && typeof value === 'object' && !Array.isArray(value)
        ? 'sentinels' in value
          ? sentinelSchema
          : 'cluster' in value
            ? clusterSchema
            : 'url' in value
              ? urlObjectSchema
              : undefined
        : undefined;
  if (!shape) {
    ctx.addIssue({ code: 'custom', message: SHAPES });
    return z.NEVER;
  }
  const result = shape.safeParse(value);
  if (result.success) return result.data;
  for (const issue of result.error.issues) ctx.addIssue({ code: 'custom', message: issue.message, path: issue.path });
  return z.NEVER;
});

export function isSentinelTarget(target: RedisTarget): target is RedisSentinelTarget {
  return typeof target === 'object' && 'sentinels' in target;
}

export function isClusterTarget(target: RedisTarget): target is RedisClusterTarget {
  return typeof target === 'object' && 'cluster' in target;
}

export function isUrlTarget(target: RedisTarget): target is string | RedisUrlTarget {
  return typeof target === 'string' || 'url' in target;
}

/** Whether connections to the target use TLS: a rediss:// URL, or a Sentinel or Cluster with a `tls` section. */
export function usesTls(target: RedisTarget): boolean {
  if (typeof target === 'string') return target.startsWith('rediss://');
  if ('url' in target) return target.url.startsWith('rediss://');
  return target.tls !== undefined;
}

/** `host:port` (IPv6 in brackets) as ioredis takes it. */
export function parseHostPort(value: string): { host: string; port: number } {
  const at = value.lastIndexOf(':');
  return { host: value.slice(0, at).replace(/^\[(.*)\]$/, '$1'), port: Number(value.slice(at + 1)) };
}

/** How many replicas must have a change before it is acknowledged, and for how long to wait (none for a URL). */
export function replicaAcks(target: RedisTarget): { minReplicas: number; timeoutMs: number } | undefined {
  if (isUrlTarget(target) || target.minReplicas === 0) return undefined;
  return { minReplicas: target.minReplicas, timeoutMs: target.replicaTimeout };
}

/** The target for messages and logs: the URL without its password, or the nodes it names. */
export function describeRedisTarget(target: RedisTarget): string {
  if (typeof target === 'string') return redactUrl(target);
  const user = target.user ? ` as ${target.user}` : '';
  if ('url' in target) return `${redactUrl(target.url)}${user}`;
  if (isSentinelTarget(target)) return `sentinels ${target.sentinels.join(',')} (master ${target.name}, db ${target.db})${user}`;
  return `cluster ${target.cluster.join(',')}${user}`;
}
