import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Entry } from '@ferry/core';
import type { ImportSummary } from '@ferry/importer';
import { decodeStoredEntry, volumeKeys } from '@ferry/meta';
import type { Redis } from 'ioredis';
import { type FerryProcess, type FerryResult, spawnFerry } from './cli.js';

/**
 * Helpers of the import tests: running `ferry import` as a subprocess (the built CLI), making
 * origin trees, and reading a
 * volume's entries straight from Redis.
 */

export interface ImportRunOptions {
  config: string;
  env?: Record<string, string>;
  timeoutMs?: number;
  measureRss?: boolean;
}

/** Start `ferry <args>` (with `import` available); stdout lines are delivered as they arrive. */
export function spawnImportCli(args: string[], options: ImportRunOptions): FerryProcess {
  return spawnFerry(args, options);
}

export function runImportCli(args: string[], options: ImportRunOptions): Promise<FerryResult> {
  return spawnImportCli(args, options).result;
}

/** The `--json` summary of an import run (its last stdout line); fails with what the CLI said. */
export function importSummary(result: FerryResult): Record<string, unknown> & ImportSummary {
  if (result.code !== 0)
    throw new Error(`import failed (${result.code ?? result.signal}): ${result.stderr}\n${result.stdout.slice(-2000)}`);
  const last = result.stdout.trim().split('\n').at(-1) ?? '';
  const summary = JSON.parse(last);
  if (summary.event !== 'summary') throw new Error(`no summary: ${last}`);
  return summary;
}

/** One object of an origin tree: its key (relative to the origin prefix) and its bytes. */
export interface OriginObject {
  key: string;
  bytes: Buffer;
}

/**
 * `count` objects with the shapes imports meet: empty objects, small ones, a few larger than
 * `chunkSize`, unicode and spaces in keys, nested prefixes. Deterministic keys, random bytes.
 */
export function* originObjects(count: number, chunkSize: number): Generator<OriginObject> {
  const dirs = ['models/llama', 'models/llama/shards', 'data/é', '模型/权重', 'with space/inner dir', 'deep/a/b/c/d/e'];
  for (let i = 0; i < count; i++) {
    const dir = dirs[i % dirs.length] as string;
    const name = i % 7 === 0 ? `file ${i}.bin` : i % 11 === 0 ? `ünïcode-🚀-${i}.json` : `f${String(i).padStart(6, '0')}.bin`;
    const size = i % 50 === 0 ? 0 : i % 1000 === 4 ? chunkSize * 3 + 1234 : i % 250 === 3 ? chunkSize : 1 + ((i * 7919) % 3000);
    yield { key: `${dir}/${name}`, bytes: randomBytes(size) };
  }
}

/** Write objects as files under `root`, `limit` at a time (each via temp + rename: a new inode, as a real overwrite). */
export async function writeTree(root: string, objects: Iterable<OriginObject>, limit = 64): Promise<void> {
  const made = new Set<string>();
  const iterator = objects[Symbol.iterator]();
  const worker = async () => {
    for (let next = iterator.next(); !next.done; next = iterator.next()) {
      const file = join(root, ...next.value.key.split('/'));
      const dir = dirname(file);
      if (!made.has(dir)) {
        await mkdir(dir, { recursive: true });
        made.add(dir);
      }
      const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp-write`;
      await writeFile(tmp, next.value.bytes);
      await rename(tmp, file);
    }
  };
  await Promise.all(Array.from({ length: limit }, worker));
}

/** A ustar header of a regular file. */
export function tarHeader(name: string, size: number, mtime: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100);
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  h.write(`${mtime.toString(8).padStart(11, '0')}\0`, 136);
  h.write('        ', 148);
  h.write('0', 156);
  h.write('ustar\0', 257);
  h.write('00', 263);
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}

/**
 * `count` files of a few bytes under `root` (`d000/object-<i>.bin`, spread over `dirs` folders),
 * made by streaming a tar archive into `tar -x`: one process doing the syscalls is faster here
 * than any Node loop of writes (100k files: ~8-12 s against ~15-30 s).
 */
export async function writeTinyFiles(root: string, count: number, dirs: number): Promise<void> {
  const tar = spawn('tar', ['-x', '-C', root], { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  tar.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const closed = new Promise<number | null>((resolve) => tar.once('close', resolve));
  const mtime = Math.floor(Date.now() / 1000);
  let parts: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const body = Buffer.from(String(i));
    parts.push(
      tarHeader(`d${String(i % dirs).padStart(3, '0')}/object-${i}.bin`, body.length, mtime),
      body,
      Buffer.alloc(512 - body.length),
    );
    if (parts.length >= 3000 || i === count - 1) {
      if (i === count - 1) parts.push(Buffer.alloc(1024));
      const ok = tar.stdin?.write(Buffer.concat(parts));
      parts = [];
      if (!ok) await new Promise((resolve) => tar.stdin?.once('drain', resolve));
    }
  }
  tar.stdin?.end();
  const code = await closed;
  if (code !== 0) throw new Error(`tar -x failed (${code}): ${stderr}`);
}

/** Every entry of a volume, by path (from the source Redis). */
export async function volumeEntries(redis: Redis, volume: string): Promise<Map<string, Entry>> {
  const all = await redis.hgetall(volumeKeys(volume).entries);
  return new Map(Object.entries(all).map(([path, json]) => [path, decodeStoredEntry(json)]));
}

/** Entries without their version (which differs between two runs that write the same thing). */
export function withoutVersions(entries: Map<string, Entry>): Map<string, Omit<Entry, 'version'>> {
  return new Map([...entries].map(([path, { version: _v, ...rest }]) => [path, rest]));
}

/** Paths put and deleted by the change records after `afterId`. */
export async function changesAfter(
  redis: Redis,
  volume: string,
  afterId: string,
): Promise<{ put: string[]; del: string[]; records: number }> {
  const records = await redis.xrange(volumeKeys(volume).log, `(${afterId}`, '+');
  const put: string[] = [];
  const del: string[] = [];
  for (const [, fields] of records) {
    const f = new Map<string, string>();
    for (let i = 0; i + 1 < fields.length; i += 2) f.set(fields[i] as string, fields[i + 1] as string);
    for (const e of JSON.parse(f.get('put') ?? '[]') as Array<{ path: string }>) put.push(e.path);
    del.push(...(JSON.parse(f.get('del') ?? '[]') as string[]));
  }
  return { put: put.sort(), del: del.sort(), records: records.length };
}

/** Last id of a volume's change log ('0-0' when empty). */
export async function lastLogId(redis: Redis, volume: string): Promise<string> {
  const [last] = await redis.xrevrange(volumeKeys(volume).log, '+', '-', 'COUNT', 1);
  return last?.[0] ?? '0-0';
}
