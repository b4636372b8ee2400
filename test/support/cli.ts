import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { connectRedis } from '@ferry/meta';
import type { Redis } from 'ioredis';
import { expect, inject } from 'vitest';
import { randomStream } from './bytes.js';

/**
 * Helpers for tests that drive the real `ferry` command as a subprocess: the built CLI through
 * `bin/ferry.js`, as users run it (the bundle after `npm run build` / `npm test`, dist/bin.js
 * after a plain `npx tsc -b`), a config file of the test's own, and nothing of the test runner's
 * process in between.
 */

export const FERRY_BIN = fileURLToPath(new URL('../../bin/ferry.js', import.meta.url));
const BUILT_CLI = fileURLToPath(new URL('../../services/cli/dist/bin.js', import.meta.url));
const MAX_RSS_PRELOAD = pathToFileURL(fileURLToPath(new URL('./max-rss-preload.mjs', import.meta.url))).href;
const MAX_RSS_MARKER = /\n?ferry-test-max-rss-kib=(\d+)\n$/;

export function requireBuiltCli(): void {
  if (!existsSync(BUILT_CLI)) throw new Error(`${BUILT_CLI} is missing: run \`npm run build\` first (npm test does it)`);
}

/** What a CLI test file shares: the run's Redis (database 0) and a scratch folder of its own. */
export interface CliWorkspace {
  redisUrl: string;
  redis: Redis;
  work: string;
  close(): Promise<void>;
}

/** Check the CLI is built, connect to the run's Redis and make a scratch folder; `close()` undoes both. */
export async function cliWorkspace(name: string): Promise<CliWorkspace> {
  requireBuiltCli();
  const redisUrl = `${inject('redisUrl')}/0`;
  // A URL makes one server's client, not a Cluster's.
  const redis = connectRedis(redisUrl, { name }) as Redis;
  const work = await mkdtemp(join(tmpdir(), `ferry-${name}-`));
  return {
    redisUrl,
    redis,
    work,
    async close() {
      redis.disconnect();
      await rm(work, { recursive: true, force: true });
    },
  };
}

export interface RunFerryOptions {
  /** Config file, given to the child as FERRY_CONFIG (so argv stays exactly what the test passes). */
  config?: string;
  /** Extra environment (undefined removes a variable). FERRY_CONFIG is never inherited. */
  env?: Record<string, string | undefined>;
  /** Working directory (default: the OS temp dir). */
  cwd?: string;
  /** The child is killed (SIGKILL) and the run fails after this long. Default 60 s. */
  timeoutMs?: number;
  /** Report the child's peak RSS (see max-rss-preload.mjs). */
  measureRss?: boolean;
}

export interface FerryResult {
  /** Exit code, or null when a signal ended the process. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  /** stdout exactly as written (for `cat`). */
  stdoutBytes: Buffer;
  /** stderr, without the RSS marker line of measureRss. */
  stderr: string;
  /** Peak resident set size in bytes (measureRss only). */
  maxRssBytes?: number;
}

export interface FerryProcess {
  child: ChildProcess;
  /** Called with every complete stdout line as it arrives. */
  onLine(listener: (line: string) => void): void;
  result: Promise<FerryResult>;
}

function childEnv(options: RunFerryOptions): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_OPTIONS: '' };
  for (const name of ['FERRY_CONFIG', 'FERRY_DEBUG', 'FERRY_LOG_LEVEL', 'FERRY_DEMO_REDIS']) delete env[name];
  if (options.config !== undefined) env.FERRY_CONFIG = options.config;
  for (const [name, value] of Object.entries(options.env ?? {})) {
    if (value === undefined) delete env[name];
    else env[name] = value;
  }
  return env;
}

/** Start `ferry <args>`; see runFerry for the options. */
export function spawnFerry(args: string[], options: RunFerryOptions = {}): FerryProcess {
  const nodeArgs = options.measureRss ? ['--import', MAX_RSS_PRELOAD, FERRY_BIN] : [FERRY_BIN];
  const child = spawn(process.execPath, [...nodeArgs, ...args], {
    cwd: options.cwd ?? tmpdir(),
    env: childEnv(options),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const listeners: Array<(line: string) => void> = [];
  let partial = '';
  child.stdout?.on('data', (data: Buffer) => {
    out.push(data);
    if (listeners.length === 0) return;
    partial += data.toString('utf8');
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) for (const listener of listeners) listener(line);
  });
  child.stderr?.on('data', (data: Buffer) => err.push(data));
  const timeoutMs = options.timeoutMs ?? 60_000;
  const result = new Promise<FerryResult>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`ferry ${args.join(' ')} did not finish within ${timeoutMs} ms`));
    }, timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const stdoutBytes = Buffer.concat(out);
      let stderr = Buffer.concat(err).toString('utf8');
      let maxRssBytes: number | undefined;
      const marker = MAX_RSS_MARKER.exec(stderr);
      if (marker) {
        maxRssBytes = Number(marker[1]) * 1024;
        stderr = stderr.slice(0, marker.index);
      }
      resolve({ code, signal, stdout: stdoutBytes.toString('utf8'), stdoutBytes, stderr, ...(maxRssBytes ? { maxRssBytes } : {}) });
    });
  });
  return { child, onLine: (listener) => listeners.push(listener), result };
}

