import type { IncomingMessage, ServerResponse } from 'node:http';

// Response helpers of the Hub stand-in (hf-hub.ts): the Hub's error shape, an object store's
// error shape for its CDN, and byte bodies with single-range support.

export function decode(segment: string | undefined): string {
  return decodeURIComponent(segment ?? '');
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': String(text.length) });
  res.end(text);
}

/** The Hub's error shape: `X-Error-Code` (when it has one), `X-Error-Message` and `{"error": …}`. */
export function sendError(res: ServerResponse, status: number, code: string | undefined, message: string): void {
  if (code) res.setHeader('X-Error-Code', code);
  res.setHeader('X-Error-Message', message);
  sendJson(res, status, { error: message });
}

/** An object store's error shape, as a CDN in front of one answers. */
export function sendCdnError(res: ServerResponse, status: number, code: string, message: string): void {
  const text = Buffer.from(`<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message></Error>`);
  res.writeHead(status, { 'Content-Type': 'application/xml', 'Content-Length': String(text.length) });
  res.end(text);
}

/** Bytes with `Accept-Ranges` and single-range 206/416 answers; returns the body bytes sent (0 for HEAD). */
export function sendBytes(req: IncomingMessage, res: ServerResponse, bytes: Buffer): number {
  const size = bytes.length;
  res.setHeader('Accept-Ranges', 'bytes');
  res.setHeader('Content-Type', 'application/octet-stream');
  const range = parseRange(req.headers.range, size);
  if (range === 'unsatisfiable') {
    res.writeHead(416, { 'Content-Range': `bytes */${size}`, 'Content-Length': '0' });
    res.end();
    return 0;
  }
  const [start, end] = range ?? [0, size - 1];
  const body = bytes.subarray(start, end + 1);
  if (range) res.setHeader('Content-Range', `bytes ${start}-${end}/${size}`);
  res.writeHead(range ? 206 : 200, { 'Content-Length': String(body.length) });
  if (req.method === 'HEAD') {
    res.end();
    return 0;
  }
  res.end(body);
  return body.length;
}

/**
 * One `bytes=a-b`, `bytes=a-` or `bytes=-n` range. Anything else (several ranges, other units,
 * a malformed header) is ignored and the whole object is sent, as RFC 9110 allows.
 */
export function parseRange(header: string | undefined, size: number): [number, number] | 'unsatisfiable' | undefined {
  const m = header === undefined ? null : /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0 || size === 0) return 'unsatisfiable';
    return [Math.max(0, size - n), size - 1];
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (m[2] !== '' && Number(m[2]) < start) return undefined;
  if (start >= size) return 'unsatisfiable';
  return [start, end];
}
