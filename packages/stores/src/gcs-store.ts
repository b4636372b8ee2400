import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { Readable, Transform } from 'node:stream';
import { text } from 'node:stream/consumers';
import { createGunzip } from 'node:zlib';
import {
  AccessDeniedError,
  CorruptError,
  FerryError,
  InvalidArgumentError,
  NotFoundError,
  PreconditionFailedError,
  RangeNotSatisfiableError,
  TransientError,
  UnauthorizedError,
  UnavailableError,
  VerifyingStream,
} from '@ferry/core';
import type { Bucket, GetFilesOptions } from '@google-cloud/storage';
import { Storage } from '@google-cloud/storage';
import { bodyLength, bodyStream } from './body.js';
import { createAgents, exchange, firstLine, httpError } from './gcs-http.js';
import { assertValidKey, compareKeys, resolveRange } from './keys.js';
import { UNREACHABLE } from './net-errors.js';
import type * as Store from './types.js';
import type { ObjectStore } from './types.js';

export interface GcsStoreOptions {
  /** An injected client; `endpoint` and `projectId` are then ignored. */
  storage?: Storage;
  bucket: string;
  /**
   * `http(s)://host[:port]` of a GCS-compatible JSON API (an emulator, a private endpoint).
   * Requests to a plain-http endpoint are sent without credentials, so no token ever crosses the
   * wire in clear and an emulator needs no Google account; https endpoints are authenticated.
   */
  endpoint?: string;
  projectId?: string;
  /** Objects at least this large go through a single-request resumable upload (default 32 MiB). */
  resumableThreshold?: number;
}

const MiB = 2 ** 20;
const OBJECT_FIELDS = 'name,size,generation,timeCreated,updated';

interface RawObject {
  name?: string;
  size?: string | number;
  generation?: string | number;
  timeCreated?: string;
  updated?: string;
  md5Hash?: string;
}

/** The object changed between reading its metadata and its bytes. */
class GenerationChanged extends Error {}

/** Google Cloud Storage (or a JSON-API emulator) behind the ObjectStore interface. */
export class GcsStore implements ObjectStore {
  readonly url: string;
  readonly capabilities: Store.StoreCapabilities = { scheme: 'gs', serverSideIfMatch: true, maxObjectSize: 5 * 2 ** 40 };
  readonly #storage: Storage;
  readonly #bucket: Bucket;
  readonly #name: string;
  readonly #threshold: number;
  readonly #agents = createAgents();

