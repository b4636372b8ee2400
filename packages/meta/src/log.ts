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

/** The source's history at one moment (Meta.history), as a mirror checks it before reading on. */
export interface SourceHistory extends LogBounds {
  /** The volume's epoch in the source's Redis. */
  epoch: string;
  /** Records ever added to the log (XINFO entries-added). */
  added: number;
  /** Whether the record at the cursor asked about is in the log (false when none was asked about). */
  cursorFound: boolean;
}

/** Records ever added to the stream, from an `XINFO STREAM` reply (Redis 7: entries-added). */
export function xinfoAdded(reply: unknown[]): number {
  for (let i = 0; i + 1 < reply.length; i += 2) if (String(reply[i]) === 'entries-added') return Number(reply[i + 1]);
  return 0;
}

/** What the mirror remembers of the source with its cursor. */
export interface MirrorPosition {
  cursor: string;
  /** The source's epoch when the cursor was set; undefined for a mirror that synced before epochs existed. */
  epoch?: string;
}

/**
 * Why a mirror at `position` must do a full resync instead of reading on, or undefined when the
 * log continues where it stopped: the source's epoch changed (its Redis came back empty or was
 * replaced), the source never generated the cursor or no longer has the record at it although
 * its log reaches back that far (a failover to a replica that missed writes, a restore from an
 * older backup), or records after the cursor were trimmed away.
 */
export function historyChange(position: MirrorPosition, history: SourceHistory): string | undefined {
  const { cursor, epoch } = position;
  if (epoch !== undefined && epoch !== history.epoch) {
    return `the source's epoch changed from ${epoch} to ${history.epoch}: its Redis came back empty or was replaced`;
  }
  if (cursor !== '0-0' && !history.cursorFound) {
    if (history.last === undefined || compareIds(cursor, history.last) > 0) {
      return `the source never wrote the record at the cursor ${cursor} (its log ends at ${history.last ?? 'nothing'}): its history was rolled back`;
    }
    if (history.first !== undefined && compareIds(history.first, cursor) <= 0) {
      return `the record at the cursor ${cursor} is no longer in the source's log, which reaches back to ${history.first}: its history was rolled back`;
    }
    if (history.trimmed === 0 && cursor !== history.last) {
      return `the records up to the cursor ${cursor} are gone from the source's log although none were trimmed: its history changed`;
    }
  }
  if (needsResync(cursor, history)) return `the change log was trimmed past the cursor ${cursor}`;
  return undefined;
}
