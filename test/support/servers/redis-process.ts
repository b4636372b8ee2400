import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
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
 * answers PING.
 */
export async function spawnRedis(dir: string, port: number, args: string[], options: { password?: string } = {}): Promise<RedisProcess> {
  killAllOnExit();
  const log = join(dir, `redis-${port}.log`);
  const child = spawn(
    'redis-server',
    [...args, '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--logfile', log, '--daemonize', 'no'],
    { stdio: 'ignore' },
  );
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
    await waitUntil(`redis-server on port ${port}`, async () => (await command(port, ['PING'], options.password)) === 'PONG', 10_000);
  } catch (err) {
    await proc.kill();
    throw new Error(`${(err as Error).message}: ${await proc.tail()}`);
  }
  return proc;
}

/** One command on a short-lived connection (no retries): its reply, or the error. */
export async function command(port: number, args: Array<string | number>, password?: string): Promise<unknown> {
  const redis = new Redis({
    port,
    host: '127.0.0.1',
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    ...(password ? { password } : {}),
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
