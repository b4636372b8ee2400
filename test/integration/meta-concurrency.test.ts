import { ConflictError, type Entry, InvalidArgumentError, type NewEntry, NotFoundError, nativeChunkId, sha256Hex } from '@ferry/core';
import { compareIds, connectRedis, decodeStoredEntry, Meta, parseChangeRecord } from '@ferry/meta';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { uniqueName } from '../support/random.js';

// Acceptance: 8 separate connections mutate one volume at once; afterwards the stored state, the
// path index, the log and the reference counts must agree exactly.

const CLIENTS = 8;
const MAX_OPS = 3000;
const MAX_MS = 5_000;
const POOL = Array.from({ length: 24 }, (_, i) => nativeChunkId(sha256Hex(`pool-${i}`)));

/** Deterministic per-client randomness, so a failure can be replayed. */
function rng(seed: number) {
  let s = seed >>> 0;
  return (n: number) => {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    return s % n;
  };
}

function randomPath(r: (n: number) => number): string {
  const depth = 1 + r(3);
  return Array.from({ length: depth }, () => `/${'abcd'[r(4)]}${r(3)}`).join('');
}

function randomEntry(r: (n: number) => number, path: string): NewEntry {
  const chunks = Array.from({ length: 1 + r(3) }, () => ({ id: POOL[r(POOL.length)] as Entry['chunks'][number]['id'], size: 8 }));
  return { path, size: 8 * chunks.length, mtime: r(1_000_000), chunkSize: 8, chunks };
}

const EXPECTED = [ConflictError, NotFoundError, InvalidArgumentError];

async function client(redis: Redis, volume: string, seed: number, deadline: number): Promise<number> {
  const meta = new Meta({ redis, volume });
  const r = rng(seed);
  let ok = 0;
  for (let i = 0; i < MAX_OPS && Date.now() < deadline; i++) {
    const op = r(10);
    try {
      if (op < 5) {
        const paths = [...new Set(Array.from({ length: 1 + r(3) }, () => randomPath(r)))];
        await meta.commit(paths.map((p) => randomEntry(r, p)));
      } else if (op < 8) {
        await meta.rename(randomPath(r), randomPath(r));
      } else {
        await meta.delete(randomPath(r), { recursive: r(2) === 0 });
      }
      ok++;
    } catch (err) {
      if (!EXPECTED.some((type) => err instanceof type)) throw err;
    }
  }
  return ok;
}

let redises: Redis[] = [];

beforeAll(() => {
  redises = Array.from({ length: CLIENTS }, (_, i) => connectRedis(inject('redisUrl'), { name: `meta-concurrency-${i}` }));
});

afterAll(async () => {
  await Promise.all(redises.map((r) => r.quit()));
});

it('8 concurrent clients leave entries, index, log and reference counts consistent', async () => {
  const volume = uniqueName('conc');
  const deadline = Date.now() + MAX_MS;
  const successes = await Promise.all(redises.map((redis, i) => client(redis, volume, 1000 + i, deadline)));
  const mutations = successes.reduce((a, b) => a + b, 0);
  expect(mutations).toBeGreaterThan(CLIENTS * 20);

  const redis = redises[0] as Redis;
  const { keys } = new Meta({ redis, volume });
  const stored = new Map(Object.entries(await redis.hgetall(keys.entries)).map(([p, json]) => [p, decodeStoredEntry(json)]));
  const indexed = await redis.zrange(keys.paths, 0, -1);
  expect(new Set(indexed)).toEqual(new Set(stored.keys()));
  for (const [path, entry] of stored) expect(entry.path).toBe(path);

  // One record per successful mutation, ids strictly increasing.
  const log = (await redis.xrange(keys.log, '-', '+')).map((raw) => parseChangeRecord(raw));
  expect(log).toHaveLength(mutations);
  // The run exercised every kind of change, including whole-directory renames and deletes.
  const kinds = new Set(log.map((r) => `${r.op}:${r.put.length + r.del.length > 2 ? 'many' : 'few'}`));
  expect([...kinds].sort()).toEqual(['delete:few', 'delete:many', 'put:few', 'put:many', 'rename:few', 'rename:many']);
  for (let i = 1; i < log.length; i++) expect(compareIds(log[i - 1]?.id as string, log[i]?.id as string)).toBeLessThan(0);

  // Replaying the log reproduces the state exactly: every version is the id of the last record
  // that wrote the path, and every delete removed something that existed.
  const replay = new Map<string, Entry>();
  const everUsed = new Set<string>();
  for (const record of log) {
    for (const path of record.del) expect(replay.delete(path), `${record.id} deletes missing ${path}`).toBe(true);
    for (const entry of record.put) {
      replay.set(entry.path, entry);
      for (const c of entry.chunks) everUsed.add(c.id);
    }
  }
  expect(Object.fromEntries(stored)).toEqual(Object.fromEntries(replay));

  // Reference counts equal chunk occurrences; released chunks are timed in `unreferenced`.
  const expected: Record<string, string> = {};
  for (const entry of stored.values()) for (const c of entry.chunks) expected[c.id] = String(Number(expected[c.id] ?? 0) + 1);
  expect(await redis.hgetall(keys.refs)).toEqual(expected);
  const unreferenced = await redis.zrange(keys.unreferenced, 0, -1);
  expect(new Set(unreferenced)).toEqual(new Set([...everUsed].filter((id) => !(id in expected))));
});
