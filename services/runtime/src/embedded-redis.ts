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
      await run('redis-server', [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--daemonize',
        'yes',
        '--dir',
        dir,
        '--pidfile',
        join(dir, 'redis.pid'),
        '--logfile',
        join(dir, 'redis.log'),
      ]);
      await waitForPing(port);
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

async function waitForPing(port: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      const { stdout } = await run('redis-cli', ['-p', String(port), 'ping']);
      if (stdout.trim() === 'PONG') return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
