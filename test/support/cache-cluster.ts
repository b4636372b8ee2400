import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { CacheNodeClient, type Residency } from '@ferry/cache';
import {
  type ChunkId,
  type ChunkRef,
  chunkKey,
  type Entry,
  type FerryConfig,
  type NewEntry,
  nativeChunkId,
  parseConfig,
  sha256Hex,
} from '@ferry/core';
import { type CacheMember, connectRedis, Membership, Meta, MirrorMeta } from '@ferry/meta';
import { FsStore, type GetOptions, type ObjectStore, type PutBody } from '@ferry/stores';
import type { Redis } from 'ioredis';
import { digestStream } from './bytes.js';
import { FERRY_BIN, type FerryResult, jsonLines, runFerry } from './cli.js';
import { CACHE_CLIENT } from './defaults.js';
import { uniqueName } from './random.js';

/** Counts the calls that read a store, so a test can say a read never reached it. */
export class CountingStore implements ObjectStore {
  gets = 0;
  heads = 0;
  constructor(readonly inner: ObjectStore) {}
  get url() {
    return this.inner.url;
  }
  get capabilities() {
    return this.inner.capabilities;
  }
  head(key: string) {
    this.heads += 1;
    return this.inner.head(key);
  }
  get(key: string, options?: GetOptions) {
    this.gets += 1;
    return this.inner.get(key, options);
  }
  put(key: string, body: PutBody) {
    return this.inner.put(key, body);
  }
  delete(key: string) {
    return this.inner.delete(key);
  }
  list(prefix: string) {
    return this.inner.list(prefix);
  }
}

export interface RunningNode {
  id: string;
  url: string;
  dir: string;
  weight: number;
  proc: ChildProcess;
  exited: Promise<number | null>;
  /** SIGTERM (graceful) or SIGKILL; resolves when the process is gone. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface ModelFile {
  entry: Entry;
  sha256: string;
}

/**
 * A source region `src` and a mirror `eu` with cache config (replicas 2), on file:// stores in a
 * temp dir and the test Redis, plus helpers to put a model into both stores and both metadata
 * copies, and to run cache nodes of `eu` as real processes.
 */
export class CacheRegions {
  readonly volume = uniqueName('cache');
  readonly token = randomBytes(12).toString('hex');
  /** With `roles`, the config gives readers and writers tokens of their own (`token` is then unused). */
  readonly readToken = `r-${randomBytes(12).toString('hex')}`;
  readonly writeToken = `w-${randomBytes(12).toString('hex')}`;
  readonly nodes: RunningNode[] = [];
  config!: FerryConfig;
  configPath!: string;
  root!: string;
  source!: { store: FsStore; meta: Meta; redis: Redis };
  mirror!: { store: FsStore; meta: Meta; mirror: MirrorMeta; redis: Redis };
  membership!: Membership;
  /** Clients made for the tests, closed with the regions. */
  readonly #closing: Array<() => Promise<void>> = [];

  static async create(
    redisUrl: string,
    options: {
      chunkSize: number;
      replicas?: number;
      roles?: boolean;
      tls?: { cert?: string; key?: string; ca?: string };
      /** The mirror's control API section (`regions.eu.api`). */
      api?: Record<string, unknown>;
    },
  ): Promise<CacheRegions> {
    const r = new CacheRegions();
    r.root = await mkdtemp(join(tmpdir(), 'ferry-cache-'));
    const doc = {
      volume: r.volume,
      chunkSize: options.chunkSize,
      source: 'src',
      regions: {
        src: { store: `file://${r.root}/src?fsync=0`, redis: `${redisUrl}/10` },
        eu: {
          store: `file://${r.root}/eu?fsync=0`,
          redis: `${redisUrl}/11`,
          // No background scrub: tests that damage a cached file decide who finds it (the scrub has its own test).
          cache: {
            replicas: options.replicas ?? 2,
            ...(options.roles ? { readToken: r.readToken, writeToken: r.writeToken } : { token: r.token }),
            connectTimeoutMs: 200,
            scrubBytesPerSecond: 0,
            ...(options.tls ? { tls: options.tls } : {}),
          },
          ...(options.api ? { api: options.api } : {}),
        },
      },
    };
    r.config = parseConfig(doc);
    r.configPath = join(r.root, 'ferry.json');
    await writeFile(r.configPath, JSON.stringify(doc));
    const srcRedis = connectRedis(`${redisUrl}/10`);
    const euRedis = connectRedis(`${redisUrl}/11`);
    r.source = {
      store: new FsStore({ root: `${r.root}/src`, fsync: false }),
      meta: new Meta({ redis: srcRedis, volume: r.volume }),
      redis: srcRedis,
    };
    r.mirror = {
      store: new FsStore({ root: `${r.root}/eu`, fsync: false }),
      meta: new Meta({ redis: euRedis, volume: r.volume }),
      mirror: new MirrorMeta({ redis: euRedis, volume: r.volume }),
      redis: euRedis,
    };
    r.membership = new Membership({ redis: euRedis, volume: r.volume });
    return r;
  }

  /** A random chunk in the source store only (not copied to the mirror yet). */
  async sourceOnlyChunk(size: number): Promise<{ ref: ChunkRef; bytes: Buffer }> {
    const bytes = randomBytes(size);
    const id = nativeChunkId(sha256Hex(bytes));
    await this.source.store.put(chunkKey(id), bytes);
    return { ref: { id, size }, bytes };
  }

