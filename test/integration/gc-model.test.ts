import { randomBytes } from 'node:crypto';
import { type ChunkId, chunkKey, type Logger, parseConfig, silentLogger } from '@ferry/core';
import { type MirrorMeta, REVISIONS_ROOT, Revisions } from '@ferry/meta';
import { collectGarbage, openRegion, type Region } from '@ferry/region';
import { MemoryStore, type ObjectStore, type PutBody, type PutResult } from '@ferry/stores';
import { type PutInput, putFiles } from '@ferry/writer';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueName } from '../support/random.js';
import { type PrivateRedis, privateRedis } from '../support/servers/private-redis.js';

/*
 * A model check of garbage collection against everything that changes what a chunk is needed
 * for: random sequences of puts (fast, and slow ones whose store calls the sequence releases one
 * at a time, so GC and other changes land between their steps), rm, mv, retained revisions
 * recorded and pruned (and readers of them), a mirror applying the
 * source's log with lag, copies into the mirror, a flush of the mirror's Redis and its resync, GC
 * passes in both regions (grace 0 or an hour) and readers that open a version. The real Lua
 * scripts on a real Redis (two databases), the real put, GC and resync code; stores in memory.
 *
 * After every step: each chunk the source references is in the source store; each chunk the
 * mirror marks present is in the mirror's store; after a GC pass with grace g at time t, every
 * reader that opened a version after t − g still finds its chunks where they were reported
 * present. A put never has to upload again (its holds keep what it relies on) and always commits.
 * After quiescence (puts finished, holds expired, log applied, copies done, GC in both regions):
 * the mirror has the source's entries, and each store holds exactly its region's referenced chunks.
 *
 * MODEL_RUNS sets the number of sequences (default 200); a failure prints the shrunk sequence.
 * Imports are left out: their chunks live at an origin, not in a region's store.
 */

const RUNS = Number(process.env.MODEL_RUNS ?? 200);
const CHUNK = 1024;
const BLOCKS = Array.from({ length: 3 }, () => randomBytes(CHUNK));
const PATHS = ['/m/a', '/n/b'];
const HOUR = 3_600_000;

// A server of its own: the sequences flush the mirror's database.
let server: PrivateRedis;

beforeAll(async () => {
  server = await privateRedis();
});

afterAll(async () => {
  await server?.close();
});

/** A store whose `head` and `put` wait until the sequence lets them through, one call at a time. */
class GatedStore {
  readonly #inner: ObjectStore;
  readonly #waiting: Array<() => void> = [];
  #onBlocked: (() => void) | undefined;

  constructor(inner: ObjectStore) {
    this.#inner = inner;
  }

  get blocked(): boolean {
    return this.#waiting.length > 0;
  }

  /** Resolves when some call is waiting (or at once if one is). */
  whenBlocked(): Promise<void> {
    if (this.blocked) return Promise.resolve();
    return new Promise((resolve) => {
      this.#onBlocked = resolve;
    });
  }

  release(): void {
    this.#waiting.shift()?.();
  }

