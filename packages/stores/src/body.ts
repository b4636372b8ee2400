import { pipeline, Readable } from 'node:stream';
import { InvalidArgumentError, VerifyingStream } from '@ferry/core';
import type { PutBody } from './types.js';

/** Length of a put body, validated. */
export function bodyLength(body: PutBody): number {
  const length = body instanceof Uint8Array ? body.byteLength : body.length;
  if (!Number.isSafeInteger(length) || length < 0) throw new InvalidArgumentError(`invalid body length ${length}`);
  return length;
}

/**
 * The body as a stream that fails (CorruptError) when it carries more or fewer bytes than
 * declared, so no backend commits a truncated object.
 */
export function bodyStream(body: PutBody, key: string): Readable {
  if (body instanceof Uint8Array) return Readable.from([Buffer.from(body.buffer, body.byteOffset, body.byteLength)]);
  const check = new VerifyingStream({ length: body.length, what: `put ${key}` });
  // pipeline, not pipe: a source that already failed or closed early (while the store was still
  // getting ready) must fail `check` too, or the put would wait for it forever.
  pipeline(body.stream, check, (err) => {
    if (err) check.destroy(err);
  });
  return check;
}

/** Read a whole stream into one Buffer: only for small objects (tests, manifests). */
export async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part as Buffer);
  return Buffer.concat(parts);
}