  constructor(options: GcsStoreOptions) {
    const { bucket, endpoint, projectId } = options;
    if (!bucket) throw new InvalidArgumentError('GcsStore: bucket is required');
    this.#threshold = options.resumableThreshold ?? 32 * MiB;
    if (!Number.isSafeInteger(this.#threshold) || this.#threshold < 1) throw new InvalidArgumentError('GcsStore: bad resumableThreshold');
    this.#storage =
      options.storage ??
      new Storage({
        ...(endpoint ? { apiEndpoint: endpoint.replace(/\/+$/, ''), useAuthWithCustomEndpoint: endpoint.startsWith('https:') } : {}),
        ...(projectId ? { projectId } : {}),
        // Callers retry (errors say whether it may help) and readers fall back to another tier:
        // one SDK retry after 2–3 s, not the default three with backoff, before an error is reported.
        retryOptions: { maxRetries: 1, maxRetryDelay: 3, totalTimeout: 20 },
      });
    this.#name = bucket;
    this.#bucket = this.#storage.bucket(bucket);
    this.url = `gs://${bucket}`;
  }

  #info(raw: RawObject): Store.ObjectInfo {
    // timeCreated is when this generation's bytes were written; `updated` also moves on metadata edits.
    const time = Date.parse(raw.timeCreated ?? raw.updated ?? '');
    return {
      key: raw.name ?? '',
      size: Number(raw.size ?? 0),
      etag: String(raw.generation ?? ''),
      lastModified: Number.isNaN(time) ? 0 : time,
    };
  }

  async head(key: string): Promise<Store.ObjectInfo> {
    assertValidKey(key);
    try {
      const [raw] = await this.#bucket.file(key).getMetadata({ fields: OBJECT_FIELDS });
      return this.#info(raw as RawObject);
    } catch (err) {
      throw this.#fail(err, 'head', key);
    }
  }

  async get(key: string, options: Store.GetOptions = {}): Promise<Store.GetResult> {
    for (let attempt = 1; ; attempt++) {
      const info = await this.head(key);
      if (options.ifMatch !== undefined && options.ifMatch !== info.etag) {
        throw new PreconditionFailedError(`${this.url}: ${key} changed (generation ${info.etag}, expected ${options.ifMatch})`);
      }
      const { start, end } = resolveRange(options.range, info.size, key);
      if (info.size === 0) return { info, start: 0, end: -1, body: Readable.from([]) };
      try {
        return { info, start, end, body: await this.#download(key, info, start, end) };
      } catch (err) {
        if (!(err instanceof GenerationChanged)) throw err;
        // Unguarded reads follow the object to its new version; guarded ones must not.
        if (options.ifMatch === undefined && attempt < 3) continue;
        throw new PreconditionFailedError(`${this.url}: ${key} changed while being read (expected generation ${info.etag})`, {
          cause: err,
        });
      }
    }
  }

  /**
   * Bytes start..end of exactly the generation `info` describes. The request carries
   * ifGenerationMatch (GCS answers 412 if the object changed), and the response's generation and
   * range are checked here too because emulators ignore preconditions: a changed object is an
   * error, never mixed bytes. Sent by this store rather than the SDK's read stream, whose cleanup
   * after an early destroy tears down the shared HTTP agent and with it every request in flight.
   */
  async #download(key: string, info: Store.ObjectInfo, start: number, end: number): Promise<Readable> {
    const whole = start === 0 && end === info.size - 1;
    const url = `${this.#storage.baseUrl}/b/${encodeURIComponent(this.#name)}/o/${encodeURIComponent(key)}?alt=media&ifGenerationMatch=${info.etag}`;
    let res: IncomingMessage;
    try {
      // gzip: the stored bytes, never a transcoded (decompressed) copy whose size is not info.size.
      const headers = {
        ...(await this.#authHeaders(url)),
        'accept-encoding': 'gzip',
        ...(whole ? {} : { range: `bytes=${start}-${end}` }),
      };
      res = await exchange(this.#agents, this.url, 'GET', url, headers);
    } catch (err) {
      throw this.#fail(err, 'get', key);
    }
    try {
      const status = res.statusCode ?? 0;
      if (status === 412 || status === 404) throw new GenerationChanged(`HTTP ${status}`);
      if (status >= 300) throw this.#fail(httpError(status, await text(res)), 'get', key);
      const served = res.headers['x-goog-generation'];
      if (served !== undefined && served !== info.etag) throw new GenerationChanged(`generation ${served}`);
      if (!whole || status === 206) {
        const range = res.headers['content-range'];
        const total = /\/(\d+)$/.exec(range ?? '')?.[1];
        if (total !== undefined && Number(total) !== info.size) throw new GenerationChanged(`size ${total}`);
        if (range !== `bytes ${start}-${end}/${info.size}`) {
          throw new TransientError(`${this.url}: get ${key}: server sent ${range ?? 'the whole object'}, asked for bytes ${start}-${end}`);
        }
      }
    } catch (err) {
      res.destroy();
      throw err;
    }
    // Objects stored gzip come as stored (info.size counts those bytes); on-the-fly gzip is undone.
    const source: Readable =
      res.headers['content-encoding'] === 'gzip' && res.headers['x-goog-stored-content-encoding'] === 'identity'
        ? res.pipe(createGunzip())
        : res;
    const body = new VerifyingStream({ length: end - start + 1, what: `${this.url}: get ${key}` });
    res.on('error', (err) => body.destroy(this.#fail(err, 'get', key)));
    if (source !== res)
      source.on('error', (err) => body.destroy(new CorruptError(`${this.url}: get ${key}: bad gzip body`, { cause: err })));
    res.on('aborted', () => body.destroy(new TransientError(`${this.url}: get ${key}: connection lost mid-body`)));
    body.on('close', () => res.destroy());
    return source.pipe(body);
  }

  async put(key: string, body: Store.PutBody): Promise<Store.PutResult> {
    assertValidKey(key);
    const length = bodyLength(body);
    if (length > this.capabilities.maxObjectSize) {
      throw new InvalidArgumentError(`${this.url}: put ${key}: ${length} bytes is over the 5 TiB GCS object limit`);
    }
    // md5 of what is sent, to compare with what the server says it stored.
    const md5 = createHash('md5');
    const tap = new Transform({
      transform(chunk: Buffer, _enc, done) {
        md5.update(chunk);
        done(null, chunk);
      },
    });
    const stream = bodyStream(body, key);
    stream.on('error', (err) => tap.destroy(err));
    // The body starts flowing (and may fail) before the request exists: exchange reads `errored`.
    tap.on('error', () => {});
    stream.pipe(tap);
    let stored: RawObject;
    try {
      stored = length < this.#threshold ? await this.#simpleUpload(key, tap, length) : await this.#resumableUpload(key, tap, length);
    } catch (err) {
      stream.destroy();
      tap.destroy();
      throw this.#fail(err, 'put', key);
    }
    const sent = md5.digest('base64');
    if (Number(stored.size ?? length) !== length || (stored.md5Hash !== undefined && stored.md5Hash !== sent)) {
      // Remove only the version this put created, never a concurrent writer's.
      await this.#bucket
        .file(key)
        .delete({ ifGenerationMatch: Number(stored.generation) })
        .catch(() => {});
      throw new CorruptError(
        `${this.url}: put ${key}: the server stored ${stored.size} bytes (md5 ${stored.md5Hash}), sent ${length} (md5 ${sent})`,
      );
    }
    return { etag: String(stored.generation) };
  }

  /** Authorization headers for a request the SDK does not send itself (none for plain-http endpoints). */
  #authHeaders(url: string): Promise<Record<string, string>> {
    return new Promise((resolve, reject) => {
      this.#storage.makeAuthenticatedRequest(
        { uri: url, headers: {} },
        { onAuthenticated: (err, opts) => (err ? reject(err) : resolve((opts?.headers ?? {}) as Record<string, string>)) },
      );
    });
  }

  /** One media upload. */
  async #simpleUpload(key: string, body: Readable, length: number): Promise<RawObject> {
    const base = this.#storage.apiEndpoint.replace(/\/+$/, '');
    const url = `${base}/upload/storage/v1/b/${encodeURIComponent(this.#name)}/o?uploadType=media&name=${encodeURIComponent(key)}`;
    return this.#uploaded(await exchange(this.#agents, this.url, 'POST', url, await this.#authHeaders(url), { body, length }));
  }

  /**
   * Session from the SDK, then all bytes in one PUT. The SDK's own streaming upload is not used
   * because a failing body leaves its request hanging open; chunked sessions also break the emulator.
   */
  async #resumableUpload(key: string, body: Readable, length: number): Promise<RawObject> {
    const [session] = await this.#bucket
      .file(key)
      .createResumableUpload({ metadata: { contentLength: length, contentType: 'application/octet-stream' } });
    try {
      // The session URI is its own credential: no auth header on the data request.
      return this.#uploaded(await exchange(this.#agents, this.url, 'PUT', session, {}, { body, length }));
    } catch (err) {
      // Best effort: a session left behind expires by itself after a week.
      exchange(this.#agents, this.url, 'DELETE', session, {}).then(
        (res) => res.resume(),
        () => {},
      );
      throw err;
    }
  }

  /** The object an upload created, from its response. */
  async #uploaded(res: IncomingMessage): Promise<RawObject> {
    const reply = await text(res);
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300) throw httpError(status, reply);
    try {
      return JSON.parse(reply) as RawObject;
    } catch (err) {
      throw new TransientError(`${this.url}: unreadable upload response (HTTP ${status})`, { cause: err });
    }
  }

  async delete(key: string): Promise<void> {
    assertValidKey(key);
    try {
      await this.#bucket.file(key).delete();
    } catch (err) {
      // Idempotent: a key that is already gone is success; a missing bucket is not.
      if (statusOf(err) === 404 && !isMissingBucket(err)) return;
      throw this.#fail(err, 'delete', key);
    }
  }

  /**
   * One objects.list request per page. The cursor is the page's last key, sent back as
   * startOffset (never expires, any process can resume from it); keys up to it are also skipped
   * here, which makes resuming correct on servers that ignore startOffset (the emulator), and a
   * page token that restarts the listing (the emulator's, when its key was deleted) harmless.
   */
  async *list(prefix: string, options: Store.ListOptions = {}): AsyncIterable<Store.ListPage> {
    const pageSize = Math.max(1, Math.min(options.pageSize ?? 1000, 1000));
    let after = options.cursor;
    let pageToken: string | undefined;
    for (;;) {
      let response: { items?: RawObject[]; nextPageToken?: string };
      try {
        const query: GetFilesOptions & { fields: string } = {
          autoPaginate: false,
          maxResults: pageSize,
          fields: `items(${OBJECT_FIELDS}),nextPageToken`,
          ...(prefix ? { prefix } : {}),
          ...(pageToken !== undefined ? { pageToken } : after !== undefined ? { startOffset: after } : {}),
        };
        const [, , raw] = await this.#bucket.getFiles(query);
        response = (raw ?? {}) as typeof response;
      } catch (err) {
        throw this.#fail(err, 'list', prefix || undefined);
      }
      const items = (response.items ?? [])
        .map((raw) => this.#info(raw))
        // Zero-byte `dir/` objects are folder markers made by consoles, not data.
        .filter((item) => !item.key.endsWith('/') && (after === undefined || compareKeys(item.key, after) > 0))
        // GCS lists in UTF-8 byte order; the emulator sorts UTF-16 code units.
        .sort((a, b) => compareKeys(a.key, b.key));
      pageToken = response.nextPageToken || undefined;
      const last = items.at(-1)?.key;
      if (pageToken === undefined) {
        yield { items };
        return;
      }
      if (last === undefined) continue; // a page wholly at or before the cursor
      after = last;
      yield { items, cursor: last };
    }
  }

  async close(): Promise<void> {
    this.#agents.http.destroy();
    this.#agents.https.destroy();
  }

  /** SDK, HTTP and network errors as core errors with one-line messages (server text never spans lines). */
  #fail(err: unknown, op: string, key?: string): Error {
    if (err instanceof FerryError) return err;
    const status = statusOf(err);
    const errno = errnoOf(err);
    const message = String((err as { message?: unknown } | undefined)?.message ?? err);
    const what = key === undefined ? `${this.url}: ${op}` : `${this.url}: ${op} ${key}`;
    const cause = { cause: safeCause(err) };
    if (status === 404) {
      if (op === 'list' || isMissingBucket(err)) return new NotFoundError(`${this.url}: bucket "${this.#name}" does not exist`, cause);
      return new NotFoundError(`${this.url}: no object ${key ?? ''}`.trimEnd(), cause);
    }
    if (status === 412) return new PreconditionFailedError(`${what}: the object changed (precondition failed)`, cause);
    if (status === 416) return new RangeNotSatisfiableError(`${what}: range is past the end of the object`, cause);
    if (/default credentials|could not load the default|refresh access token|invalid_grant/i.test(message)) {
      return new UnauthorizedError(`${this.url}: no usable Google credentials (application default credentials)`, cause);
    }
    if (status === 401)
      return new UnauthorizedError(`${this.url}: not authorized (401): no Google credentials found, or they were rejected`, cause);
    if (status === 413) return new InvalidArgumentError(`${what}: the server refused the object as too large (413)`, cause);
    if (status === 403) return new AccessDeniedError(`${what}: access denied (403)`, cause);
    if (errno && UNREACHABLE.has(errno)) {
      return new UnavailableError(`${this.url}: cannot reach ${new URL(this.#storage.apiEndpoint).origin} (${errno})`, cause);
    }
    if (errno || /socket hang up|network|timed? ?out/i.test(message)) {
      return new TransientError(`${what}: connection failed (${errno ?? firstLine(message)})`, cause);
    }
    if (status === 503) return new UnavailableError(`${what}: the service is unavailable (503); try again later`, cause);
    if (status === 408 || status === 429 || (status !== undefined && status >= 500)) {
      return new TransientError(`${what}: the server answered ${status}; try again later`, cause);
    }
    if (status !== undefined && status >= 400)
      return new InvalidArgumentError(`${what}: refused (${status}: ${firstLine(message)})`, cause);
    return new TransientError(`${what}: ${firstLine(message)}`, cause);
  }
}