  async #gate(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.#waiting.push(resolve);
      const notify = this.#onBlocked;
      this.#onBlocked = undefined;
      notify?.();
    });
  }

  store(): ObjectStore {
    const inner = this.#inner;
    return new Proxy(inner, {
      get: (target, prop, receiver) => {
        if (prop === 'head') {
          return async (key: string) => {
            await this.#gate();
            return inner.head(key);
          };
        }
        if (prop === 'put') {
          return async (key: string, body: PutBody): Promise<PutResult> => {
            await this.#gate();
            return inner.put(key, body);
          };
        }
        const value = Reflect.get(target, prop, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
  }
}

interface SlowPut {
  gate: GatedStore;
  done: boolean;
  result: Promise<void>;
}

interface Reader {
  region: 'src' | 'eu';
  openedAt: number;
  chunks: string[];
}

class World {
  readonly slow: SlowPut[] = [];
  readonly readers: Reader[] = [];
  retries = 0;
  readonly failures: string[] = [];
  readonly logger: Logger;

  constructor(
    readonly source: Region,
    readonly mirror: Region,
    readonly sourceStore: MemoryStore,
    readonly mirrorStore: MemoryStore,
  ) {
    // Counts the put's own "uploading them again" line: a hold that works makes it never happen.
    const counting: Logger = Object.create(silentLogger);
    counting.info = ((...args: unknown[]) => {
      if (args.some((a) => typeof a === 'string' && a.includes('uploading them again'))) this.retries += 1;
    }) as Logger['info'];
    counting.child = (() => counting) as Logger['child'];
    this.logger = counting;
  }

  get mirrorMeta(): MirrorMeta {
    return this.mirror.mirror as MirrorMeta;
  }

  files(path: string, blocks: number[]): PutInput[] {
    return [{ path, bytes: Buffer.concat(blocks.map((b) => BLOCKS[b] as Buffer)) }];
  }

  put(store: ObjectStore, path: string, blocks: number[]): Promise<void> {
    return putFiles({
      store,
      meta: this.source.meta,
      files: this.files(path, blocks),
      chunkSize: CHUNK,
      concurrency: 1,
      holdTtlMs: HOUR,
      logger: this.logger,
    }).then(
      () => undefined,
      (err: Error) => {
        // A path that is now a directory (or under a file) is the user's conflict, not GC's.
        if ((err as { code?: string }).code !== 'CONFLICT') this.failures.push(`put ${path}: ${err.message}`);
      },
    );
  }

  async settle(put: SlowPut): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const stuck = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.failures.push('a put neither waits for the store nor ends after 10 s');
        resolve();
      }, 10_000);
    });
    await Promise.race([put.gate.whenBlocked(), put.result, stuck]);
    clearTimeout(timer);
  }

  async applyLog(count: number): Promise<void> {
    const cursor = await this.mirrorMeta.cursor();
    if (cursor === undefined) return; // flushed: only a resync brings it back
    const records = await this.source.meta.log.readChanges(cursor, { count });
    if (records.length === 0) return;
    await this.mirrorMeta.apply(records);
    await this.source.meta.log.setAck('eu', records.at(-1)?.id as string);
  }

  async resync(): Promise<void> {
    if ((await this.mirrorMeta.cursor()) !== undefined) return;
    const history = await this.source.meta.log.history();
    const resync = await this.mirrorMeta.beginResync({
      snapshot: history.last ?? '0-0',
      epoch: history.epoch,
      added: history.added,
      reason: 'model',
    });
    let cursor: string | undefined;
    do {
      const page = await this.source.meta.scanEntries({ count: 2, ...(cursor ? { cursor } : {}) });
      await this.mirrorMeta.applySnapshot(resync, page.entries);
      cursor = page.cursor;
    } while (cursor);
    await this.mirrorMeta.finishResync(resync);
    await this.source.meta.log.setAck('eu', history.last ?? '0-0');
  }

  /** Copy one chunk the mirror misses from the source store, as a copy job does. */
  async copy(pick: number): Promise<void> {
    const missing = (await this.mirror.redis.smembers(this.mirror.meta.keys.missing)).sort();
    if (missing.length === 0) return;
    const id = missing[pick % missing.length] as ChunkId;
    const since = await this.mirrorMeta.chunks.serverTime();
    let bytes: Buffer;
    try {
      const got = await this.sourceStore.get(chunkKey(id));
      bytes = Buffer.concat(await got.body.toArray());
    } catch {
      return; // gone from the source: the mirror no longer needs it, or will be told to
    }
    await this.mirrorStore.put(chunkKey(id), bytes);
    await this.mirrorMeta.markPresent(id, { since });
  }

  async openReader(region: 'src' | 'eu', path: string): Promise<void> {
    const r = region === 'src' ? this.source : this.mirror;
    const openedAt = await r.meta.serverTime();
    const entry = await r.meta.tryStat(path);
    if (!entry) return;
    let chunks = entry.chunks.map((c) => c.id as string);
    if (region === 'eu') {
      const present = await Promise.all(chunks.map((id) => this.mirror.redis.sismember(this.mirror.meta.keys.present, id)));
      chunks = chunks.filter((_, i) => present[i] === 1);
    }
    this.readers.push({ region, openedAt, chunks });
  }

  async gc(region: 'src' | 'eu', graceMs: number): Promise<void> {
    const r = region === 'src' ? this.source : this.mirror;
    const store = region === 'src' ? this.sourceStore : this.mirrorStore;
    const startedAt = await r.meta.serverTime();
    // The readers this pass must not hurt (opened within its grace), and what they have now.
    const protectedChunks = new Set<string>();
    for (const reader of this.readers) {
      if (reader.region !== region || reader.openedAt <= startedAt - graceMs) continue;
      for (const id of reader.chunks) if (await has(store, id)) protectedChunks.add(id);
    }
    try {
      await collectGarbage(r, { graceMs });
    } catch (err) {
      if ((err as { code?: string }).code !== 'GC_REFUSED') throw err;
    }
    for (const id of protectedChunks) {
      if (!(await has(store, id))) {
        this.failures.push(`${region}: a pass at ${startedAt} with grace ${graceMs} deleted ${id}, which a reader opened within the grace`);
      }
    }
  }

  /** Invariants that hold after every step. */
  async check(): Promise<void> {
    for (const id of await this.source.redis.hkeys(this.source.meta.keys.refs)) {
      if (!(await has(this.sourceStore, id))) this.failures.push(`src references ${id}, not in its store`);
    }
    for (const id of await this.mirror.redis.smembers(this.mirror.meta.keys.present)) {
      if (!(await has(this.mirrorStore, id))) this.failures.push(`eu marks ${id} present, not in its store`);
    }
    expect(this.failures).toEqual([]);
    expect(this.retries).toBe(0);
  }

  /** Finish everything, then collect everywhere: the regions converge and hold exactly what they reference. */
  async quiesce(): Promise<void> {
    for (const put of this.slow) {
      while (!put.done && this.failures.length === 0) {
        put.gate.release();
        await this.settle(put);
      }
    }
    await this.source.redis.del(this.source.meta.keys.gcHolds); // every put is done: their holds may as well have expired
    await this.resync();
    for (let i = 0; i < 100; i++) {
      await this.applyLog(100);
      const cursor = await this.mirrorMeta.cursor();
      if (cursor === (await this.source.meta.log.history()).last || (await this.source.meta.log.history()).last === undefined) break;
    }
    for (let n = 0; (await this.mirror.redis.scard(this.mirror.meta.keys.missing)) > 0; n++) {
      if (n > 200) {
        const missing = await this.mirror.redis.smembers(this.mirror.meta.keys.missing);
        const atSource = await Promise.all(missing.map((id) => has(this.sourceStore, id)));
        this.failures.push(`eu cannot copy ${missing.length} chunks it references; in the source store: ${atSource.join(',')}`);
        break;
      }
      await this.copy(n);
    }
    // Past the last resync: what it left unknown may be an orphan now.
    await this.mirror.redis.hset(this.mirror.meta.keys.resyncInfo, 'finished', '0');
    await this.gc('eu', 0);
    await this.gc('src', 0);
    await this.check();
    // Listings of / leave Ferry's own folder out: the retained revisions are compared on their own.
    const everything = async (r: Region) => [
      ...(await r.meta.filesUnder('/').catch(() => [])),
      ...(await r.meta.filesUnder(REVISIONS_ROOT).catch(() => [])),
    ];
    const sourceEntries = await everything(this.source);
    const mirrorEntries = await everything(this.mirror);
    const shape = (es: typeof sourceEntries) => es.map((e) => `${e.path} ${e.sha256}`).sort();
    expect(shape(mirrorEntries)).toEqual(shape(sourceEntries));
    expect(await storeChunks(this.sourceStore)).toEqual((await this.source.redis.hkeys(this.source.meta.keys.refs)).sort());
    expect(await storeChunks(this.mirrorStore)).toEqual((await this.mirror.redis.hkeys(this.mirror.meta.keys.refs)).sort());
  }
}

