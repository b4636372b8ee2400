import { createHash } from 'node:crypto';
import { type ByteRange, type Entry, parseByteRange } from '@ferry/core';
import { S3Error } from './errors.js';

/**
 * The HTTP semantics of GetObject / HeadObject over an entry: ETag, conditional requests
 * (RFC 9110 §13.2.2 order) and byte ranges. Pure, so every rule is unit-tested without a server.
 */

/**
 * A strong ETag that follows the content: the file's sha256 when known (so it matches
 * `sha256sum`), else a hash of its content-addressed chunk list. A new version with the same
 * bytes keeps its ETag. 64 hex digits on purpose: clients such as rclone take a 32-digit ETag for
 * an MD5 and would fail their own check of the downloaded bytes.
 */
export function etagOf(entry: Entry): string {
  if (entry.sha256) return `"${entry.sha256}"`;
  const hash = createHash('sha256').update(`ferry-etag\n${entry.size}\n`);
  for (const chunk of entry.chunks) hash.update(`${chunk.id}:${chunk.size}\n`);
  return `"${hash.digest('hex')}"`;
}

/**
 * A `Range` header against a file of `size` bytes: the one range it asks for, or undefined to
 * serve the whole file (no header, a syntax S3 ignores, or several ranges, which S3 does not
 * serve). A well-formed range that selects no byte is a 416 InvalidRange.
 */
export function parseRange(header: string | undefined, size: number): ByteRange | undefined {
  const range = parseByteRange(header, size);
  if (range !== 'unsatisfiable') return range;
  throw new S3Error('InvalidRange', `the requested range "${header?.trim()}" is not satisfiable (${size} bytes)`, {
    headers: { 'content-range': `bytes */${size}` },
  });
}

function tags(header: string): string[] {
  return header
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '')
    .map((t) => (t === '*' || t.startsWith('"') || t.startsWith('W/') ? t : `"${t}"`));
}

function weak(tag: string): string {
  return tag.startsWith('W/') ? tag.slice(2) : tag;
}

function seconds(ms: number): number {
  return Math.floor(ms / 1000);
}

function date(header: string | undefined): number | undefined {
  if (header === undefined) return undefined;
  const ms = Date.parse(header);
  return Number.isNaN(ms) ? undefined : ms;
}

export interface RequestHeaders {
  'if-match'?: string;
  'if-none-match'?: string;
  'if-modified-since'?: string;
  'if-unmodified-since'?: string;
  'if-range'?: string;
  range?: string;
}

/** 412 or 304 when the preconditions say so, else undefined. */
export function checkPreconditions(headers: RequestHeaders, etag: string, mtime: number): 304 | 412 | undefined {
  const ifMatch = headers['if-match'];
  if (ifMatch !== undefined) {
    // Strong comparison: a weak tag never matches.
    if (!tags(ifMatch).some((t) => t === '*' || t === etag)) return 412;
  } else {
    const since = date(headers['if-unmodified-since']);
    if (since !== undefined && seconds(mtime) > seconds(since)) return 412;
  }
  const ifNoneMatch = headers['if-none-match'];
  if (ifNoneMatch !== undefined) {
    if (tags(ifNoneMatch).some((t) => t === '*' || weak(t) === etag)) return 304;
  } else {
    const since = date(headers['if-modified-since']);
    if (since !== undefined && seconds(mtime) <= seconds(since)) return 304;
  }
  return undefined;
}

/** If-Range: the range applies only while the client's copy is current (strong ETag or exact date). */
function rangeStillApplies(ifRange: string | undefined, etag: string, mtime: number): boolean {
  if (ifRange === undefined) return true;
  const value = ifRange.trim();
  if (value.startsWith('"') || value.startsWith('W/')) return value === etag;
  const at = date(value);
  return at !== undefined && seconds(at) === seconds(mtime);
}

const OVERRIDES: Record<string, string> = {
  'response-content-type': 'content-type',
  'response-content-language': 'content-language',
  'response-expires': 'expires',
  'response-cache-control': 'cache-control',
  'response-content-disposition': 'content-disposition',
  'response-content-encoding': 'content-encoding',
};

/** The query parameters GetObject / HeadObject accept besides the signature's. */
export const OBJECT_PARAMS = new Set(Object.keys(OVERRIDES));

export interface ObjectPlan {
  status: 200 | 206 | 304 | 412;
  headers: Record<string, string>;
  /** The bytes to send (200 and 206 of a non-empty file). */
  range?: ByteRange;
}

/** Status, headers and byte range of a GetObject / HeadObject of `entry`. */
export function planObject(entry: Entry, headers: RequestHeaders, query: ReadonlyMap<string, string>): ObjectPlan {
  const etag = etagOf(entry);
  const base: Record<string, string> = { etag, 'last-modified': new Date(entry.mtime).toUTCString() };
  const precondition = checkPreconditions(headers, etag, entry.mtime);
  if (precondition !== undefined) return { status: precondition, headers: base };
  const out: Record<string, string> = { ...base, 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream' };
  for (const [param, header] of Object.entries(OVERRIDES)) {
    const value = query.get(param);
    // Printable ASCII only: CR/LF would let a URL write its own headers, and Node refuses the rest.
    if (value !== undefined && /^[\x20-\x7e]*$/.test(value)) out[header] = value;
  }
  const range = rangeStillApplies(headers['if-range'], etag, entry.mtime) ? parseRange(headers.range, entry.size) : undefined;
  if (range) {
    out['content-range'] = `bytes ${range.start}-${range.end}/${entry.size}`;
    out['content-length'] = String(range.end - range.start + 1);
    return { status: 206, headers: out, range };
  }
  out['content-length'] = String(entry.size);
  return entry.size === 0 ? { status: 200, headers: out } : { status: 200, headers: out, range: { start: 0, end: entry.size - 1 } };
}
