// Processes the chaos run starts and breaks: redis-servers it can restart or flush, an s3rver it
// can take away and bring back on the same port, and the replicator daemon it kills.
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { freePort, launchRedisServer, waitForRedis } from '@ferry/runtime';
import { spawnS3rver } from '../support/servers/s3rver-process.mjs';
import { waitFor } from '../support/wait.mjs';

const run = promisify(execFile);
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const FERRY_BIN = join(ROOT, 'bin/ferry.js');
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export { freePort };

/**
 * A redis-server in `dir` on a fixed port; `aof` keeps its data across a restart. With `acl`, its
 * users come from `<dir>/users.acl` (empty at first: only `default`), so they survive a restart.
 */
export async function redisServer(dir, { aof = false, acl = false } = {}) {
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const aclfile = join(dir, 'users.acl');
  if (acl) writeFileSync(aclfile, '');
  const cli = async (...args) => (await run('redis-cli', ['-p', String(port), ...args])).stdout.trim();
  const start = () => launchRedisServer({ port, dir, appendonly: aof, ...(acl ? { aclfile } : {}) });
  const stop = async () => {
    // SHUTDOWN flushes the append-only file first: a restart, not a loss.
    await cli('shutdown').catch(() => {});
    await waitForRedis(port, 'down');
  };
  await start();
  return { url: `redis://127.0.0.1:${port}`, port, cli, start, stop, aclfile };
}

/** s3rver (test/support/servers/s3rver-main.mjs) in `dir`, startable again on the same port. */
export async function s3Server(dir, bucket) {
  mkdirSync(dir, { recursive: true });
  let child;
  let port = 0;
  const start = async () => {
    let endpoint;
    ({ child, endpoint } = await spawnS3rver(dir, [bucket], port));
    port = Number(new URL(endpoint).port);
    return endpoint;
  };
  const stop = async () => {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  };
  const endpoint = await start();
  return { endpoint, start, stop };
}

/** `ferry replicator --region <region>` as a process, its output appended to `log`. */
export function startReplicator({ region, configPath, log, env }) {
  const fd = openSync(log, 'a');
  const child = spawn(process.execPath, [FERRY_BIN, 'replicator', '--region', region, '--config', configPath], {
    cwd: ROOT,
    env: { ...process.env, FERRY_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', fd, fd],
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return {
    child,
    exited,
    async kill9() {
      child.kill('SIGKILL');
      await exited;
    },
    async terminate() {
      child.kill('SIGTERM');
      return exited;
    },
  };
}

export { waitFor };

export async function sha256Of(stream) {
  const hash = createHash('sha256');
  for await (const part of stream) hash.update(part);
  return hash.digest('hex');
}

export function formatMs(ms) {
  const s = Math.round(ms / 1000);
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}