  /**
   * `files` files of `fileBytes` random bytes under `dir`, chunked, stored in both regions' stores
   * (marked present in the mirror), committed in the source in one batch and applied to the mirror.
   */
  /**
   * Put a model of `files` × `fileBytes` under `dir` and start the nodes meanwhile; the model's
   * files, the live members and a client of theirs (closed with the regions).
   */
  async modelOnNodes(
    model: { dir: string; files: number; fileBytes: number },
    nodes: CacheNodeSpec[],
    client: { connectTimeoutMs: number } = CACHE_CLIENT,
  ): Promise<{ model: ModelFile[]; members: CacheMember[]; client: CacheNodeClient }> {
    const [files] = await Promise.all([this.putModel(model.dir, model.files, model.fileBytes), this.startNodes(nodes)]);
    const nodeClient = new CacheNodeClient({ token: this.token, ...client });
    this.#closing.push(() => nodeClient.close());
    return { model: files, members: await this.members(), client: nodeClient };
  }

  async putModel(dir: string, files: number, fileBytes: number): Promise<ModelFile[]> {
    const chunkSize = this.config.chunkSize;
    const entries: NewEntry[] = [];
    const digests: string[] = [];
    for (let f = 0; f < files; f++) {
      const whole = createHash('sha256');
      const chunks: ChunkRef[] = [];
      for (let offset = 0; offset < fileBytes; offset += chunkSize) {
        const bytes = randomBytes(Math.min(chunkSize, fileBytes - offset));
        whole.update(bytes);
        const id: ChunkId = nativeChunkId(sha256Hex(bytes));
        await Promise.all([this.source.store.put(chunkKey(id), bytes), this.mirror.store.put(chunkKey(id), bytes)]);
        // As the copy worker records it: the chunk is in the mirror's store.
        await this.mirror.mirror.markPresent(id);
        chunks.push({ id, size: bytes.length });
      }
      const sha256 = whole.digest('hex');
      digests.push(sha256);
      const name = `model-${String(f + 1).padStart(5, '0')}-of-${String(files).padStart(5, '0')}.safetensors`;
      entries.push({ path: `${dir}/${name}`, size: fileBytes, mtime: Date.now(), sha256, chunkSize, chunks });
    }
    const committed = await this.source.meta.commit(entries);
    await this.mirror.mirror.apply(await this.source.meta.log.readChanges((await this.mirror.mirror.cursor()) ?? '0-0'));
    return committed.entries.map((entry, i) => ({ entry, sha256: digests[i] as string }));
  }

  /** Start cache nodes of `eu` as processes (in parallel); resolves when each has registered. */
  async startNodes(specs: CacheNodeSpec[]): Promise<RunningNode[]> {
    const started = await Promise.all(specs.map((s) => this.#start(s)));
    this.nodes.push(...started);
    return started;
  }

  #start(spec: CacheNodeSpec): Promise<RunningNode> {
    return startCacheNode({ configPath: this.configPath, region: 'eu', dir: join(this.root, 'nodes', spec.id), ...spec });
  }

  async members(): Promise<CacheMember[]> {
    return this.membership.members();
  }

  async close(): Promise<void> {
    await Promise.all(this.#closing.splice(0).map((fn) => fn()));
    await Promise.all(this.nodes.map((n) => n.stop()));
    this.source.redis.disconnect();
    this.mirror.redis.disconnect();
    await rm(this.root, { recursive: true, force: true });
  }
}

export interface CacheNodeSpec {
  id: string;
  weight: number;
  capacity: string;
}

/**
 * The real `ferry cache-node` command of `region`, in a process of its own (so a test can SIGKILL
 * it), its chunks in `dir`; resolves when it has started (and registered in the region's Redis).
 */
export async function startCacheNode(options: CacheNodeSpec & { configPath: string; region: string; dir: string }): Promise<RunningNode> {
  const { dir, ...spec } = options;
  await mkdir(dir, { recursive: true });
  const args = [FERRY_BIN, 'cache-node', '--json', '--config', options.configPath, '--region', options.region, '--dir', dir];
  args.push('--capacity', spec.capacity, '--weight', String(spec.weight), '--listen', '127.0.0.1:0', '--id', spec.id);
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FERRY_LOG_LEVEL: 'warn' } });
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`cache node ${spec.id} did not start in 20 s: ${stderr}`)), 20_000);
    const lines = createInterface({ input: proc.stdout as NodeJS.ReadableStream });
    // Its JSON events and its log lines share stdout.
    lines.on('line', (line) => {
      const event = JSON.parse(line) as { event?: string; url?: string };
      if (event.event !== 'started') stderr += `${line}\n`;
      if (event.event === 'started' && event.url) {
        clearTimeout(timer);
        resolve(event.url);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`cache node ${spec.id} exited with ${code}: ${stderr}`));
    });
  });
  return {
    id: spec.id,
    url,
    dir,
    weight: spec.weight,
    proc,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill(signal);
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Hash of a stream of buffers. */
export async function sha256Of(stream: AsyncIterable<unknown>): Promise<{ sha256: string; bytes: number }> {
  const { sha256, length } = await digestStream(stream);
  return { sha256, bytes: length };
}

/** What `ferry warmup --json` reports last. */
export interface WarmupSummary {
  event: 'summary';
  chunks: number;
  placements: number;
  fetched: number;
  held: number;
  failed: number;
  rounds: number;
  complete: boolean;
  /** Complete, and every chunk in the region's store: what a deploy waits for. */
  ready: boolean;
  residency: Residency;
}

/** `ferry warmup --json <path> <args>` with the built CLI: what it printed, and its summary. */
export async function runWarmup(
  configPath: string,
  path: string,
  args: string[] = [],
): Promise<{ result: FerryResult; lines: Array<Record<string, unknown>>; summary: WarmupSummary }> {
  const result = await runFerry(['warmup', path, '--json', '--config', configPath, ...args], { timeoutMs: 120_000 });
  const printed = jsonLines(result);
  return { result, lines: printed, summary: printed.find((l) => l.event === 'summary') as unknown as WarmupSummary };
}
