import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './free-port.js';
import { command, type RedisProcess, type RedisTestTls, regionTls, requireRedisServer, spawnRedis, waitUntil } from './redis-process.js';

export const SENTINEL_MASTER = 'mymaster';

export interface RunningSentinel {
  /** What a region's `redis` says for this master (db 0 unless given). */
  target(db?: number): {
    sentinels: string[];
    name: string;
    db: number;
    minReplicas: number;
    replicaTimeout: number;
    password?: string;
    sentinelPassword?: string;
    tls?: { ca: string; cert?: string; key?: string };
  };
  /** The redis-server processes: the first started as master, the second as its replica. */
  servers: RedisProcess[];
  sentinels: RedisProcess[];
  /** `host:port` of the master as the sentinels report it now. */
  master(): Promise<string>;
  /** The server process that is the master now. */
  masterProcess(): Promise<RedisProcess>;
  /** Wait until the sentinels report a master other than `old`, and it says it is a master. */
  waitForNewMaster(old: string, ms?: number): Promise<string>;
  stop(): Promise<void>;
}

export interface SentinelOptions {
  /** requirepass of the master and the replica (and the sentinels' auth-pass for them). */
  password?: string;
  /** requirepass of the sentinels themselves. */
  sentinelPassword?: string;
  /** Servers and sentinels serve TLS only, and talk TLS to each other (replication, monitoring). */
  tls?: RedisTestTls;
}

/**
 * One master, one replica and three sentinels (quorum 2), all redis-server processes on free
 * loopback ports, nothing persisted. A master is declared down after 1 s, so a killed master is
 * replaced within a few seconds. Resolves when the replica is in sync and every sentinel knows
 * the replica and the other two sentinels (a failover needs their votes).
 */
export async function startRedisSentinel(options: SentinelOptions = {}): Promise<RunningSentinel> {
  const { password, sentinelPassword, tls } = options;
  const serverCommand = (port: number, args: Array<string | number>) => command(port, args, password, tls);
  const sentinelCommand = (port: number, args: Array<string | number>) => command(port, args, sentinelPassword, tls);
  const replicationRole = async (port: number) => /role:(\w+)/.exec(String(await serverCommand(port, ['INFO', 'replication'])))?.[1];
  requireRedisServer();
  const dir = await mkdtemp(join(tmpdir(), 'ferry-redis-sentinel-'));
  const servers: RedisProcess[] = [];
  const sentinels: RedisProcess[] = [];
  const stop = async () => {
    await Promise.allSettled([...sentinels, ...servers].map((p) => p.stop()));
    await rm(dir, { recursive: true, force: true });
  };
  const noPersistence = ['--save', '', '--appendonly', 'no', ...(password ? ['--requirepass', password, '--masterauth', password] : [])];
  try {
    const master = await spawnRedis(dir, await freePort(), noPersistence, { password, tls });
    servers.push(master);
    const replica = await spawnRedis(dir, await freePort(), [...noPersistence, '--replicaof', '127.0.0.1', String(master.port)], {
      password,
      tls,
    });
    servers.push(replica);
    await waitUntil(
      'the replica to sync',
      async () => String(await serverCommand(replica.port, ['INFO', 'replication'])).includes('master_link_status:up'),
      20_000,
    );
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const conf = join(dir, `sentinel-${port}.conf`);
      // Sentinel rewrites its config file (what it learns), so each has its own, writable one.
      await writeFile(
        conf,
        [
          `sentinel monitor ${SENTINEL_MASTER} 127.0.0.1 ${master.port} 2`,
          `sentinel down-after-milliseconds ${SENTINEL_MASTER} 1000`,
          `sentinel failover-timeout ${SENTINEL_MASTER} 10000`,
          `sentinel parallel-syncs ${SENTINEL_MASTER} 1`,
          ...(password ? [`sentinel auth-pass ${SENTINEL_MASTER} ${password}`] : []),
          ...(sentinelPassword ? [`requirepass ${sentinelPassword}`] : []),
          '',
        ].join('\n'),
      );
      sentinels.push(await spawnRedis(dir, port, [conf, '--sentinel'], { password: sentinelPassword, tls }));
    }
    for (const s of sentinels) {
      await waitUntil(
        `sentinel ${s.address} to know the replica and the other sentinels`,
        async () =>
          ((await sentinelCommand(s.port, ['SENTINEL', 'REPLICAS', SENTINEL_MASTER])) as unknown[]).length === 1 &&
          ((await sentinelCommand(s.port, ['SENTINEL', 'SENTINELS', SENTINEL_MASTER])) as unknown[]).length === 2,
        30_000,
      );
    }
    const masterAddress = async (): Promise<string> => {
      for (const s of sentinels) {
        try {
          const [host, port] = (await sentinelCommand(s.port, ['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', SENTINEL_MASTER])) as [
            string,
            string,
          ];
          return `${host}:${port}`;
        } catch {}
      }
      throw new Error('no sentinel answers');
    };
    return {
      target: (db = 0) => ({
        sentinels: sentinels.map((s) => s.address),
        name: SENTINEL_MASTER,
        db,
        // The schema's defaults: a change waits for the replica up to 2 s.
        minReplicas: 1,
        replicaTimeout: 2_000,
        ...(password ? { password } : {}),
        ...(sentinelPassword ? { sentinelPassword } : {}),
        ...(tls ? { tls: regionTls(tls) } : {}),
      }),
      servers,
      sentinels,
      master: masterAddress,
      async masterProcess() {
        const address = await masterAddress();
        const found = servers.find((s) => s.address === address);
        if (!found) throw new Error(`the master ${address} is none of the servers started`);
        return found;
      },
      async waitForNewMaster(old: string, ms = 30_000) {
        let now = old;
        await waitUntil(
          `the sentinels to promote a new master (was ${old})`,
          async () => {
            now = await masterAddress();
            const server = servers.find((s) => s.address === now);
            return now !== old && server !== undefined && (await replicationRole(server.port)) === 'master';
          },
          ms,
        );
        return now;
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
