/** Bytes `start..end` (inclusive) of a resource. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * An HTTP `Range` header against a resource of `size` bytes (RFC 9110): `bytes=a-b`, `bytes=a-`
 * (to the end), `bytes=-n` (the last n). Undefined means "serve it whole" (no header, or one this
 * does not take: several ranges, another unit, garbage, last < first), as the RFC allows;
 * 'unsatisfiable' is a 416.
 */
export function parseByteRange(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | undefined {
  if (header === undefined) return undefined;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m) return undefined;
  const [, first = '', last = ''] = m;
  if (first === '' && last === '') return undefined;
  if (first === '') {
    const suffix = Number(last);
    return suffix === 0 || size === 0 ? 'unsatisfiable' : { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  if (last !== '' && Number(last) < start) return undefined;
  if (start >= size) return 'unsatisfiable';
  return { start, end: last === '' ? size - 1 : Math.min(Number(last), size - 1) };
}
