import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { launchRedisServer, waitForRedis } from '@ferry/runtime';
import { freePort } from './free-port.js';

const run = promisify(execFile);

/**
 * A redis-server of one test's own, for what the run's shared server must not see: a flush, a
 * shutdown, a restore from an older dump, a SLOWLOG to read. It can be stopped and started again
 * on the same port with the same data directory; with `rdb`, `snapshot()` saves a dump (SAVE) and
 * `restore()` puts an earlier one back while the server is down.
 */
export interface PrivateRedis {
  url: string;
  port: number;
  dir: string;
  /** redis-cli against this server; returns stdout. */
  cli(...args: string[]): Promise<string>;
  start(): Promise<void>;
  /** SHUTDOWN NOSAVE (the data on disk stays as it was). */
  shutdown(): Promise<void>;
  /** SAVE, then a copy of the dump under `name`. */
  snapshot(name: string): Promise<void>;
  /** Put the dump saved under `name` back (call while the server is down). */
  restore(name: string): Promise<void>;
  close(): Promise<void>;
}

/** Whether this process may raise a child's scheduling priority (root, or CAP_SYS_NICE). */
async function canRaisePriority(): Promise<boolean> {
  return run('nice', ['-n', '-20', 'true']).then(
    () => true,
    () => false,
  );
}

export async function privateRedis(options: { rdb?: boolean; raisedPriority?: boolean } = {}): Promise<PrivateRedis> {
  // A test that reads SLOWLOG measures how long commands take on the server's clock: on a busy
  // test machine another process taking the CPU mid-command would count as the command's time.
  const nice = options.raisedPriority && (await canRaisePriority()) ? ['nice', '-n', '-20'] : [];
  const dir = await mkdtemp(join(tmpdir(), 'ferry-private-redis-'));
  const port = await freePort();
  const cli = async (...args: string[]) => (await run('redis-cli', ['-p', String(port), ...args])).stdout.trim();
  const start = () => launchRedisServer({ port, dir, dbfilename: options.rdb ? 'dump.rdb' : 'none.rdb', prefix: nice });
  const shutdown = async () => {
    await cli('shutdown', 'nosave').catch(() => {});
    await waitForRedis(port, 'down');
  };
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    cli,
    start,
    shutdown,
    async snapshot(name) {
      await cli('save');
      await copyFile(join(dir, 'dump.rdb'), join(dir, `${name}.rdb`));
    },
    async restore(name) {
      await copyFile(join(dir, `${name}.rdb`), join(dir, 'dump.rdb'));
    },
    async close() {
      await shutdown();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
