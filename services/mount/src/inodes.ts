import type { Entry } from '@ferry/core';

/** What an inode of the mount stands for: a directory by its path, a file by its path and version. */
export type InodeNode = { kind: 'dir'; path: string } | { kind: 'file'; path: string; entry: Entry };

export interface Inode {
  readonly ino: number;
  readonly node: InodeNode;
  /** Lookups the kernel holds (each entry reply is one; FORGET gives them back). */
  lookups: number;
}

/** The root directory's inode number (FUSE_ROOT_ID). */
export const ROOT_INO = 1;

const keyOf = (node: InodeNode): string => (node.kind === 'dir' ? `d:${node.path}` : `f:${node.path}\0${node.entry.version}`);

/**
 * The inode numbers the kernel knows. A file's inode is one version of one path and never
 * changes: when the path is replaced, its next lookup gets a new inode. The kernel keeps its
 * page cache per inode, so an old handle and a new open of a replaced file never share a cached
 * page, and a version's pages may be kept across opens. An inode lives while the kernel holds
 * lookups of it; numbers are not reused.
 */
export class Inodes {
  readonly #byIno = new Map<number, Inode>();
  readonly #byKey = new Map<string, Inode>();
  #next = ROOT_INO + 1;

  constructor() {
    const root: Inode = { ino: ROOT_INO, node: { kind: 'dir', path: '/' }, lookups: 1 };
    this.#byIno.set(ROOT_INO, root);
    this.#byKey.set(keyOf(root.node), root);
  }

  get(ino: number): Inode | undefined {
    return this.#byIno.get(ino);
  }

  /** The inode of this directory or file version, counting one more lookup of it. */
  lookup(node: InodeNode): Inode {
    const key = keyOf(node);
    let inode = this.#byKey.get(key);
    if (!inode) {
      inode = { ino: this.#next++, node, lookups: 0 };
      this.#byIno.set(inode.ino, inode);
      this.#byKey.set(key, inode);
    }
    inode.lookups += 1;
    return inode;
  }

  /** The kernel gave back `count` lookups; at none left the inode is dropped (never the root). */
  forget(ino: number, count: number): void {
    const inode = this.#byIno.get(ino);
    if (!inode || ino === ROOT_INO) return;
    inode.lookups -= count;
    if (inode.lookups > 0) return;
    this.#byIno.delete(ino);
    this.#byKey.delete(keyOf(inode.node));
  }

  /** Inodes the kernel holds (the root included). */
  get size(): number {
    return this.#byIno.size;
  }
}
