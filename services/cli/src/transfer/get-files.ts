import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, stat, unlink, utimes } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { CorruptError, type Entry, forEachLimit, type HashSession, hashPool, InvalidArgumentError, localIoError } from '@ferry/core';
import { piecesOf, type RegionReader, wholeFileRead } from '@ferry/reader';

export interface GetOptions {
  reader: RegionReader;
  /** Chunks fetched and written at once, at least (memory: the window × chunk size). */
  prefetch: number;
  onBytes?: (delta: number) => void;
  /** Where the read goes on after the first chunk (default: a random chunk; see `wholeFileOrder`). */
  start?: number;
  /**
   * Also hash the whole file and compare it with the sha256 recorded at put or import, even when
   * every chunk is checked against its id (the read is then in file order).
   */
  verifyFile?: boolean;
}

type FileHandle = Awaited<ReturnType<typeof open>>;
type Piece = ReturnType<typeof piecesOf>[number];

/** All of `bytes` at `position`: a positional write may write less than asked. */
async function writeAt(handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  for (let done = 0; done < bytes.length; ) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position + done);
    done += bytesWritten;
  }
}

/**
 * Write one file to `dest`: chunks fetched `prefetch` at a time from the nearest tier (each
 * verified by the reader), each written at its offset as soon as it arrives, all into a temporary
 * name beside the destination that is renamed into place only when complete and verified. A file
 * of native chunks (each verified against its id) is fetched from a random place on, first chunk
 * first, so that many hosts fetching one model spread over the cache nodes; a file with external
 * chunks and a recorded sha256 is fetched in file order, its whole sha256 computed on the hash pool.
 */
export async function getFile(entry: Entry, dest: string, options: GetOptions): Promise<void> {
  if (options.verifyFile && entry.sha256 === undefined && entry.size > 0) {
    throw new InvalidArgumentError(`${entry.path}: no whole-file sha256 is recorded, so --verify-file cannot check it`);
  }
  const dir = dirname(dest);
  await mkdir(dir, { recursive: true }).catch((err) => {
    throw localIoError(err, 'cannot create directory', dir);
  });
  const tmp = join(dir, `.${basename(dest)}.ferry-${randomBytes(4).toString('hex')}`);
  let whole: HashSession | undefined;
  try {
    const handle = await open(tmp, 'wx').catch((err) => {
      throw localIoError(err, 'cannot write', dest);
    });
    try {
      const plan = wholeFileRead(entry, {
        prefetch: options.prefetch,
        ...(options.start !== undefined ? { start: options.start } : {}),
        ...(options.verifyFile ? { verifyFile: true } : {}),
      });
      whole = plan.hashed ? hashPool().session() : undefined;
      const inFileOrder = entry.size === 0 ? [] : piecesOf(entry, 0, entry.size - 1);
      const pieces = plan.order.map((i) => inFileOrder[i] as Piece);
      // Chunk i feeds the file's hash after chunk i-1 did; a call keeps its slot (and its bytes)
      // until then, so memory stays at `prefetch` chunks however late one of them arrives. Without
      // a hash to feed, a slot is free as soon as its chunk is written.
      const fed: Array<Promise<void>> = [];
      const turns = pieces.map(() => {
        let done = () => {};
        fed.push(new Promise<void>((resolve) => (done = resolve)));
        return done;
      });
      let failed = false;
      // At least `prefetch`, more once the reader knows how many cache nodes there are to keep busy.
      await forEachLimit(
        pieces,
        () => plan.window(options.reader.window),
        async (piece, i) => {
          try {
            const bytes = await options.reader.fetch(piece.ref, { entry, offset: piece.offset });
            await writeAt(handle, bytes, piece.offset).catch((err) => {
              throw localIoError(err, 'cannot write', dest);
            });
            options.onBytes?.(bytes.length);
            if (whole && i > 0) await fed[i - 1];
            if (!failed) await whole?.update(bytes);
            // Written, and hashed or copied for hashing: the buffer goes back for a later chunk.
            options.reader.chunks.release(bytes);
          } catch (err) {
            // The calls waiting for their turn must not wait for this one forever.
            failed = true;
            throw err;
          } finally {
            turns[i]?.();
          }
        },
      );
    } finally {
      await handle.close();
    }
    if (whole) {
      const digest = await whole.digest();
      whole = undefined;
      if (digest !== entry.sha256) {
        throw new CorruptError(
          `${entry.path}: whole-file sha256 mismatch (got ${digest.slice(0, 12)}…, expected ${entry.sha256?.slice(0, 12)}…)`,
        );
      }
    }
    await utimes(tmp, new Date(), new Date(entry.mtime));
    await rename(tmp, dest).catch((err) => {
      throw localIoError(err, 'cannot write', dest);
    });
  } catch (err) {
    whole?.abort();
    await unlink(tmp).catch(() => {});
    throw err;
  }
}

/** Where a `get` writes: into `local` when it is an existing directory, else to `local` itself. */
export async function destinationFor(local: string, name: string): Promise<string> {
  const st = await stat(local).catch(() => undefined);
  return st?.isDirectory() ? join(local, name) : local;
}
