import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, stat, unlink, utimes } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CorruptError, type Entry, localIoError } from '@ferry/core';
import type { RegionReader } from '@ferry/reader';

export interface GetOptions {
  reader: RegionReader;
  prefetch: number;
  onBytes?: (delta: number) => void;
}

/**
 * Write one file to `dest`: streamed through the reader, whole-file sha256 checked, written to a
 * temporary name beside the destination and renamed into place only when complete and verified.
 */
export async function getFile(entry: Entry, dest: string, options: GetOptions): Promise<void> {
  const dir = dirname(dest);
  await mkdir(dir, { recursive: true }).catch((err) => {
    throw localIoError(err, 'cannot create directory', dir);
  });
  const tmp = join(dir, `.${basename(dest)}.ferry-${randomBytes(4).toString('hex')}`);
  const hash = createHash('sha256');
  const count = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      options.onBytes?.(chunk.length);
      done(null, chunk);
    },
  });
  try {
    const out = createWriteStream(tmp, { flags: 'wx' });
    out.on('error', () => {});
    await pipeline(options.reader.stream(entry, { prefetch: options.prefetch }), count, out).catch((err) => {
      if ((err as NodeJS.ErrnoException).syscall) throw localIoError(err, 'cannot write', dest);
      throw err;
    });
    const digest = hash.digest('hex');
    if (entry.sha256 !== undefined && digest !== entry.sha256) {
      throw new CorruptError(
        `${entry.path}: whole-file sha256 mismatch (got ${digest.slice(0, 12)}…, expected ${entry.sha256.slice(0, 12)}…)`,
      );
    }
    await utimes(tmp, new Date(), new Date(entry.mtime));
    await rename(tmp, dest).catch((err) => {
      throw localIoError(err, 'cannot write', dest);
    });
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
}

/** Where a `get` writes: into `local` when it is an existing directory, else to `local` itself. */
export async function destinationFor(local: string, name: string): Promise<string> {
  const st = await stat(local).catch(() => undefined);
  return st?.isDirectory() ? join(local, name) : local;
}
