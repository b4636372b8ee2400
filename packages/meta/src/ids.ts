import { InvalidArgumentError } from '@ferry/core';

/** A change-log (Redis Stream) id: `<ms>-<seq>`. Entry versions are such ids. */
export const STREAM_ID_PATTERN = /^(0|[1-9]\d{0,19})-(0|[1-9]\d{0,19})$/;

/** Version of an entry that was never committed. */
export const NO_VERSION = '0-0';

export function isStreamId(value: unknown): value is string {
  return typeof value === 'string' && STREAM_ID_PATTERN.test(value);
}

/** Validate an id from outside (a cursor, an ack); a bare `<ms>` is completed to `<ms>-0`. */
export function parseStreamId(value: unknown, what = 'change-log id'): string {
  if (typeof value === 'string' && /^(0|[1-9]\d{0,19})$/.test(value)) return `${value}-0`;
  if (isStreamId(value)) return value;
  const shown = typeof value === 'string' ? JSON.stringify(value.slice(0, 60)) : typeof value;
  throw new InvalidArgumentError(`invalid ${what} ${shown}: expected <ms>-<seq>, e.g. 1700000000000-0`);
}

function compareDigits(a: string, b: string): number {
  // Ids are canonical (no leading zeros), so length first, then text, orders them numerically
  // without losing precision above 2^53.
  if (a.length !== b.length) return a.length < b.length ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Order of two stream ids: negative, 0 or positive, like a sort comparator. */
export function compareIds(a: string, b: string): number {
  const [ams = '', aseq = ''] = parseStreamId(a).split('-');
  const [bms = '', bseq = ''] = parseStreamId(b).split('-');
  return compareDigits(ams, bms) || compareDigits(aseq, bseq);
}

/** Milliseconds since the epoch at which Redis created the record with this id. */
export function idTime(id: string): number {
  return Number(parseStreamId(id).split('-')[0]);
}
