import { InvalidArgumentError, RangeNotSatisfiableError } from '@ferry/core';
import type { ByteRange } from './types.js';

/** Order of keys in every listing: UTF-8 byte order, as S3 and GCS list. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing them is the point
const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * Object keys must be relative, `/`-separated, without empty, `.` or `..` segments or control
 * characters, so that every backend maps them the same way and none can escape its root.
 */
export function assertValidKey(key: string): void {
  const problem =
    typeof key !== 'string' || key.length === 0
      ? 'empty key'
      : CONTROL.test(key)
        ? 'contains a control character'
        : key.startsWith('/')
          ? 'starts with "/"'
          : key.split('/').some((s) => s === '' || s === '.' || s === '..')
            ? 'has an empty, "." or ".." segment'
            : Buffer.byteLength(key) > 1024
              ? 'longer than 1024 bytes'
              : undefined;
  if (problem) throw new InvalidArgumentError(`invalid object key ${JSON.stringify(String(key).slice(0, 80))}: ${problem}`);
}

/** Resolve a requested range against an object size (S3 semantics: `end` past the size clamps). */
export function resolveRange(range: ByteRange | undefined, size: number, key: string): { start: number; end: number } {
  if (!range) return { start: 0, end: size - 1 };
  const { start } = range;
  const end = range.end === undefined ? size - 1 : Math.min(range.end, size - 1);
  if (!Number.isSafeInteger(start) || start < 0 || (range.end !== undefined && range.end < start)) {
    throw new InvalidArgumentError(`invalid range ${start}-${range.end ?? ''} for ${key}`);
  }
  if (start >= size) {
    throw new RangeNotSatisfiableError(`range ${start}-${range.end ?? ''} is past the end of ${key} (${size} bytes)`);
  }
  return { start, end };
}