/** Run `ferry <args>` to completion: exit code, stdout and stderr. */
export function runFerry(args: string[], options: RunFerryOptions = {}): Promise<FerryResult> {
  return spawnFerry(args, options).result;
}

/** Lines of stdout, without the empty last one. */
export function lines(text: string): string[] {
  return text.split('\n').filter((line, i, all) => line !== '' || i < all.length - 1);
}

/** Every stdout line parsed as JSON (`--json` prints one object per line). */
export function jsonLines(result: FerryResult): Array<Record<string, unknown>> {
  return lines(result.stdout).map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** The `--json` result object of a command: its last line. */
export function jsonResult(result: FerryResult): Record<string, unknown> {
  const last = jsonLines(result).at(-1);
  if (!last) throw new Error(`no JSON on stdout; stderr: ${result.stderr}`);
  return last;
}

/** A run that succeeded; the failure message shows what the CLI said. */
export function expectSuccess(result: FerryResult): void {
  expect(
    { code: result.code, signal: result.signal, stderr: result.stderr },
    `ferry failed: ${result.stderr}\nstdout: ${result.stdout.slice(0, 2000)}`,
  ).toEqual({ code: 0, signal: null, stderr: '' });
}

/**
 * A run that failed the way the CLI promises: exit code `code`, nothing on stdout, and stderr
 * exactly one line starting with "ferry: " (no stack trace). Returns that line.
 */
export function expectOneLineError(result: FerryResult, code: 1 | 2, includes?: string | RegExp): string {
  const shown = `stderr: ${JSON.stringify(result.stderr)}, stdout: ${JSON.stringify(result.stdout.slice(0, 500))}`;
  expect(result.code, shown).toBe(code);
  expect(result.stdout, shown).toBe('');
  expect(result.stderr, shown).toMatch(/^ferry: [^\n]+\n$/);
  expect(result.stderr, shown).not.toMatch(/\bat .+:\d+:\d+\)?$|internal error/m);
  if (includes !== undefined) {
    if (typeof includes === 'string') expect(result.stderr, shown).toContain(includes);
    else expect(result.stderr, shown).toMatch(includes);
  }
  return result.stderr.trimEnd();
}

export interface ConfigRegion {
  store: string;
  redis: string;
  [option: string]: unknown;
}

export interface ConfigDoc {
  volume: string;
  source: string;
  regions: Record<string, ConfigRegion>;
  chunkSize?: string | number;
  [option: string]: unknown;
}

/**
 * Write a config file into `dir` and return its path: a document (written as JSON, which is
 * YAML too, so every string is quoted exactly) or raw text for tests of malformed configs.
 */
export async function writeFerryConfig(dir: string, config: ConfigDoc | string, name = 'ferry.yaml'): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, typeof config === 'string' ? config : `${JSON.stringify(config, null, 2)}\n`);
  return path;
}

/** The usual one-region config: volume `volume`, source region `src`. */
export function sourceOnlyConfig(volume: string, store: string, redis: string, extra: Partial<ConfigDoc> = {}): ConfigDoc {
  return { volume, source: 'src', regions: { src: { store, redis } }, ...extra };
}

/** Write `size` random bytes to `path`, streamed (never held whole); returns their sha256. */
export async function writeRandomFile(path: string, size: number): Promise<string> {
  const { stream, sha256 } = randomStream(size, 4 << 20);
  await pipeline(stream, createWriteStream(path));
  return sha256;
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const part of createReadStream(path, { highWaterMark: 4 << 20 })) hash.update(part as Buffer);
  return hash.digest('hex');
}

export interface StoredFile {
  /** Path relative to the store root, `/`-separated. */
  key: string;
  ino: number;
  mtimeMs: number;
  size: number;
}

/** Every file under a `file://` store's root (in-flight temp files included), by key. */
export async function storeFiles(root: string): Promise<Map<string, StoredFile>> {
  const found = new Map<string, StoredFile>();
  async function walk(dir: string, prefix: string): Promise<void> {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    for (const name of names) {
      const full = join(dir, name);
      // A file can go between readdir and stat (a temp file renamed into place).
      const st = await stat(full).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return undefined;
        throw err;
      });
      if (!st) continue;
      const key = `${prefix}${name}`;
      if (st.isDirectory()) await walk(full, `${key}/`);
      else found.set(key, { key, ino: st.ino, mtimeMs: st.mtimeMs, size: st.size });
    }
  }
  await walk(root, '');
  return found;
}

/** Chunk files of a `file://` store (`chunks/ab/cd/<id>`), by chunk id. */
export async function storeChunks(root: string): Promise<Map<string, StoredFile>> {
  const chunks = new Map<string, StoredFile>();
  for (const file of (await storeFiles(root)).values()) {
    const m = /^chunks\/[0-9a-f]{2}\/[0-9a-f]{2}\/(sha256-[0-9a-f]{64})$/.exec(file.key);
    if (m?.[1]) chunks.set(m[1], file);
  }
  return chunks;
}
