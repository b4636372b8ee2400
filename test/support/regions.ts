import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, openSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type ChunkId,
  chunkDigest,
  chunkKey,
  type Entry,
  type FerryConfig,
  forEachLimit,
  isNativeChunkId,
  type NewEntry,
  parseConfig,
  type RedisTarget,
  silentLogger,
} from '@ferry/core';
import { decodeStoredEntry, type MirrorMeta } from '@ferry/meta';
import { openRegion, type Region } from '@ferry/region';
import type { ObjectStore } from '@ferry/stores';
import { type PutSummary, planPut, putFiles, stageFiles } from '@ferry/writer';
import { inject } from 'vitest';
import { uniqueName } from './random.js';
import { waitFor } from './wait.mjs';

export { waitFor };

/*
 * Two or more regions of one volume on the run's redis-server (one Redis database per region,
 * because a mirror uses the same key names as the source) and fresh stores, for the replicator's
 * tests. Everything a test needs to drive the source, look into a mirror and compare the two.
 */

export const KiB = 1024;
export const MiB = 2 ** 20;
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
export const REPO = fileURLToPath(new URL('../../', import.meta.url));
/** The `ferry` command as users run it (see FERRY_BIN in cli.ts). */
export const CLI = join(REPO, 'bin/ferry.js');

/**
 * Redis databases by role (a mirror uses the source's key names, so not the same database).
 * Volumes are random, so test files can share databases; these avoid the ones other suites use.
 */
const SOURCE_DB = 2;
const MIRROR_DBS = [3, 6, 7];

export interface RegionSpec {
  /** Store URL (default: a fresh directory, fsync off). */
  store?: string;
  /** The region's Redis (default: a database of the run's redis-server). */
  redis?: RedisTarget | Record<string, unknown>;
  cache?: { replicas?: number; token?: string; readToken?: string; writeToken?: string; connectTimeoutMs?: number };
  warm?: Array<{ path: string; replicas?: number }>;
  copy?: {
    concurrency?: number;
    attempts?: number;
    bytesPerSecond?: number;
    reconcileEvery?: string | number;
    fullReconcileEvery?: string | number;
    backlog?: number;
  };
  api?: { listen?: string; token?: string; readToken?: string; adminToken?: string; open?: boolean };
  gc?: { every?: string | number; grace?: string | number };
  scrub?: { bytesPerSecond?: string | number };
}

/** A region opened the way the services open one, plus where the test keeps it. */
export type RegionHandle = Region & {
  /** The region's Redis, as the config names it (a URL, Sentinel or Cluster). */
  url: RedisTarget;
  /** Local root when the store is file://. */
  root?: string;
};

export type MirrorHandle = RegionHandle & { mirror: MirrorMeta };

export interface Regions {
  dir: string;
  volume: string;
  config: FerryConfig;
  /** The config file (for the CLI). */
  configPath: string;
  source: RegionHandle;
  mirrors: Record<string, MirrorHandle>;
  mirror(name: string): MirrorHandle;
  close(): Promise<void>;
}

function mirrorDb(index: number): number {
  const db = MIRROR_DBS[index];
  if (db === undefined) throw new Error(`createRegions: at most ${MIRROR_DBS.length} mirror regions`);
  return db;
}

function fileStoreUrl(root: string): string {
  return `file://${root}?fsync=0`;
}