async function has(store: ObjectStore, id: string): Promise<boolean> {
  return store.head(chunkKey(id as ChunkId)).then(
    () => true,
    () => false,
  );
}

async function storeChunks(store: ObjectStore): Promise<string[]> {
  const ids: string[] = [];
  for await (const page of store.list('chunks/')) for (const item of page.items) ids.push(item.key.slice(item.key.lastIndexOf('/') + 1));
  return ids.sort();
}

type Cmd = fc.AsyncCommand<object, World>;
const cmd = (name: string, run: (w: World) => Promise<void>): Cmd => ({
  check: () => true,
  async run(_m, w) {
    await run(w);
    await w.check();
  },
  toString: () => name,
});

const path = fc.constantFrom(...PATHS);
const blocks = fc.array(fc.nat({ max: BLOCKS.length - 1 }), { minLength: 1, maxLength: 3 });
const commands = [
  fc.tuple(path, blocks).map(([p, b]) => cmd(`put ${p} [${b}]`, (w) => w.put(w.sourceStore, p, b))),
  fc.tuple(path, blocks).map(([p, b]) =>
    cmd(`slow put ${p} [${b}]`, async (w) => {
      if (w.slow.filter((s) => !s.done).length >= 3) return;
      const gate = new GatedStore(w.sourceStore);
      const put: SlowPut = { gate, done: false, result: Promise.resolve() };
      put.result = w.put(gate.store(), p, b).finally(() => {
        put.done = true;
      });
      w.slow.push(put);
      await w.settle(put);
    }),
  ),
  fc.nat({ max: 5 }).map((i) =>
    cmd(`advance put ${i}`, async (w) => {
      const live = w.slow.filter((s) => !s.done);
      const put = live[i % Math.max(1, live.length)];
      if (!put) return;
      put.gate.release();
      await w.settle(put);
    }),
  ),
  path.map((p) =>
    cmd(`rm ${p}`, async (w) => {
      await w.source.meta.delete(p).catch((err: { code?: string }) => {
        if (err.code !== 'NOT_FOUND') throw err;
      });
    }),
  ),
  fc.tuple(path, path).map(([a, b]) =>
    cmd(`mv ${a} ${b}`, async (w) => {
      await w.source.meta.rename(a, b).catch((err: { code?: string }) => {
        if (!['NOT_FOUND', 'CONFLICT', 'INVALID_ARGUMENT', 'INVALID_PATH'].includes(err.code ?? '')) throw err;
      });
    }),
  ),
  fc.integer({ min: 1, max: 3 }).map((n) => cmd(`apply ${n}`, (w) => w.applyLog(n))),
  fc.nat({ max: 7 }).map((i) => cmd(`copy ${i}`, (w) => w.copy(i))),
  fc.constant(
    cmd('copy all', async (w) => {
      for (let n = 0; n < 20 && (await w.mirror.redis.scard(w.mirror.meta.keys.missing)) > 0; n++) await w.copy(0);
    }),
  ),
  // Time passing: graces of a few ms then separate what happened before and after.
  fc.constantFrom(5, 30).map((ms) => cmd(`sleep ${ms}`, () => new Promise((resolve) => setTimeout(resolve, ms)))),
  fc.constant(
    cmd('flush eu', async (w) => {
      await w.mirror.redis.flushdb();
    }),
  ),
  fc.constant(cmd('resync eu', (w) => w.resync())),
  fc.constantFrom(0, 10, HOUR).map((g) => cmd(`gc src ${g}`, (w) => w.gc('src', g))),
  fc.constantFrom(0, 10, HOUR).map((g) => cmd(`gc eu ${g}`, (w) => w.gc('eu', g))),
  fc.tuple(fc.constantFrom<'src' | 'eu'>('src', 'eu'), path).map(([r, p]) => cmd(`open ${r} ${p}`, (w) => w.openReader(r, p))),
  // Retained revisions of the folders /m and /n (a metadata-only clone under /.ferry/rev, as the
  // CLI records them around a change): their chunks must outlive the files they came from.
  fc.constantFrom('/m', '/n').map((repo) => cmd(`record ${repo}`, async (w) => void (await new Revisions(w.source.meta).record(repo)))),
  fc
    .constantFrom('/m', '/n')
    .map((repo) => cmd(`prune ${repo}`, async (w) => void (await new Revisions(w.source.meta).prune(repo, { keep: 1, keepFor: 0 })))),
  fc.tuple(fc.constantFrom<'src' | 'eu'>('src', 'eu'), fc.constantFrom('/m/a', '/n/b')).map(([r, p]) =>
    cmd(`open revision ${r} ${p}`, async (w) => {
      const repo = p.slice(0, 2);
      const [newest] = await new Revisions(w.source.meta).list(repo);
      if (newest) await w.openReader(r, `${Revisions.folder(repo, newest.id)}${p.slice(2)}`);
    }),
  ),
  // Two steps that shallow sequences seldom reach by chance, as one: content that every region
  // had and no longer references (still in the stores, its drop acknowledged) ...
  fc.tuple(path, blocks).map(([p, b]) =>
    cmd(`churn ${p} [${b}]`, async (w) => {
      await w.put(w.sourceStore, p, b);
      await w.applyLog(100);
      for (let n = 0; n < 20 && (await w.mirror.redis.scard(w.mirror.meta.keys.missing)) > 0; n++) await w.copy(0);
      await w.source.meta.delete(p).catch(() => undefined);
    }),
  ),
  // ... and a reader that opens a version a while after the source changed it.
  fc.tuple(fc.constantFrom<'src' | 'eu'>('src', 'eu'), path).map(([r, p]) =>
    cmd(`later open ${r} ${p}`, async (w) => {
      await new Promise((resolve) => setTimeout(resolve, 30));
      await w.openReader(r, p);
    }),
  ),
];

