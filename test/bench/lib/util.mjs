// Shared pieces of the benchmark scenarios: machine facts, processes, files, the servers.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const FERRY_BIN = join(ROOT, 'services/cli/dist/bin.js');
const RSS_PRELOAD = fileURLToPath(new URL('./rss-preload.mjs', import.meta.url));
export const MiB = 2 ** 20;
export const GiB = 2 ** 30;

export function machine() {
  const cpus = os.cpus();
  return {
    cores: cpus.length,
    cpu: cpus[0]?.model ?? 'unknown',
    memoryGiB: Math.round((os.totalmem() / GiB) * 10) / 10,
    node: process.version,
    platform: `${os.type()} ${os.release()}`,
  };
}

/** True when a command is on the PATH. */
export function has(command) {
  return spawnSync('sh', ['-c', `command -v ${command}`]).status === 0;
}

/** Run a command to completion; resolves with its exit code, output and wall time. */
export function run(command, args, options = {}) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (t) => {
      stdout += t;
    });
    child.stderr.setEncoding('utf8').on('data', (t) => {
      stderr = (stderr + t).slice(-8000);
    });
    child.once('error', reject);
    child.once('close', (code, signal) => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      resolve({ code, signal, stdout, stderr, ms });
    });
  });
}

/** Run and fail loudly on a non-zero exit. */
export async function mustRun(command, args, options = {}) {
  const result = await run(command, args, options);
  if (result.code !== 0)
    throw new Error(`${command} ${args.join(' ')} exited ${result.code ?? result.signal}: ${result.stderr.trim().slice(-800)}`);
  return result;
}

/** This process's environment plus `extra`, without AWS_CA_BUNDLE: for the tools a scenario runs against s3rver. */
export function withoutCaBundle(extra = {}) {
  const env = { ...process.env, ...extra };
  delete env.AWS_CA_BUNDLE;
  return env;
}

/** Environment that makes a Node child write its peak RSS (bytes) to `file` when it exits. */
export function rssEnv(file, base = process.env) {
  return { ...base, FERRY_RSS_FILE: file, NODE_OPTIONS: `${base.NODE_OPTIONS ?? ''} --import=${RSS_PRELOAD}`.trim() };
}

export function readRss(file) {
  try {
    return Number(readFileSync(file, 'utf8'));
  } catch {
    return Number.NaN;
  }
}

/** A file of `size` random bytes, written in 4 MiB blocks (never held whole). */
export async function writeRandomFile(path, size) {
  mkdirSync(dirname(path), { recursive: true });
  const handle = await open(path, 'w');
  try {
    for (let left = size; left > 0; ) {
      const block = randomBytes(Math.min(left, 4 * MiB));
      await handle.write(block);
      left -= block.length;
    }
  } finally {
    await handle.close();
  }
}

export function freshDir(path) {
  rmSync(path, { recursive: true, force: true });
  mkdirSync(path, { recursive: true });
  return path;
}

export function writeConfig(path, config) {
  writeFileSync(path, JSON.stringify(config, null, 2));
  return path;
}

/** A private redis-server (the one `ferry demo` uses). */
export async function startRedis() {
  const { startRedis } = await import('@ferry/runtime');
  return startRedis();
}

/** An s3rver child process with the given buckets; `{ endpoint, stop }`. */
export async function startS3rver(dir, buckets) {
  const child = spawn(
    process.execPath,
    ['--openssl-legacy-provider', join(ROOT, 'test/support/servers/s3rver-main.mjs'), dir, buckets.join(',')],
    {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, NODE_OPTIONS: '' },
    },
  );
  const endpoint = await new Promise((resolve, reject) => {
    let out = '';
    child.once('exit', (code) => reject(new Error(`s3rver exited ${code}`)));
    child.stdout.setEncoding('utf8').on('data', (t) => {
      out += t;
      if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]).endpoint);
    });
  });
  return {
    endpoint,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    },
  };
}

/** Percentile of sorted numbers. */
export function percentile(sorted, p) {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Read a stream to its end, keeping nothing. */
export async function drain(readable) {
  for await (const _ of readable) {
    // consume
  }
}

export async function waitFor(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}
