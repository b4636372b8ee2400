import { Readable, Transform } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  type CompletedPart,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import {
  CorruptError,
  FerryError,
  forEachLimit,
  InvalidArgumentError,
  NotFoundError,
  PreconditionFailedError,
  RangeNotSatisfiableError,
  TransientError,
} from '@ferry/core';
import { bodyLength, bodyStream } from './body.js';
import { assertValidKey, compareKeys, resolveRange } from './keys.js';
import { translateS3Error, unquote } from './s3-errors.js';
import { fixedParts, sliceParts } from './s3-multipart.js';
import type * as Store from './types.js';
import type { ObjectStore } from './types.js';

export interface S3StoreOptions {
  /** An existing client; the store then never destroys it. */
  client?: S3Client;
  bucket: string;
  /** Default: the SDK's chain (AWS_REGION, shared config). */
  region?: string;
  /** S3-compatible endpoint, `http(s)://host[:port]`. */
  endpoint?: string;
  forcePathStyle?: boolean;
  /**
   * `when_required` turns off the SDK's default flexible checksums, which some S3-compatible
   * servers (s3rver) store as part of the object when the body is streamed.
   */
  checksums?: 'when_required' | 'when_supported';
  /** Objects from this size on go up as multipart uploads (default 64 MiB). */
  multipartThreshold?: number;
  /** Multipart part size (default 8 MiB, at least 5 MiB). */
  partSize?: number;
  /** Parts held at once by one multipart put, in flight or being filled (default 4). */
  queueSize?: number;
  /** Explicit credentials (tests); otherwise the SDK's default chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

const MiB = 2 ** 20;

function positive(value: number | undefined, fallback: number, min: number, name: string): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < min) throw new InvalidArgumentError(`S3Store: ${name} must be an integer ≥ ${min}, got ${v}`);
  return v;
}

/** Scheme, host and port of an endpoint: user info, path and query never reach a message. */
function showEndpoint(endpoint: string): string {
  try {
    const url = new URL(endpoint);
    return `${url.protocol}//${url.host}`;
  } catch {
    throw new InvalidArgumentError('S3Store: endpoint must be an http(s)://host[:port] URL');
  }
}

/** Amazon S3 and S3-compatible servers, on whole-bucket keys (PrefixStore adds URL prefixes). */
export class S3Store implements ObjectStore {
  /** `s3://bucket`: the endpoint is left out so that PrefixStore can append a prefix to it. */
  readonly url: string;
  readonly capabilities: Store.StoreCapabilities = { scheme: 's3', serverSideIfMatch: true, maxObjectSize: 5 * 2 ** 40 };
  readonly #client: S3Client;
  readonly #ownsClient: boolean;
  readonly #bucket: string;
  /** The endpoint as messages show it: scheme, host and port only, never user info. */
  readonly #endpoint: string;
  readonly #flexibleChecksums: boolean;
  readonly #threshold: number;
  readonly #partSize: number;
  readonly #queueSize: number;
  /** Puts of one key in flight from this process, chained (see #serialized). */
  readonly #putting = new Map<string, Promise<unknown>>();

