import { type Entry, forEachLimit } from '@ferry/core';
import { gitObjectId, lfsPointer, type RepoFile } from './repos.js';

/** Reads a whole (small) file. */
export type ReadWhole = (entry: Entry) => Promise<Buffer>;

const KEEP = 50_000;
const AT_ONCE = 16;

/**
 * The git blob id of each file, as the Hub shows it in `oid`, `blobId` and a small file's ETag:
 * for an LFS file the id of its pointer (computed from sha256 and size), for a small file the id
 * of its bytes, which are read once and remembered by content (content never changes under an id).
 */
export class BlobOids {
  readonly #read: ReadWhole;
  readonly #known = new Map<string, string>();

  constructor(read: ReadWhole) {
    this.#read = read;
  }

  async of(file: RepoFile): Promise<string> {
    if (file.lfs) return gitObjectId('blob', lfsPointer(file.content, file.entry.size));
    const known = this.#known.get(file.content);
    if (known) return known;
    const oid = gitObjectId('blob', file.entry.size === 0 ? Buffer.alloc(0) : await this.#read(file.entry));
    if (this.#known.size >= KEEP) this.#known.delete(this.#known.keys().next().value as string);
    this.#known.set(file.content, oid);
    return oid;
  }

  /** The ids of many files, a few small reads at a time. */
  async ofAll(files: readonly RepoFile[]): Promise<Map<RepoFile, string>> {
    const out = new Map<RepoFile, string>();
    await forEachLimit(files, AT_ONCE, async (file) => {
      out.set(file, await this.of(file));
    });
    return out;
  }
}

/** The size of an LFS file's pointer as git-lfs writes it (`lfs.pointerSize`). */
export function pointerSize(file: RepoFile): number {
  return lfsPointer(file.content, file.entry.size).length;
}