// The steps that make a chunk needed somewhere and then not, twice as often as the rest: a
// sequence then more often reaches the states where a region may lose what a reader holds.
const weighted = [...commands, ...commands.filter((_, i) => [3, 5, 7, 8, 12, 13].includes(i))];

describe('garbage collection, model-checked', () => {
  it(
    `keeps every needed chunk and converges over ${RUNS} random sequences`,
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.commands(weighted, { maxCommands: 60, size: 'medium' }), async (sequence) => {
          await withWorld(async (world) => {
            await fc.asyncModelRun(() => ({ model: {}, real: world }), sequence);
            await world.quiesce();
          });
        }),
        { numRuns: RUNS, ...(process.env.MODEL_SEED ? { seed: Number(process.env.MODEL_SEED) } : {}) },
      );
    },
    Math.max(180_000, RUNS * 2_000),
  );
});

describe('the model catches what it is for', () => {
  // Found by the random search: a reader of a mirror whose Redis is flushed and resynced keeps
  // its chunks, though the resync no longer knows them (orphan sweep waits a grace after it).
  it('churn /m/a [0], later open eu /m/a, flush eu, resync eu, gc eu 10', async () => {
    await withWorld(async (w) => {
      await w.put(w.sourceStore, '/m/a', [0]);
      await w.applyLog(100);
      await w.copy(0);
      await w.source.meta.delete('/m/a');
      await new Promise((resolve) => setTimeout(resolve, 30));
      await w.openReader('eu', '/m/a');
      await w.mirror.redis.flushdb();
      await w.resync();
      await w.gc('eu', 10);
      await w.check();
      await w.quiesce();
    });
  });

  it('a slow put that found a chunk in the store, and a pass that collects it before the put commits', async () => {
    await withWorld(async (w) => {
      await w.put(w.sourceStore, '/m/a', [0]);
      await w.source.meta.delete('/m/a');
      await w.applyLog(10);
      const gate = new GatedStore(w.sourceStore);
      const put: SlowPut = { gate, done: false, result: Promise.resolve() };
      put.result = w.put(gate.store(), '/n/b', [0, 1]).finally(() => {
        put.done = true;
      });
      w.slow.push(put);
      await w.settle(put);
      gate.release();
      await w.settle(put);
      await w.gc('src', 0);
      await w.check();
      await w.quiesce();
    });
  });

  it('a reader that opened a version in a lagging mirror, a pass with a grace shorter than the lag', async () => {
    await withWorld(async (w) => {
      await w.put(w.sourceStore, '/m/a', [0, 1]);
      await w.applyLog(10);
      await w.copy(0);
      await w.copy(0);
      await w.check();
      await w.source.meta.delete('/m/a');
      await new Promise((resolve) => setTimeout(resolve, 30));
      await w.openReader('eu', '/m/a');
      await w.applyLog(10);
      await w.gc('eu', 20);
      await w.check();
      await w.quiesce();
    });
  });
});