  constructor(options: S3StoreOptions) {
    if (!options.bucket) throw new InvalidArgumentError('S3Store: bucket is required');
    this.#bucket = options.bucket;
    this.url = `s3://${options.bucket}`;
    this.#threshold = positive(options.multipartThreshold, 64 * MiB, 1, 'multipartThreshold');
    // 8 MiB parts (grown for objects over 80 GiB, see multipart) keep an upload at 4 × 8 MiB of buffers.
    this.#partSize = positive(options.partSize, 8 * MiB, 5 * MiB, 'partSize');
    this.#queueSize = positive(options.queueSize, 4, 1, 'queueSize');
    this.#flexibleChecksums = options.checksums !== 'when_required';
    this.#endpoint = options.endpoint ? showEndpoint(options.endpoint) : 'S3';
    this.#ownsClient = !options.client;
    this.#client =
      options.client ??
      new S3Client({
        ...(options.region ? { region: options.region } : {}),
        ...(options.endpoint ? { endpoint: options.endpoint } : {}),
        ...(options.credentials ? { credentials: options.credentials } : {}),
        forcePathStyle: options.forcePathStyle ?? false,
        ...(this.#flexibleChecksums ? {} : { requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' }),
        // A dead endpoint fails in seconds and a stalled transfer after two idle minutes, not never.
        requestHandler: { connectionTimeout: 10_000, socketTimeout: 120_000 },
      });
  }

  async #send<T>(op: string, key: string | undefined, call: () => Promise<T>, ifMatch?: string): Promise<T> {
    try {
      return await call();
    } catch (err) {
      throw translateS3Error(err, { label: this.url, bucket: this.#bucket, endpoint: this.#endpoint, op, key, ifMatch });
    }
  }

  async head(key: string): Promise<Store.ObjectInfo> {
    assertValidKey(key);
    const out = await this.#send('head', key, () => this.#client.send(new HeadObjectCommand({ Bucket: this.#bucket, Key: key })));
    return { key, size: out.ContentLength ?? 0, etag: unquote(out.ETag), lastModified: out.LastModified?.getTime() ?? 0 };
  }

  async get(key: string, options: Store.GetOptions = {}): Promise<Store.GetResult> {
    assertValidKey(key);
    const { range, ifMatch } = options;
    // Checks the numbers only; whether the start is past the end is the server's to say (416).
    if (range) resolveRange(range, Number.MAX_SAFE_INTEGER, key);
    const command = new GetObjectCommand({
      Bucket: this.#bucket,
      Key: key,
      // Always `bytes=a-` or `bytes=a-b`: suffix ranges are wrong on some S3-compatible servers.
      ...(range ? { Range: `bytes=${range.start}-${range.end ?? ''}` } : {}),
      ...(ifMatch !== undefined ? { IfMatch: ifMatch === '*' || ifMatch.startsWith('"') ? ifMatch : `"${ifMatch}"` } : {}),
    });
    let out: GetObjectCommandOutput;
    try {
      out = await this.#send('get', key, () => this.#client.send(command), ifMatch);
    } catch (err) {
      // A server that ignores If-Match answers a range past the end of a new, shorter version
      // with 416: that is a changed object, not a bad range, when the etag no longer matches.
      if (err instanceof RangeNotSatisfiableError && ifMatch !== undefined && ifMatch !== '*') {
        const now = await this.head(key);
        if (now.etag !== unquote(ifMatch))
          throw new PreconditionFailedError(`${this.url}: ${key} changed (etag ${now.etag}, expected ${unquote(ifMatch)})`, { cause: err });
      }
      throw err;
    }
    const source = (out.Body as Readable | undefined) ?? Readable.from([]);
    try {
      const etag = unquote(out.ETag);
      const length = out.ContentLength ?? 0;
      const match = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(out.ContentRange?.trim() ?? '');
      const served = match
        ? { start: Number(match[1]), end: Number(match[2]), size: Number(match[3]) }
        : { start: 0, end: length - 1, size: length };
      const info: Store.ObjectInfo = { key, size: served.size, etag, lastModified: out.LastModified?.getTime() ?? 0 };
      // Servers that ignore If-Match (s3rver) must not hand out another version either.
      if (ifMatch !== undefined && ifMatch !== '*' && etag !== unquote(ifMatch)) {
        throw new PreconditionFailedError(`${this.url}: ${key} changed (etag ${etag}, expected ${unquote(ifMatch)})`);
      }
      // What was asked for, clamped to the size. A server that ignored the Range header or sent
      // more than asked (s3rver reads `bytes=0-0` as the whole object) is cut down to it.
      const { start, end } = resolveRange(range, info.size, key);
      if (served.start > start || served.end < end) {
        throw new TransientError(`${this.url}: get ${key}: the server sent bytes ${served.start}-${served.end} for ${start}-${end}`);
      }
      return { info, start, end, body: this.#body(source, start - served.start, end - start + 1, served.end > end, key) };
    } catch (err) {
      source.destroy();
      throw err;
    }
  }

  /**
   * The response body, skipping `skip` bytes and passing exactly `length`: a connection lost
   * mid-body, or a body that ends short, is a TransientError on the stream, never a short read.
   */
  #body(source: Readable, skip: number, length: number, hasMore: boolean, key: string): Readable {
    let toSkip = skip;
    let sent = 0;
    const url = this.url;
    const out = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        const from = Math.min(toSkip, chunk.length);
        toSkip -= from;
        const part = chunk.subarray(from, from + (length - sent));
        sent += part.length;
        done(null, part.length > 0 ? part : undefined);
        if (sent === length && hasMore && !source.destroyed) {
          source.unpipe(out);
          source.destroy();
          out.end();
        }
      },
      flush(done) {
        done(sent === length ? null : new TransientError(`${url}: get ${key}: the body ended after ${sent} of ${length} bytes`));
      },
    });
    source.on('error', (err) => {
      if (sent === length) return;
      if (err instanceof FerryError) out.destroy(err);
      // The SDK's response checksum validation (checksums=when_supported) fails the stream at its end.
      else if (/checksum mismatch/i.test(err.message))
        out.destroy(new CorruptError(`${url}: get ${key}: checksum mismatch`, { cause: err }));
      else out.destroy(new TransientError(`${url}: get ${key}: connection lost after ${sent} of ${length} bytes`, { cause: err }));
    });
    out.once('close', () => source.destroyed || source.destroy());
    source.pipe(out);
    return out;
  }

