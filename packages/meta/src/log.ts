import { compareIds } from './ids.js';

/** What the change log holds right now. */
export interface LogBounds {
  /** Oldest record still in the log. */
  first?: string;
  /**
   * Newest id the log ever generated (XINFO last-generated-id), even if trimming removed that
   * record. Undefined for a log that never had a record.
   */
  last?: string;
  /** Records in the log. */
  length: number;
  /** Records ever removed from the log by trimming (0: the log is complete). */
  trimmed: number;
}

/** Parse the reply of `XINFO STREAM` (a flat field/value list). */
export function parseXinfo(reply: unknown[]): LogBounds {
  const info = new Map<string, unknown>();
  for (let i = 0; i + 1 < reply.length; i += 2) info.set(String(reply[i]), reply[i + 1]);
  const firstEntry = info.get('first-entry');
  const length = Number(info.get('length') ?? 0);
  const added = Number(info.get('entries-added') ?? length);
  const lastGenerated = String(info.get('last-generated-id') ?? '0-0');
  const bounds: LogBounds = { length, trimmed: Math.max(0, added - length) };
  if (Array.isArray(firstEntry) && typeof firstEntry[0] === 'string') bounds.first = firstEntry[0];
  if (lastGenerated !== '0-0') bounds.last = lastGenerated;
  return bounds;
}

/**
 * True when records after `cursor` may have been trimmed away, so a mirror at that cursor must do
 * a full resync instead of reading on. Conservative: a cursor just before the oldest record
 * counts as behind (XINFO cannot tell whether anything lay between them).
 */
export function needsResync(cursor: string, bounds: LogBounds): boolean {
  if (bounds.trimmed === 0) return false;
  if (bounds.first !== undefined) return compareIds(cursor, bounds.first) < 0;
  return bounds.last !== undefined && compareIds(cursor, bounds.last) < 0;
}
