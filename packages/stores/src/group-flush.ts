import { execFile } from 'node:child_process';
import type { FileHandle } from 'node:fs/promises';

/**
 * Below this many files in one round, each is flushed on its own (fdatasync, a few at once);
 * from it on, one flush of the whole filesystem costs less (measured here: 15–30 ms for a
 * `sync -f`, about 0.7 ms per file for fdatasync through Node's four I/O threads).
 */
const WHOLE_FS_FROM = 32;

export interface GroupFlushOptions {
  /** A directory on the filesystem to flush (the store's root). */
  dir: string;
  /** Files per round from which the whole filesystem is flushed at once (default 32). */
  wholeFsFrom?: number;
}

/**
 * Makes written files durable, sharing flushes between the puts in flight: the files handed in
 * during one turn of the event loop form a round. A round of few files fdatasyncs each (each
 * file's promise resolves with its own flush); a round of many flushes the whole filesystem once
 * with syncfs(2), which Node does not expose and coreutils' `sync -f` is, and the files handed in
 * while it runs form the next round. Where `sync -f` cannot run, every round flushes file by file.
 */
export class GroupFlush {
  readonly #dir: string;
  readonly #wholeFsFrom: number;
  #waiting: Waiting[] = [];
  #scheduled = false;
  #syncing = false;
  #wholeFs = true;

  constructor(options: GroupFlushOptions) {
    this.#dir = options.dir;
    this.#wholeFsFrom = options.wholeFsFrom ?? WHOLE_FS_FROM;
  }

  /** Resolves once the bytes written through `file` before this call are on disk. */
  flush(file: FileHandle): Promise<void> {
    return new Promise((done, failed) => {
      this.#waiting.push({ file, done, failed });
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#scheduled || this.#syncing) return;
    this.#scheduled = true;
    setImmediate(() => this.#round());
  }

  #round(): void {
    this.#scheduled = false;
    const round = this.#waiting;
    this.#waiting = [];
    if (round.length === 0) return;
    if (!this.#wholeFs || round.length < this.#wholeFsFrom) {
      this.#each(round);
      return;
    }
    this.#syncing = true;
    this.#syncFs()
      .then(
        () => {
          for (const w of round) w.done();
        },
        () => this.#each(round),
      )
      .finally(() => {
        this.#syncing = false;
        if (this.#waiting.length > 0) this.#schedule();
      });
  }

  async #syncFs(): Promise<void> {
    try {
      await new Promise<void>((resolve, reject) => {
        execFile('sync', ['-f', this.#dir], { timeout: 120_000 }, (err) => (err ? reject(err) : resolve()));
      });
    } catch (err) {
      // No coreutils sync here (or one without -f): flush file by file from now on.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as { code?: unknown }).code === 1) this.#wholeFs = false;
      throw err;
    }
  }

  /** fdatasync each file, a few at once; each waiter hears of its own file. */
  #each(files: Waiting[]): void {
    let next = 0;
    const worker = async () => {
      while (next < files.length) {
        const w = files[next++] as Waiting;
        try {
          await w.file.datasync();
          w.done();
        } catch (err) {
          w.failed(err);
        }
      }
    };
    for (let i = 0; i < Math.min(8, files.length); i++) void worker();
  }
}

interface Waiting {
  file: FileHandle;
  done: () => void;
  failed: (err: unknown) => void;
}
