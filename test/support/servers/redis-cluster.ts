import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './free-port.js';
import { command, type RedisProcess, type RedisTestTls, regionTls, requireRedisServer, spawnRedis, waitUntil } from './redis-process.js';

const run = promisify(execFile);

export interface RunningRedisCluster {
  /** `127.0.0.1:<port>` of each node (the masters first). */
  nodes: string[];
  /** What a region's `redis` says for this cluster (`minReplicas` as many as each master has). */
  target: { cluster: string[]; minReplicas: number; tls?: { ca: string; cert?: string; key?: string } };
  processes: RedisProcess[];
  /** Which master serves a key (asks the cluster). */
  nodeOf(key: string): Promise<string>;
  stop(): Promise<void>;
}

/**
 * A Redis Cluster of `masters` (default 3) redis-server processes on free loopback ports, each
 * with `replicas` replicas (default none), nothing persisted: `redis-server --cluster-enabled yes`
 * per node, then `redis-cli --cluster create`. Resolves when every node reports `cluster_state:ok`.
 * With `tls`, clients, the cluster bus and replication all speak TLS only.
 */
export async function startRedisCluster(
  options: { masters?: number; replicas?: number; tls?: RedisTestTls } = {},
): Promise<RunningRedisCluster> {
  requireRedisServer();
  const { tls } = options;
  const replicas = options.replicas ?? 0;
  const count = (options.masters ?? 3) * (1 + replicas);
  const dir = await mkdtemp(join(tmpdir(), 'ferry-redis-cluster-'));
  const processes: RedisProcess[] = [];
  const stop = async () => {
    await Promise.allSettled(processes.map((p) => p.stop()));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < count; i++) {
      const [port, busPort] = [await freePort(), await freePort()];
      processes.push(
        await spawnRedis(
          dir,
          port,
          [
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            join(dir, `nodes-${port}.conf`),
            // The bus port is named, not port + 10000, which may be taken (or beyond 65535).
            '--cluster-port',
            String(busPort),
            '--cluster-node-timeout',
            '2000',
            '--save',
            '',
            '--appendonly',
            'no',
            ...(tls ? ['--tls-cluster', 'yes'] : []),
          ],
          { tls },
        ),
      );
    }
    const nodes = processes.map((p) => p.address);
    const cliTls = tls ? ['--tls', '--cacert', tls.ca, '--cert', tls.cert, '--key', tls.key] : [];
    await run('redis-cli', [...cliTls, '--cluster', 'create', ...nodes, '--cluster-replicas', String(replicas), '--cluster-yes']);
    for (const p of processes) {
      await waitUntil(
        `cluster_state:ok on ${p.address}`,
        async () => String(await command(p.port, ['CLUSTER', 'INFO'], undefined, tls)).includes('cluster_state:ok'),
        20_000,
      );
    }
    return {
      nodes,
      target: { cluster: nodes, minReplicas: replicas, ...(tls ? { tls: regionTls(tls) } : {}) },
      processes,
      async nodeOf(key: string) {
        const slot = Number(await command(processes[0]?.port as number, ['CLUSTER', 'KEYSLOT', key], undefined, tls));
        const ranges = (await command(processes[0]?.port as number, ['CLUSTER', 'SLOTS'], undefined, tls)) as Array<
          [number, number, [string, number]]
        >;
        const owner = ranges.find(([from, to]) => slot >= from && slot <= to);
        if (!owner) throw new Error(`no node serves slot ${slot}`);
        return `${owner[2][0]}:${owner[2][1]}`;
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
