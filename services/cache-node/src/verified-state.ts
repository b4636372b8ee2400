import type { Stats } from 'node:fs';
import { appendFile, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type ChunkId, isChunkId, type Logger, silentLogger } from '@ferry/core';

/** What a chunk file looked like right after its bytes were verified. */
export interface FileState {
  size: number;
  mtimeMs: number;
  ino: number;
}

/** One line per verification: `<id> <size> <mtimeMs> <ino>`; the last line of an id wins. */
const LOG = 'verified.log';

export function fileState(st: Stats): FileState {
  return { size: st.size, mtimeMs: st.mtimeMs, ino: Number(st.ino) };
}

/**
 * The verified state of the cache's chunk files: a file whose size, mtime and inode are those
 * recorded when its bytes were verified is served as it is, without hashing it again (a rewrite
 * or truncation shows in them; bit rot under them is the scrub's job). Kept in memory and in an
 * append-only log beside the chunks, so a restart does not re-hash the whole disk: a file whose
 * state the log does not match is verified again before it is served. The log is rewritten with
 * the live entries at open.
 */
export class VerifiedStates {
  readonly #path: string;
  readonly #states = new Map<ChunkId, FileState>();
  readonly #log: Logger;
  /** Appends in order, one at a time. */
  #writing: Promise<void> = Promise.resolve();

  private constructor(dir: string, logger: Logger) {
    this.#path = join(dir, LOG);
    this.#log = logger;
  }

  /** Read the log of `dir`; nothing is trusted yet until `keep` says which files exist. */
  static async load(dir: string, logger: Logger = silentLogger): Promise<VerifiedStates> {
    const states = new VerifiedStates(dir, logger);
    const text = await readFile(states.#path, 'utf8').catch(() => '');
    for (const line of text.split('\n')) {
      const [id, size, mtimeMs, ino] = line.split(' ');
      if (id === undefined || !isChunkId(id) || ino === undefined) continue;
      const state = { size: Number(size), mtimeMs: Number(mtimeMs), ino: Number(ino) };
      if (Object.values(state).every(Number.isFinite)) states.#states.set(id, state);
    }
    return states;
  }

  /** Whether a file with these stats is the one that was verified. */
  matches(id: ChunkId, st: Stats): boolean {
    const known = this.#states.get(id);
    return known !== undefined && known.size === st.size && known.mtimeMs === st.mtimeMs && known.ino === Number(st.ino);
  }

  get(id: ChunkId): FileState | undefined {
    return this.#states.get(id);
  }

  /** Record a file whose bytes were just verified. */
  record(id: ChunkId, state: FileState): Promise<void> {
    this.#states.set(id, state);
    return this.#append(`${id} ${state.size} ${state.mtimeMs} ${state.ino}\n`);
  }

  /** Forget a file (evicted, deleted, or found wrong): it is verified again before it is served. */
  forget(id: ChunkId): void {
    this.#states.delete(id);
  }

  /** Keep only `live` ids and rewrite the log with them (at open, after the files are indexed). */
  async compact(live: (id: ChunkId) => boolean): Promise<void> {
    for (const id of [...this.#states.keys()]) if (!live(id)) this.#states.delete(id);
    const lines = [...this.#states].map(([id, s]) => `${id} ${s.size} ${s.mtimeMs} ${s.ino}\n`).join('');
    const tmp = `${this.#path}.tmp`;
    await this.#queue(async () => {
      await writeFile(tmp, lines);
      await rename(tmp, this.#path);
    });
  }

  #append(line: string): Promise<void> {
    return this.#queue(() => appendFile(this.#path, line));
  }

  #queue(step: () => Promise<void>): Promise<void> {
    const next = this.#writing.then(step).catch((err: unknown) => {
      // A lost line costs one re-verification after a restart, never a wrong byte served.
      this.#log.warn({ err, path: this.#path }, 'could not record verified chunk state');
    });
    this.#writing = next;
    return next;
  }
}
