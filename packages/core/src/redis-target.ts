import { z } from 'zod';
import { duration } from './config-sections.js';
import { redactUrl } from './logger.js';

/*
 * Where a region's Redis is: one server (a URL), a master found through Sentinel, or a Redis
 * Cluster. The schema is part of the config schema; the description is what every message about
 * a connection shows (never a password).
 */

const hostPortPattern = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;
const hostPortList = z
  .array(z.string().regex(hostPortPattern, 'expected host:port, e.g. 10.0.0.5:26379'))
  .min(1, 'name at least one host:port');

const urlSchema = z.string().regex(/^rediss?:\/\/\S+$/, 'expected redis://host:port/db or rediss://…');

const sentinelSchema = z
  .object({
    /** Sentinel addresses; any one that answers names the current master. */
    sentinels: hostPortList,
    /** The master's name in the Sentinel configuration (`sentinel monitor <name> …`). */
    name: z.string().min(1),
    /** The Redis user (ACL) this process connects as; without one, `default`. */
    user: z.string().min(1).optional(),
    /** The password of the master and its replicas (of `user`, when given). */
    password: z.string().min(1).optional(),
    /** The sentinels' own password (`requirepass` in their configuration), when they have one. */
    sentinelPassword: z.string().min(1).optional(),
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
    user: z.string().min(1).optional(),
    password: z.string().min(1).optional(),
    /** As for Sentinel: replicas of the volume's master that must have a change before it is acknowledged. */
    minReplicas: z.number().int().min(0).max(16).default(1),
    replicaTimeout: duration.default(2_000),
  })
  .strict();

export type RedisSentinelTarget = z.output<typeof sentinelSchema>;
export type RedisClusterTarget = z.output<typeof clusterSchema>;
/** A region's `redis`: a URL, a Sentinel-managed master, or a Cluster. */
export type RedisTarget = string | RedisSentinelTarget | RedisClusterTarget;

const SHAPES = 'expected a redis:// URL, { sentinels: ["host:port", …], name: "mymaster" } or { cluster: ["host:port", …] }';

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

/** `host:port` (IPv6 in brackets) as ioredis takes it. */
export function parseHostPort(value: string): { host: string; port: number } {
  const at = value.lastIndexOf(':');
  return { host: value.slice(0, at).replace(/^\[(.*)\]$/, '$1'), port: Number(value.slice(at + 1)) };
}

/** How many replicas must have a change before it is acknowledged, and for how long to wait (none for a URL). */
export function replicaAcks(target: RedisTarget): { minReplicas: number; timeoutMs: number } | undefined {
  if (typeof target === 'string' || target.minReplicas === 0) return undefined;
  return { minReplicas: target.minReplicas, timeoutMs: target.replicaTimeout };
}

/** The target for messages and logs: the URL without its password, or the nodes it names. */
export function describeRedisTarget(target: RedisTarget): string {
  if (typeof target === 'string') return redactUrl(target);
  const user = target.user ? ` as ${target.user}` : '';
  if (isSentinelTarget(target)) return `sentinels ${target.sentinels.join(',')} (master ${target.name}, db ${target.db})${user}`;
  return `cluster ${target.cluster.join(',')}${user}`;
}
