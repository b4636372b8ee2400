import { execFile, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './free-port.js';

const run = promisify(execFile);

export interface RunningRedis {
  url: string;
  port: number;
  stop(): Promise<void>;
}

export interface RedisServerOptions {
  port: number;
  /** Working directory: pid file, log file, and the dump or append-only file if any. */
  dir: string;
  /** Keep an append-only file (a restart keeps the data). Default no. */
  appendonly?: boolean;
  /** The RDB file name (SAVE writes it; it is read at start). Default redis' own. */
  dbfilename?: string;
  /** Run redis-server under this command (e.g. `['nice', '-n', '-20']`). */
  prefix?: string[];
  /** Its ACL users from this file (it must exist; ACL LOAD reads it again). */
  aclfile?: string;
}

/**
 * Start a daemonized redis-server on 127.0.0.1:`port` with no periodic snapshots, and wait until
 * it answers PING. The one way every private server (the embedded default, tests, the chaos run)
 * is launched.
 */
export async function launchRedisServer(options: RedisServerOptions): Promise<void> {
  const { port, dir } = options;
  const [command, ...prefix] = [...(options.prefix ?? []), 'redis-server'];
  await run(command as string, [
    ...prefix,
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    options.appendonly ? 'yes' : 'no',
    ...(options.dbfilename ? ['--dbfilename', options.dbfilename] : []),
    ...(options.aclfile ? ['--aclfile', options.aclfile] : []),
    '--daemonize',
    'yes',
    '--dir',
    dir,
    '--pidfile',
    join(dir, 'redis.pid'),
    '--logfile',
    join(dir, 'redis.log'),
  ]);
  await waitForRedis(port, 'up');
}

/** Wait until the server on `port` answers PING (`up`) or no longer does (`down`); 10 s at most. */
export async function waitForRedis(port: number, state: 'up' | 'down'): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const answered = await run('redis-cli', ['-p', String(port), 'ping']).then(
      ({ stdout }) => stdout.trim() === 'PONG',
      () => false,
    );
    if (answered === (state === 'up')) return;
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} is not ${state} after 10 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * A private redis-server on a free loopback port, nothing persisted. Used by the tests and by
 * `ferry demo`'s embedded default, never the machine's shared Redis.
 */
export async function startRedis(): Promise<RunningRedis> {
  if (spawnSync('redis-server', ['--version']).error) {
    throw new Error('redis-server is not on PATH: install it (Debian/Ubuntu: apt-get install -y redis-server)');
  }
  const dir = await mkdtemp(join(tmpdir(), 'ferry-redis-'));
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    try {
      await launchRedisServer({ port, dir });
      return {
        url: `redis://127.0.0.1:${port}`,
        port,
        async stop() {
          await run('redis-cli', ['-p', String(port), 'shutdown', 'nosave']).catch(() => {});
          await rm(dir, { recursive: true, force: true });
        },
      };
    } catch (err) {
      if (attempt >= 3) throw err;
    }
  }
}