  async put(key: string, body: Store.PutBody, options: Store.PutOptions = {}): Promise<Store.PutResult> {
    assertValidKey(key);
    const length = bodyLength(body);
    if (length > this.capabilities.maxObjectSize) throw new InvalidArgumentError(`${this.url}: put ${key}: ${length} bytes is over 5 TiB`);
    const multipart = length > 0 && length >= this.#threshold;
    const etag = await this.#serialized(key, () =>
      multipart ? this.#putMultipart(key, body, length) : this.#putSingle(key, body, length, options.sha256),
    );
    return { etag: etag || (await this.head(key)).etag };
  }

  /**
   * Puts of one key from this process run one after another. S3 is atomic either way, but some
   * S3-compatible servers (s3rver) write an upload in place, so two concurrent uploads of one key
   * interleave into an object neither of them wrote.
   */
  async #serialized<T>(key: string, run: () => Promise<T>): Promise<T> {
    const mine = (this.#putting.get(key) ?? Promise.resolve()).then(run);
    const tail = mine.catch(() => {});
    this.#putting.set(key, tail);
    try {
      return await mine;
    } finally {
      if (this.#putting.get(key) === tail) this.#putting.delete(key);
    }
  }

  /**
   * One PutObject from a buffer: the whole body is read and its length checked before anything is
   * sent, so a short or failing stream never reaches the server (servers that store a request as
   * it arrives keep a truncated object), and the SDK can retry the request. With the body's
   * sha256 known (a chunk's id), the SDK hashes nothing: the digest is the SigV4 payload hash and,
   * with flexible checksums on, `x-amz-checksum-sha256`, which S3 checks against what it received.
   */
  async #putSingle(key: string, body: Store.PutBody, length: number, sha256?: string): Promise<string> {
    let bytes: Uint8Array = body instanceof Uint8Array ? body : Buffer.alloc(0);
    if (!(body instanceof Uint8Array)) {
      const size = Math.max(length, 1);
      const parts = fixedParts(bodyStream(body, key), size, () => Buffer.allocUnsafe(size));
      for await (const part of this.#readBody(parts, key)) bytes = part;
    }
    const known = sha256 !== undefined && /^[0-9a-f]{64}$/.test(sha256) ? sha256 : undefined;
    const command = new PutObjectCommand({
      Bucket: this.#bucket,
      Key: key,
      Body: bytes,
      ContentLength: length,
      // Given, the SDK sends it instead of computing a CRC32 of its own.
      ...(known && this.#flexibleChecksums ? { ChecksumSHA256: Buffer.from(known, 'hex').toString('base64') } : {}),
    });
    if (known) {
      // The signer takes a payload hash already in the headers instead of hashing the body.
      command.middlewareStack.add(
        (next) => (args) => {
          const request = args.request as { headers?: Record<string, string> };
          if (request.headers) request.headers['x-amz-content-sha256'] = known;
          return next(args);
        },
        { step: 'build', name: 'ferryKnownPayloadSha256' },
      );
    }
    return unquote((await this.#send('put', key, () => this.#client.send(command))).ETag);
  }

  /**
   * Multipart upload that reads the next part only when fewer than queueSize are in flight, into
   * a recycled buffer: memory is partSize × queueSize whatever the object size. On any failure
   * the upload is aborted and nothing becomes visible.
   */
  async #putMultipart(key: string, body: Store.PutBody, length: number): Promise<string> {
    const partSize = Math.max(this.#partSize, Math.ceil(length / 10_000));
    const Bucket = this.#bucket;
    const create = new CreateMultipartUploadCommand({
      Bucket,
      Key: key,
      ...(this.#flexibleChecksums ? { ChecksumAlgorithm: 'CRC32' } : {}),
    });
    const UploadId = (await this.#send('put', key, () => this.#client.send(create))).UploadId;
    if (!UploadId) throw new TransientError(`${this.url}: put ${key}: the server returned no upload id`);
    const parts: CompletedPart[] = [];
    const free: Buffer[] = [];
    try {
      const source =
        body instanceof Uint8Array
          ? sliceParts(body, partSize)
          : fixedParts(bodyStream(body, key), partSize, () => free.pop() ?? Buffer.allocUnsafe(partSize));
      await forEachLimit(this.#readBody(source, key), this.#queueSize, async (part, index) => {
        const PartNumber = index + 1;
        const command = new UploadPartCommand({ Bucket, Key: key, UploadId, PartNumber, Body: part, ContentLength: part.length });
        const out = await this.#send('put', key, () => this.#client.send(command));
        parts[index] = { PartNumber, ETag: out.ETag, ...(out.ChecksumCRC32 ? { ChecksumCRC32: out.ChecksumCRC32 } : {}) };
        // Acknowledged, so the SDK is done with the buffer: the next part can be read into it.
        if (!(body instanceof Uint8Array) && part.length === partSize) free.push(part);
      });
      const complete = new CompleteMultipartUploadCommand({ Bucket, Key: key, UploadId, MultipartUpload: { Parts: parts } });
      return unquote((await this.#send('put', key, () => this.#client.send(complete))).ETag);
    } catch (err) {
      // forEachLimit has waited for the parts in flight, so the abort cannot race an upload.
      // Best effort: some servers lack AbortMultipartUpload; a bucket lifecycle rule removes leftovers.
      await this.#client.send(new AbortMultipartUploadCommand({ Bucket, Key: key, UploadId })).catch(() => {});
      throw err;
    }
  }

  /** The caller's body; a failure of that stream is reported as such, not as an S3 error. */
  async *#readBody(parts: AsyncIterable<Buffer> | Iterable<Buffer>, key: string): AsyncGenerator<Buffer> {
    try {
      yield* parts;
    } catch (err) {
      if (err instanceof FerryError) throw err;
      const why = String((err as Error)?.message ?? err).split('\n')[0];
      throw new TransientError(`${this.url}: put ${key}: reading the body failed: ${why}`, { cause: err });
    }
  }

  async delete(key: string): Promise<void> {
    assertValidKey(key);
    try {
      await this.#send('delete', key, () => this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: key })));
    } catch (err) {
      // Idempotent: a key that is already gone is success; a missing bucket is not.
      if (err instanceof NotFoundError && (err.cause as { name?: string } | undefined)?.name !== 'NoSuchBucket') return;
      throw err;
    }
  }

  /**
   * One ListObjectsV2 request per page. The cursor is the page's last key, sent back as
   * StartAfter: unlike a continuation token it never expires and any process can resume from it.
   */
  async *list(prefix: string, options: Store.ListOptions = {}): AsyncIterable<Store.ListPage> {
    const MaxKeys = Math.max(1, Math.min(options.pageSize ?? 1000, 1000));
    let after = options.cursor;
    for (;;) {
      const command = new ListObjectsV2Command({
        Bucket: this.#bucket,
        MaxKeys,
        ...(prefix ? { Prefix: prefix } : {}),
        ...(after !== undefined ? { StartAfter: after } : {}),
      });
      const out = await this.#send('list', prefix || undefined, () => this.#client.send(command));
      const items: Store.ObjectInfo[] = (out.Contents ?? []).flatMap((o) =>
        o.Key === undefined ? [] : [{ key: o.Key, size: o.Size ?? 0, etag: unquote(o.ETag), lastModified: o.LastModified?.getTime() ?? 0 }],
      );
      // S3 lists in UTF-8 byte order; s3rver walks its directories instead (`a/b` before
      // `a b/c`), so each page is put in order here.
      items.sort((a, b) => compareKeys(a.key, b.key));
      const last = items.at(-1)?.key;
      if (!out.IsTruncated || last === undefined) {
        yield { items };
        return;
      }
      after = last;
      yield { items, cursor: last };
    }
  }

  async close(): Promise<void> {
    if (this.#ownsClient) this.#client.destroy();
  }
}
