import { type NewEntry, nativeChunkId, sha256Hex } from '@ferry/core';
import { connectRedis, type ListItem, Meta } from '@ferry/meta';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { BIG, bigNamespace, commitAll } from '../support/big-namespace.js';
import { uniqueName } from '../support/random.js';

// Listing a prefix of a 100,000-entry namespace reads pages, never the namespace.

const CHUNKS = Array.from({ length: 256 }, (_, i) => nativeChunkId(sha256Hex(`c${i}`)));
const { directFiles: DIRECT_FILES } = BIG;

function file(path: string, i: number): NewEntry {
  return {
    path,
    size: 10,
    mtime: i,
    chunkSize: 16,
    chunks: [{ id: CHUNKS[i % CHUNKS.length] as NewEntry['chunks'][number]['id'], size: 10 }],
  };
}

let redis: Redis;
let meta: Meta;
/** Direct children of /big, in listing order: `name/` for directories. */
const children: string[] = [];

beforeAll(async () => {
  redis = connectRedis(inject('redisUrl'), { name: 'meta-listing' });
  meta = new Meta({ redis, volume: uniqueName('big') });
  const namespace = bigNamespace();
  children.push(...namespace.children);
  expect(namespace.paths.length).toBe(100_003);
  await commitAll(meta, namespace.paths, file);
});

afterAll(async () => {
  await redis?.quit();
});

type Logged = { command: string; args: string[] };

/** Every command Redis ran (scripts' commands included) while `fn` ran, from the slow log. */
async function commandsDuring(fn: () => Promise<void>): Promise<Logged[]> {
  const [, before] = (await redis.config('GET', 'slowlog-log-slower-than')) as [string, string];
  const [, maxLen] = (await redis.config('GET', 'slowlog-max-len')) as [string, string];
  await redis.config('SET', 'slowlog-max-len', '100000');
  await redis.slowlog('RESET');
  await redis.config('SET', 'slowlog-log-slower-than', '0');
  try {
    await fn();
  } finally {
    await redis.config('SET', 'slowlog-log-slower-than', before);
  }
  const log = (await redis.slowlog('GET', '100000')) as Array<[number, number, number, string[]]>;
  await redis.config('SET', 'slowlog-max-len', maxLen);
  return log.map(([, , , [command = '', ...args]]) => ({ command: command.toUpperCase(), args }));
}

/** Argument count of a slow-log line, which shows at most 32 (then "... (N more arguments)"). */
function argCount(args: string[]): number {
  const more = /^\.\.\. \((\d+) more arguments\)$/.exec(args.at(-1) ?? '');
  return more ? args.length - 1 + Number(more[1]) : args.length;
}

it('pages through the direct children of a prefix in a 100,000-entry namespace, reading only pages', async () => {
  const listed: string[] = [];
  const pageSizes: number[] = [];
  const show = (i: ListItem) => (i.kind === 'file' ? i.entry.path : `${i.path}/`);
  const commands = await commandsDuring(async () => {
    let cursor: string | undefined;
    do {
      const page = await meta.list('/big', { limit: 1000, cursor });
      listed.push(...page.items.map(show));
      pageSizes.push(page.items.length);
      cursor = page.cursor;
    } while (cursor);
  });
  expect(listed).toEqual(children);
  expect(pageSizes).toEqual([1000, 1000, 1000, 1000, 1000, 95]);

  const ours = commands.filter((c) => c.args[0]?.startsWith(`ferry:{${meta.volume}}:`));
  const byCommand = (name: string) => ours.filter((c) => c.command === name);
  // Nothing read a whole key.
  expect(ours.map((c) => c.command).filter((c) => !['ZRANGEBYLEX', 'HMGET', 'HGET'].includes(c))).toEqual([]);
  // Entry JSON only for the page's files, in HMGET slices.
  const fetched = byCommand('HMGET').reduce((n, c) => n + argCount(c.args) - 1, 0);
  expect(fetched).toBe(DIRECT_FILES);
  // Path reads: always LIMITed to at most a page, and in total proportional to what was listed
  // (a directory costs at most one small read past it), not to the 100,000 paths.
  const ranges = byCommand('ZRANGEBYLEX');
  for (const c of ranges) {
    expect(c.args[3]).toBe('LIMIT');
    expect(Number(c.args[5])).toBeLessThanOrEqual(1000);
  }
  const pathsRead = ranges.reduce((n, c) => n + Number(c.args[5]), 0);
  expect(pathsRead).toBeLessThan(2 * listed.length);
});

it('lists a sub-directory and the whole tree recursively with the same page bound', async () => {
  const page = await meta.list('/big/c00053');
  expect(page.items).toHaveLength(1000);
  expect(page.cursor).toBeUndefined();
  const first = await meta.list('/big', { recursive: true, limit: 1000 });
  expect(first.items).toHaveLength(1000);
  expect(first.items.every((i) => i.kind === 'file')).toBe(true);
  expect(first.cursor).toBeDefined();
});
