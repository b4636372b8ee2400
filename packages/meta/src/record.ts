import { type Entry, InvalidArgumentError } from '@ferry/core';
import { idTime, isStreamId } from './ids.js';

export type ChangeOp = 'put' | 'delete' | 'rename';

/**
 * One change-log record, self-contained: apply `del` then `put`, atomically, and the region holds
 * what the source held right after this record. A rename is `del` of the old paths plus `put` of
 * the moved entries; a put that replaces a file does not list it in `del`.
 */
export interface ChangeRecord {
  /** Stream id; also the `version` of every entry in `put`. */
  id: string;
  op: ChangeOp;
  /** Full entries written by this record, `version` = `id`. */
  put: Entry[];
  /** Paths removed by this record. */
  del: string[];
  /** ms since the epoch when the source committed it (the ms part of the id). */
  time: number;
}

/** A record as ioredis returns it from XREAD / XRANGE: `[id, [field, value, …]]`. */
export type RawStreamRecord = [id: string, fields: string[]];

const OPS: ReadonlySet<string> = new Set<ChangeOp>(['put', 'delete', 'rename']);

function malformed(id: string, problem: string): never {
  throw new InvalidArgumentError(`malformed change record ${id}: ${problem}`);
}

function jsonArray(id: string, field: string, text: string | undefined): unknown[] {
  if (text === undefined) malformed(id, `no "${field}" field`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    malformed(id, `"${field}" is not JSON`);
  }
  if (!Array.isArray(value)) malformed(id, `"${field}" is not an array`);
  return value;
}

export function parseChangeRecord([id, fields]: RawStreamRecord): ChangeRecord {
  if (!isStreamId(id)) malformed(String(id), 'bad id');
  const map = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) map.set(fields[i] as string, fields[i + 1] as string);
  const op = map.get('op');
  if (op === undefined || !OPS.has(op)) malformed(id, `unknown op ${JSON.stringify(op)}`);
  const put = jsonArray(id, 'put', map.get('put')).map((item) => {
    const entry = item as Omit<Entry, 'version'> | null;
    if (typeof entry?.path !== 'string' || !Array.isArray(entry.chunks)) malformed(id, 'an entry in "put" has no path or chunks');
    return { ...entry, version: id } as Entry;
  });
  const del = jsonArray(id, 'del', map.get('del'));
  if (!del.every((p) => typeof p === 'string')) malformed(id, '"del" holds a non-string');
  return { id, op: op as ChangeOp, put, del: del as string[], time: idTime(id) };
}
