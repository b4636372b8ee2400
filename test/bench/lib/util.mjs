// Shared pieces of the benchmark scenarios: machine facts, processes, files, the servers.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnS3rver } from '../../support/servers/s3rver-process.mjs';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
// What users run (`npm link`, the image): the bundled command when it is as new as the build.
export const FERRY_BIN = join(ROOT, 'bin/ferry.js');
const RSS_PRELOAD = fileURLToPath(new URL('./rss-preload.mjs', import.meta.url));
const STATIC_SERVER = fileURLToPath(new URL('./static-server.mjs', import.meta.url));
/**
 * Node flags for the Ferry processes a scenario starts, from FERRY_BENCH_NODE_FLAGS (e.g.
 * `--cpu-prof --cpu-prof-dir=/tmp/prof` to profile each of them; NODE_OPTIONS refuses --cpu-prof).
 */
export const FERRY_NODE_FLAGS = (process.env.FERRY_BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean);
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

/**
 * The config of a source `src` and a mirror `eu` with cache nodes, each on a fresh `file://` store
 * under `work` (`<prefix>-src`, `<prefix>-eu`) and a database of `redisUrl`.
 */
export function mirrorWithCache({ work, prefix, volume, redisUrl, dbs: [srcDb, euDb], cache }) {
  return {
    volume,
    source: 'src',
    regions: {
      src: { store: `file://${freshDir(join(work, `${prefix}-src`))}`, redis: `${redisUrl}/${srcDb}` },
      eu: { store: `file://${freshDir(join(work, `${prefix}-eu`))}`, redis: `${redisUrl}/${euDb}`, cache },
    },
  };
}

/** A private redis-server (the one `ferry demo` uses). */
export async function startRedis() {
  const { startRedis } = await import('@ferry/runtime');
  return startRedis();
}

/** An s3rver child process with the given buckets; `{ endpoint, stop }`. */
export async function startS3rver(dir, buckets) {
  const { child, endpoint } = await spawnS3rver(dir, buckets);
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

export { waitFor } from '../../support/wait.mjs';

/** CPU seconds (user + system) a live process has used so far, from /proc; NaN where there is none. */
export function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of the line (11 and 12 after the name), in clock ticks.
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

/** CPU seconds of this process (every thread, the hash pool included) since `since` (process.cpuUsage()). */
export function ownCpuSeconds(since) {
  const d = process.cpuUsage(since);
  return (d.user + d.system) / 1e6;
}

/**
 * Run a command under /usr/bin/time: resolves with its wall time and CPU seconds (user +
 * system, its children included), or NaN CPU where /usr/bin/time is missing.
 */
export async function timedRun(command, args, options = {}) {
  if (!has('/usr/bin/time')) return { ...(await mustRun(command, args, options)), cpu: Number.NaN };
  const out = join(os.tmpdir(), `ferry-bench-time-${process.pid}-${Math.random().toString(36).slice(2)}`);
  const result = await mustRun('/usr/bin/time', ['-f', '%U %S %R', '-o', out, command, ...args], options);
  const [user, system, minorFaults] = readFileSync(out, 'utf8').trim().split('\n').at(-1).split(' ').map(Number);
  rmSync(out, { force: true });
  // Minor page faults: first touches of memory, which on a VM that hands freed pages back to its
  // host cost far more than the copy that caused them, and do not vary from run to run as time does.
  return { ...result, cpu: user + system, user, system, minorFaults };
}

/** The plain static-file server (its own process) over `dir`: `{ url, pid, stop }`. */
export async function startStaticServer(dir) {
  const child = spawn(process.execPath, [STATIC_SERVER, dir], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  const port = await new Promise((resolve, reject) => {
    let out = '';
    child.once('exit', (code) => reject(new Error(`static server exited ${code}`)));
    child.stdout.setEncoding('utf8').on('data', (t) => {
      out += t;
      if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]).port);
    });
  });
  return {
    url: `http://127.0.0.1:${port}`,
    pid: child.pid,
    async stop() {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Start `ferry replicator --region eu` of a config; resolves once it reports started. */
export async function startReplicator(config, env = process.env) {
  const child = spawn(process.execPath, [...FERRY_NODE_FLAGS, FERRY_BIN, 'replicator', '--region', 'eu', '--config', config, '--json'], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  await new Promise((resolve, reject) => {
    let out = '';
    child.once('exit', (code) => reject(new Error(`replicator exited ${code}`)));
    child.stdout.setEncoding('utf8').on('data', (t) => {
      out += t;
      if (out.includes('"event":"started"')) resolve();
    });
  });
  return {
    pid: child.pid,
    async stop() {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Start `ferry <args> --json` and resolve with the child and its first `event: started` line. */
export function startFerry(args, env = process.env) {
  const child = spawn(process.execPath, [...FERRY_NODE_FLAGS, FERRY_BIN, ...args, '--json'], { stdio: ['ignore', 'pipe', 'inherit'], env });
  return new Promise((resolve, reject) => {
    let out = '';
    child.once('exit', (code) => reject(new Error(`ferry ${args[0]} exited ${code}`)));
    child.stdout.setEncoding('utf8').on('data', (t) => {
      out += t;
      for (const line of out.split('\n')) if (line.includes('"event":"started"')) resolve({ child, started: JSON.parse(line) });
    });
  });
}

export async function stopChild(child) {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

/** MiB/s of `bytes` moved in `ms`. */
export const mibps = (bytes, ms) => bytes / MiB / (ms / 1000);

/**
 * Write back what earlier steps left dirty in the page cache, so a timed run that writes does
 * not pay for the previous one's writes (a file just generated, another tool's copy).
 */
export async function settle() {
  await mustRun('sync', []);
}
