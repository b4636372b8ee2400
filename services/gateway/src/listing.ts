import { type Entry, normalizePath } from '@ferry/core';
import { type ListOptions, type ListPage, RESERVED } from '@ferry/meta';

/** Meta.list: one page of a directory, or with `recursive` of every file under it. */
export type ListFn = (dir: string, options: ListOptions) => Promise<ListPage>;

export interface ListRequest {
  /** Keys start with it (any string: it need not end at a "/"). */
  prefix: string;
  /** "/" rolls keys up into common prefixes; the only delimiter a volume has. */
  delimiter?: '/';
  /** 0..1000; keys and common prefixes both count. */
  maxKeys: number;
  /** Only keys (and common prefixes) after this one: start-after, marker or a continuation token. */
  after?: string;
}

export interface ListedObject {
  key: string;
  entry: Entry;
}

export interface ListResult {
  contents: ListedObject[];
  commonPrefixes: string[];
  truncated: boolean;
  /** The last key or common prefix of the page: the next page starts after it. */
  last?: string;
}

// Meta.list reads at most 10,000 items a call; one more than a page is enough to know it is truncated.
const MAX_META_LIMIT = 10_000;

/** S3 orders keys by their UTF-8 bytes (as Redis orders the path index), not by UTF-16 units. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * The directory a prefix lives in: "models/x" and "models/" list `/models`, "" lists `/`.
 * Undefined when no key can have the prefix (it spells an invalid volume path).
 */
export function prefixDir(prefix: string): { dir: string; dirPart: string } | undefined {
  const dirPart = prefix.slice(0, prefix.lastIndexOf('/') + 1);
  if (dirPart === '') return { dir: '/', dirPart };
  const wanted = `/${dirPart.slice(0, -1)}`;
  try {
    // normalizePath drops one trailing "/", so "a//" would come back as "/a": compare to be sure.
    return normalizePath(wanted) === wanted ? { dir: wanted, dirPart } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Where Meta.list starts: at the first path >= "/" + prefix, or after `after`. With a delimiter,
 * a key inside a sub-directory means the whole sub-directory is done (its common prefix sorts
 * before that key), so the listing jumps past it the way Meta's own cursor does ("[" + dir + "0",
 * "0" being the byte after "/"). Undefined when nothing with the prefix comes after `after`.
 */
function startCursor(req: ListRequest, dirPart: string): string | undefined {
  const { prefix, after } = req;
  if (after === undefined || !after.startsWith(prefix)) {
    if (after !== undefined && compareKeys(after, prefix) > 0) return undefined;
    return `[/${prefix}`;
  }
  if (req.delimiter) {
    const rest = after.slice(dirPart.length);
    const cut = rest.indexOf('/');
    if (cut >= 0) return `[/${dirPart}${rest.slice(0, cut)}0`;
  }
  return `(/${after}`;
}

/**
 * One page of S3 listing semantics over the volume's path index. Reads only the index range the
 * page covers: it starts at the prefix and stops at the first path past it.
 */
export async function listKeys(list: ListFn, req: ListRequest): Promise<ListResult> {
  const result: ListResult = { contents: [], commonPrefixes: [], truncated: false };
  const where = prefixDir(req.prefix);
  if (!where || req.maxKeys <= 0) return result;
  // Ferry's own folder (retained revisions) is not listed: a listing of / leaves it out too.
  if (where.dir === RESERVED || where.dir.startsWith(`${RESERVED}/`)) return result;
  let cursor = startCursor(req, where.dirPart);
  let count = 0;
  while (cursor !== undefined) {
    const limit = Math.min(MAX_META_LIMIT, req.maxKeys - count + 1);
    const page = await list(where.dir, { cursor, limit, recursive: req.delimiter === undefined });
    for (const item of page.items) {
      const key = item.kind === 'file' ? item.entry.path.slice(1) : `${item.path.slice(1)}/`;
      if (!key.startsWith(req.prefix)) {
        if (compareKeys(key, req.prefix) < 0) continue;
        return result;
      }
      if (count === req.maxKeys) {
        result.truncated = true;
        return result;
      }
      count += 1;
      result.last = key;
      if (item.kind === 'file') result.contents.push({ key, entry: item.entry });
      else result.commonPrefixes.push(key);
    }
    cursor = page.cursor;
  }
  return result;
}

/** Continuation tokens are the last key of the page, so a page boundary survives any restart. */
export function encodeToken(last: string): string {
  return Buffer.from(last, 'utf8').toString('base64url');
}

export function decodeToken(token: string): string | undefined {
  if (!/^[A-Za-z0-9_-]*$/.test(token) || token === '') return undefined;
  const text = Buffer.from(token, 'base64url').toString('utf8');
  return encodeToken(text) === token ? text : undefined;
}
