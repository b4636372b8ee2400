import { dirPrefix, type Entry, InvalidArgumentError } from '@ferry/core';
import { decodeStoredEntry } from './entry.js';

export type ListItem = { kind: 'file'; entry: Entry } | { kind: 'dir'; path: string };

export interface ListOptions {
  /** `cursor` of the previous page. Opaque. */
  cursor?: string;
  /** Items per page, 1..10000 (default 1000). A sub-directory counts as one item. */
  limit?: number;
  /** Every file under the directory instead of its direct children. */
  recursive?: boolean;
}

export interface ListPage {
  items: ListItem[];
  /** Present when there is more: pass it to the next call. */
  cursor?: string;
}

export const DEFAULT_LIST_LIMIT = 1000;
export const MAX_LIST_LIMIT = 10_000;

export function listLimit(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_LIST_LIMIT;
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT) {
    throw new InvalidArgumentError(`invalid list limit ${limit}: expected 1..${MAX_LIST_LIMIT}`);
  }
  return limit;
}

/**
 * The cursor is the ZRANGEBYLEX start of the next page ("(" + last file, or "[" + sub-directory +
 * "0"). It is checked to stay inside the listed directory, so a forged one cannot read elsewhere.
 */
export function listStart(dir: string, cursor: string | undefined): string {
  if (cursor === undefined) return '';
  const prefix = dirPrefix(dir);
  if (typeof cursor !== 'string' || !/^[([]/.test(cursor) || !cursor.slice(1).startsWith(prefix)) {
    throw new InvalidArgumentError(`invalid list cursor for ${dir}: pass the cursor of the previous page unchanged`);
  }
  return cursor;
}

/** Parse the reply of lua/list.lua. */
export function parseListReply(reply: string[]): ListPage {
  const items: ListItem[] = [];
  for (let i = 1; i + 2 < reply.length; i += 3) {
    const [kind, path, json] = [reply[i], reply[i + 1] as string, reply[i + 2] as string];
    if (kind === 'd') items.push({ kind: 'dir', path });
    // '' would mean the index and the hash disagree; the scripts never let that happen.
    else if (json !== '') items.push({ kind: 'file', entry: decodeStoredEntry(json) });
  }
  const next = reply[0];
  return next ? { items, cursor: next } : { items };
}