/** HTTP status of an SDK ApiError (`code`), a GaxiosError (`response.status`) or ours (`status`). */
function statusOf(err: unknown): number | undefined {
  const e = (err ?? {}) as { code?: unknown; status?: unknown; response?: { status?: unknown } };
  for (const value of [e.code, e.status, e.response?.status]) {
    if (typeof value === 'number' && value >= 100 && value < 600) return value;
    if (typeof value === 'string' && /^[1-5]\d\d$/.test(value)) return Number(value);
  }
  return undefined;
}

/** The errno of a Node network error, also when wrapped (fetch causes, happy-eyeballs AggregateErrors). */
function errnoOf(err: unknown): string | undefined {
  for (let e = err as { code?: unknown; cause?: unknown; errors?: unknown[] } | undefined, depth = 0; e && depth < 4; depth++) {
    if (typeof e.code === 'string' && /^E[A-Z]+$/.test(e.code)) return e.code;
    e = (Array.isArray(e.errors) ? e.errors[0] : e.cause) as typeof e;
  }
  return undefined;
}

function isMissingBucket(err: unknown): boolean {
  return /bucket does not exist|no such bucket/i.test(String((err as { message?: unknown } | undefined)?.message ?? ''));
}

/**
 * SDK errors carry the request they came from (`response.request.headers`, gaxios `config`), bearer
 * token included; loggers serialize causes, so only the identifying fields are kept.
 */
function safeCause(err: unknown): unknown {
  if (!err || typeof err !== 'object' || !('response' in err || 'config' in err || 'request' in err)) return err;
  const { name, message, code, errors } = err as { name?: string; message?: string; code?: unknown; errors?: unknown };
  return Object.assign(new Error(message), { name: name ?? 'Error', code, ...(Array.isArray(errors) ? { errors } : {}) });
}
