import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { waitFor } from '../wait.mjs';

/*
 * redis-server processes (plain, cluster nodes, sentinels) as children of the test process, not
 * daemons: a test can SIGKILL one (a crashed master), and whatever is still running when the test
 * process exits is killed with it.
 */

const running = new Set<ChildProcess>();
let exitHookInstalled = false;

function killAllOnExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of running) child.kill('SIGKILL');
  });
}

export function requireRedisServer(): void {
  if (spawnSync('redis-server', ['--version']).error) {
    throw new Error('redis-server is not on PATH: install it (Debian/Ubuntu: apt-get install -y redis-server)');
  }
}

/**
 * PEM files of a redis-server that serves TLS only: its certificate (also presented on the links
 * it opens: replication, the cluster bus, a sentinel's), and the CA it and its test clients trust.
 */
export interface RedisTestTls {
  ca: string;
  cert: string;
  key: string;
  /** `tls-auth-clients yes`: clients must present a certificate of the CA (default: they need not). */
  authClients?: boolean;
}

/** What a region's `redis.tls` says to reach such a server: the CA, and the client certificate when one is required. */
export function regionTls(tls: RedisTestTls): { ca: string; cert?: string; key?: string } {
  return { ca: tls.ca, ...(tls.authClients ? { cert: tls.cert, key: tls.key } : {}) };
}

export interface RedisProcess {
  port: number;
  /** `127.0.0.1:<port>`. */
  address: string;
  child: ChildProcess;
  /** The server's log file. */
  log: string;
  /** SIGKILL: a crash, nothing flushed. Resolves when the process is gone. */
  kill(): Promise<void>;
  /** SIGTERM, then SIGKILL after 5 s. */
  stop(): Promise<void>;
  /** The last lines of the log, for failure messages. */
  tail(): Promise<string>;
}

/**
 * Start `redis-server` with `args` (a config file first for a sentinel) on `port`, logging to
 * `<dir>/redis-<port>.log`, nothing persisted unless the args say otherwise; resolves once it
 * answers PING. With `tls`, `port` is its TLS port and it has no plain one.
 */
export async function spawnRedis(
  dir: string,
  port: number,
  args: string[],
  options: { password?: string; tls?: RedisTestTls } = {},
): Promise<RedisProcess> {
  killAllOnExit();
  const log = join(dir, `redis-${port}.log`);
  const { tls } = options;
  const listen = tls
    ? [
        ...['--port', '0', '--tls-port', String(port), '--tls-cert-file', tls.cert, '--tls-key-file', tls.key],
        ...['--tls-ca-cert-file', tls.ca, '--tls-auth-clients', tls.authClients ? 'yes' : 'no', '--tls-replication', 'yes'],
      ]
    : ['--port', String(port)];
  const child = spawn('redis-server', [...args, ...listen, '--bind', '127.0.0.1', '--dir', dir, '--logfile', log, '--daemonize', 'no'], {
    stdio: 'ignore',
  });
  running.add(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => running.delete(child));
  const proc: RedisProcess = {
    port,
    address: `127.0.0.1:${port}`,
    child,
    log,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
    tail: async () => (await readFile(log, 'utf8').catch(() => '')).split('\n').slice(-20).join('\n'),
  };
  try {
    await waitUntil(`redis-server on port ${port}`, async () => (await command(port, ['PING'], options.password, tls)) === 'PONG', 10_000);
  } catch (err) {
    await proc.kill();
    throw new Error(`${(err as Error).message}: ${await proc.tail()}`);
  }
  return proc;
}

/** One command on a short-lived connection (no retries, over TLS with `tls`): its reply, or the error. */
export async function command(port: number, args: Array<string | number>, password?: string, tls?: RedisTestTls): Promise<unknown> {
  const redis = new Redis({
    port,
    host: '127.0.0.1',
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    ...(password ? { password } : {}),
    ...(tls ? { tls: { ca: readFileSync(tls.ca), cert: readFileSync(tls.cert), key: readFileSync(tls.key) } } : {}),
  });
  redis.on('error', () => {});
  try {
    await redis.connect();
    return await redis.call(String(args[0]), ...args.slice(1).map(String));
  } finally {
    redis.disconnect();
  }
}

/** Poll `check` (errors count as "not yet") until it is true; fails naming `what` after `ms`. */
export async function waitUntil(what: string, check: () => Promise<boolean>, ms: number): Promise<void> {
  await waitFor(check, ms, what, { everyMs: 100, tolerateErrors: true });
}