/** A source region `src` and mirror regions (default: one, `eu`), each with its own Redis database and store. */
export async function createRegions(
  options: {
    mirrors?: Record<string, RegionSpec>;
    source?: RegionSpec;
    chunkSize?: number;
    logMaxLen?: number;
    /** The `replicator` section of the config (lease time, stop deadline). */
    replicator?: { leaseTtl?: string | number; stopTimeout?: string | number };
    /** The `writer` section (how long a put's chunk holds last unrenewed). */
    writer?: { holdTtl?: string | number };
    /** Redis server for the source region (default: the run's); the source uses its database 2. */
    sourceRedis?: string;
    /** Redis server for the mirror regions (default: the run's). */
    mirrorRedis?: string;
  } = {},
): Promise<Regions> {
  const redisUrl = inject('redisUrl');
  const dir = await mkdtemp(join(tmpdir(), 'ferry-repl-'));
  const volume = uniqueName('v');
  const specs: Record<string, RegionSpec> = { src: options.source ?? {}, ...(options.mirrors ?? { eu: {} }) };
  const regions: Record<string, Record<string, unknown>> = {};
  const roots: Record<string, string | undefined> = {};
  let mirrorIndex = 0;
  for (const [name, spec] of Object.entries(specs)) {
    const root = spec.store ? undefined : join(dir, 'stores', name);
    roots[name] = root;
    regions[name] = {
      store: spec.store ?? fileStoreUrl(root as string),
      redis:
        spec.redis ??
        (name === 'src'
          ? `${options.sourceRedis ?? redisUrl}/${SOURCE_DB}`
          : `${options.mirrorRedis ?? redisUrl}/${mirrorDb(mirrorIndex++)}`),
      ...(spec.copy ? { copy: spec.copy } : {}),
      ...(spec.cache ? { cache: spec.cache } : {}),
      ...(spec.warm ? { warm: spec.warm } : {}),
      ...(spec.api ? { api: spec.api } : {}),
      ...(spec.gc ? { gc: spec.gc } : {}),
      ...(spec.scrub ? { scrub: spec.scrub } : {}),
    };
  }
  const doc = {
    volume,
    chunkSize: options.chunkSize ?? 8 * MiB,
    source: 'src',
    regions,
    ...(options.logMaxLen ? { log: { maxLen: options.logMaxLen } } : {}),
    ...(options.writer ? { writer: options.writer } : {}),
    ...(options.replicator ? { replicator: options.replicator } : {}),
  };
  const config = parseConfig(doc);
  const configPath = join(dir, 'ferry.yaml');
  // JSON is YAML.
  await writeFile(configPath, JSON.stringify(doc, null, 2));
  const open = (name: string): RegionHandle => {
    const region = openRegion({ config, region: name, role: 'client', logger: silentLogger, clientName: 'test' });
    const root = roots[name];
    return Object.assign(region, { url: region.config.redis, ...(root ? { root } : {}) });
  };
  const source = open('src');
  const mirrors: Record<string, MirrorHandle> = {};
  for (const name of Object.keys(specs)) {
    if (name === 'src') continue;
    mirrors[name] = open(name) as MirrorHandle;
  }
  return {
    dir,
    volume,
    config,
    configPath,
    source,
    mirrors,
    mirror(name: string) {
      const m = mirrors[name];
      if (!m) throw new Error(`no mirror region ${name}`);
      return m;
    },
    async close() {
      for (const r of [source, ...Object.values(mirrors)]) await r.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Writing at the source

/**
 * Upload files' chunks to the source store and return their entries, ready to commit: `ferry
 * put`'s own staging (an entry is committed only after its chunks exist), without the commit.
 */
export async function stageBytes(regions: Regions, files: Record<string, Buffer>): Promise<NewEntry[]> {
  const { entries } = await stageFiles({
    store: regions.source.store,
    meta: regions.source.meta,
    files: Object.entries(files).map(([path, bytes]) => ({ path, bytes })),
    chunkSize: regions.config.chunkSize,
    concurrency: 8,
  });
  return entries;
}

/** How many of these chunks a store holds. */
export async function chunksIn(store: ObjectStore, ids: readonly string[]): Promise<number> {
  let n = 0;
  for (const id of ids) {
    try {
      await store.head(chunkKey(id as ChunkId));
      n += 1;
    } catch {
      // not there
    }
  }
  return n;
}

/** Upload files' chunks, then commit the files as one change record. */
export async function putBytes(regions: Regions, files: Record<string, Buffer>): Promise<{ version: string; entries: Entry[] }> {
  return regions.source.meta.commit(await stageBytes(regions, files));
}

/** `ferry put` of a local file or folder into the source region (the CLI's own code path, @ferry/writer). */
export async function putLocal(regions: Regions, local: string, path: string): Promise<PutSummary> {
  const { files } = await planPut(local, path);
  return putFiles({
    store: regions.source.store,
    meta: regions.source.meta,
    files,
    chunkSize: regions.config.chunkSize,
    concurrency: 8,
    holdTtlMs: regions.config.writer.holdTtl,
    logger: silentLogger,
  });
}

/** A file of random bytes, written block by block; returns its sha256. */
export async function writeRandomFile(path: string, size: number): Promise<string> {
  await mkdir(dirname(path), { recursive: true });
  const hash = createHash('sha256');
  const out = createWriteStream(path);
  for (let left = size; left > 0; ) {
    const block = randomBytes(Math.min(left, 4 * MiB));
    hash.update(block);
    left -= block.length;
    if (!out.write(block)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  return hash.digest('hex');
}

// ---------------------------------------------------------------------------------------------
// Looking into a region

export interface RegionState {
  entries: Record<string, string>;
  refs: Record<string, string>;
  paths: string[];
}

/** Entries, reference counts and path index of a volume in one region's Redis. */
export async function regionState(region: RegionHandle): Promise<RegionState> {
  const keys = region.meta.keys;
  // Scans, not HGETALL: a test that checks Redis command times (SLOWLOG) reads 10⁵ entries too.
  const [entries, refs, paths] = await Promise.all([
    scanHash(region.redis, keys.entries),
    scanHash(region.redis, keys.refs),
    scanPaths(region.redis, keys.paths),
  ]);
  return { entries, refs, paths };
}

async function scanHash(redis: RegionHandle['redis'], key: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  let cursor = '0';
  do {
    const [next, flat] = await redis.hscan(key, cursor, 'COUNT', 1000);
    for (let i = 0; i < flat.length; i += 2) out[flat[i] as string] = flat[i + 1] as string;
    cursor = next;
  } while (cursor !== '0');
  return out;
}

async function scanPaths(redis: RegionHandle['redis'], key: string): Promise<string[]> {
  const out: string[] = [];
  for (let at = 0; ; at += 5000) {
    const page = await redis.zrange(key, at, at + 4999);
    out.push(...page);
    if (page.length < 5000) return out;
  }
}

/** What still differs between the source and a mirror (empty when converged). */
export async function differences(regions: Regions, name: string): Promise<string[]> {
  const m = regions.mirror(name);
  const [bounds, cursor] = await Promise.all([regions.source.meta.log.logBounds(), m.mirror.cursor()]);
  const problems: string[] = [];
  if (cursor !== (bounds.last ?? undefined)) problems.push(`cursor ${cursor} != source last id ${bounds.last}`);
  const [src, dst] = await Promise.all([regionState(regions.source), regionState(m)]);
  for (const [path, json] of Object.entries(src.entries)) {
    if (dst.entries[path] === undefined) problems.push(`missing ${path}`);
    else if (dst.entries[path] !== json) problems.push(`differs ${path}`);
  }
  for (const path of Object.keys(dst.entries)) if (src.entries[path] === undefined) problems.push(`extra ${path}`);
  if (JSON.stringify(src.paths) !== JSON.stringify(dst.paths)) problems.push('path index differs');
  const refKeys = new Set([...Object.keys(src.refs), ...Object.keys(dst.refs)]);
  for (const id of refKeys) if (src.refs[id] !== dst.refs[id]) problems.push(`refs ${id}: ${src.refs[id]} != ${dst.refs[id]}`);
  const referenced = Object.keys(dst.refs) as ChunkId[];
  const missing = await m.mirror.missing(referenced);
  if (missing.length > 0) problems.push(`${missing.length} referenced chunks not present`);
  return problems;
}

/** Wait until a mirror holds exactly the source's metadata and every referenced chunk is marked present. */
export async function waitForConvergence(regions: Regions, name: string, timeoutMs: number): Promise<number> {
  let last: string[] = [];
  try {
    return await waitFor(
      async () => {
        last = await differences(regions, name);
        return last.length === 0;
      },
      timeoutMs,
      `mirror ${name} to converge`,
      100,
    );
  } catch (err) {
    throw new Error(
      `${(err as Error).message}; still: ${last.slice(0, 10).join('; ')}${last.length > 10 ? ` (+${last.length - 10})` : ''}`,
    );
  }
}

/** sha256 of an object's bytes in a store, or undefined when it is missing. */
export async function objectDigest(store: ObjectStore, key: string): Promise<string | undefined> {
  let body: NodeJS.ReadableStream;
  try {
    body = (await store.get(key)).body;
  } catch (err) {
    if ((err as { code?: string }).code === 'NOT_FOUND') return undefined;
    throw err;
  }
  const hash = createHash('sha256');
  for await (const part of body) hash.update(part as Buffer);
  return hash.digest('hex');
}

/**
 * Read every chunk the mirror references back from the mirror's store and check its bytes hash
 * to its id. Returns the number of chunks checked; throws naming the first bad or missing one.
 */
export async function verifyMirrorChunks(regions: Regions, name: string, concurrency = 8): Promise<number> {
  const m = regions.mirror(name);
  const ids = Object.keys(await m.redis.hgetall(m.meta.keys.refs)) as ChunkId[];
  const bad: string[] = [];
  await forEachLimit(ids, concurrency, async (id) => {
    if (!isNativeChunkId(id)) return;
    const digest = await objectDigest(m.store, chunkKey(id));
    if (digest !== chunkDigest(id)) bad.push(`${id}: ${digest === undefined ? 'missing' : `holds ${digest}`}`);
  });
  if (bad.length > 0) throw new Error(`mirror ${name}: ${bad.length} bad chunks, e.g. ${bad[0]}`);
  return ids.length;
}

/** sha256 of a file rebuilt from a region's metadata and store. */
export async function fileDigest(region: RegionHandle, path: string): Promise<string> {
  const json = await region.redis.hget(region.meta.keys.entries, path);
  if (json === null) throw new Error(`${region.name}: no entry ${path}`);
  const entry = decodeStoredEntry(json);
  const hash = createHash('sha256');
  for (const chunk of entry.chunks) {
    const { body } = await region.store.get(chunkKey(chunk.id));
    for await (const part of body) hash.update(part as Buffer);
  }
  return hash.digest('hex');
}

/** The entry JSON of a path in a region, parsed, or undefined. */
export async function entryOf(region: RegionHandle, path: string): Promise<Entry | undefined> {
  const json = await region.redis.hget(region.meta.keys.entries, path);
  return json === null ? undefined : decodeStoredEntry(json);
}

// ---------------------------------------------------------------------------------------------
// The daemon as a process

export interface Daemon {
  child: ChildProcess;
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  log: string;
  kill9(): Promise<void>;
  /** SIGTERM; resolves with the exit code and how long the process took to exit. */
  terminate(): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>;
  /** The daemon's log so far (for failure messages). */
  output(): Promise<string>;
}

/** Run a CLI command to completion; returns exit code and output. */
export async function runCli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: REPO,
    env: { ...process.env, FERRY_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => {
    stdout += d;
  });
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  return { code, stdout, stderr };
}

/** `ferry replicator --region <region> --config <file>` as a separate process, its output in a log file. */
export function startDaemon(
  regions: Regions,
  region: string,
  options: { args?: string[]; env?: Record<string, string>; tag?: string } = {},
): Daemon {
  const log = join(regions.dir, `daemon-${region}-${options.tag ?? Date.now()}.log`);
  const fd = openSync(log, 'a');
  const child = spawn(process.execPath, [CLI, 'replicator', '--region', region, '--config', regions.configPath, ...(options.args ?? [])], {
    cwd: REPO,
    env: { ...process.env, FERRY_LOG_LEVEL: 'info', ...options.env },
    stdio: ['ignore', fd, fd],
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return {
    child,
    exited,
    log,
    async kill9() {
      child.kill('SIGKILL');
      await exited;
    },
    async terminate() {
      const started = Date.now();
      child.kill('SIGTERM');
      const result = await exited;
      return { ...result, ms: Date.now() - started };
    },
    output: () => readFile(log, 'utf8').catch(() => ''),
  };
}