async function withWorld(body: (world: World) => Promise<void>): Promise<void> {
  const redisUrl = server.url;
  const volume = uniqueName('gcm');
  const doc = {
    volume,
    chunkSize: CHUNK,
    source: 'src',
    regions: {
      src: { store: 'memory://src', redis: `${redisUrl}/1` },
      eu: { store: 'memory://eu', redis: `${redisUrl}/2` },
    },
  };
  const config = parseConfig(doc);
  const sourceStore = new MemoryStore({ name: `src-${volume}` });
  const mirrorStore = new MemoryStore({ name: `eu-${volume}` });
  const source = openRegion({ config, region: 'src', role: 'client', logger: silentLogger, stores: { region: sourceStore } });
  const mirror = openRegion({
    config,
    region: 'eu',
    role: 'client',
    logger: silentLogger,
    stores: { region: mirrorStore, source: sourceStore },
  });
  // The mirror starts in step with the empty source: a cursor of its own.
  await mirror.redis.set(mirror.meta.keys.cursor, '0-0');
  const world = new World(source, mirror, sourceStore, mirrorStore);
  try {
    await body(world);
  } finally {
    for (const put of world.slow) while (!put.done && put.gate.blocked) put.gate.release();
    await Promise.all(world.slow.map((p) => p.result));
    await source.redis.flushdb();
    await mirror.redis.flushdb();
    await source.close();
    await mirror.close();
  }
}
