import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { S3Client } from '@aws-sdk/client-s3';
import { NotFoundError, UnavailableError } from '@ferry/core';
import { createStore, PrefixStore } from '@ferry/stores';
import { S3Store } from '@ferry/stores/s3';
import { afterAll, describe, expect, it } from 'vitest';
import { digestStream, randomStream, readStream } from '../support/bytes.js';
import { uniqueName } from '../support/random.js';
import { createS3Bucket, S3RVER_CREDENTIALS, s3Endpoint, s3Store, s3StoreFor, s3Url, useS3Env } from '../support/s3.js';
import { freePort } from '../support/servers/free-port.js';
import { storeConformance } from '../support/store-conformance.js';

const MiB = 2 ** 20;

storeConformance('s3', async () => s3StoreFor());

/** A TCP proxy to `target` that closes each connection after `limit` response bytes: a real broken socket. */
async function cuttingProxy(target: URL, limit: number): Promise<{ endpoint: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    let passed = 0;
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => sockets.delete(s));
    }
    client.pipe(upstream);
    upstream.on('data', (data: Buffer) => {
      passed += data.length;
      client.write(data);
      if (passed > limit) {
        client.destroy();
        upstream.destroy();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    endpoint: `http://127.0.0.1:${port}`,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a failure');
}

describe('S3Store against s3rver', () => {
  const opened: { close?(): Promise<void> }[] = [];
  afterAll(async () => {
    await Promise.all(opened.map((s) => s.close?.()));
  });

  it('puts an object above the multipart threshold in parts and reads it back byte-identical', async () => {
    const store = s3StoreFor(uniqueName('mp'), { multipartThreshold: 20 * MiB, partSize: 5 * MiB, queueSize: 2 });
    opened.push(store);
    const length = 23 * MiB + 12_345;
    const { stream, sha256 } = randomStream(length, 256 * 1024);
    const { etag } = await store.put('big/object', { stream, length });
    expect((await store.head('big/object')).etag).toBe(etag);
    const got = await store.get('big/object');
    expect(got.info).toMatchObject({ size: length, etag });
    expect(await digestStream(got.body)).toEqual({ sha256: await sha256, length });
    const tail = await store.get('big/object', { range: { start: 21 * MiB, end: 22 * MiB - 1 } });
    expect((await readStream(tail.body)).length).toBe(MiB);
  });

  it('commits nothing when a multipart body is shorter or longer than declared', async () => {
    const store = s3StoreFor(uniqueName('mp'), { multipartThreshold: 5 * MiB, partSize: 5 * MiB });
    opened.push(store);
    const short = await failure(store.put('mp/short', { stream: randomStream(12 * MiB).stream, length: 13 * MiB }));
    expect(short).toMatchObject({ code: 'CORRUPT' });
    const long = await failure(store.put('mp/long', { stream: randomStream(12 * MiB).stream, length: 11 * MiB }));
    expect(long).toMatchObject({ code: 'CORRUPT' });
    expect(await failure(store.head('mp/short'))).toBeInstanceOf(NotFoundError);
    expect(await failure(store.head('mp/long'))).toBeInstanceOf(NotFoundError);
  });

  it('puts a large in-memory buffer as multipart without copying it whole', async () => {
    const store = s3StoreFor(uniqueName('mp'), { multipartThreshold: 6 * MiB, partSize: 5 * MiB });
    opened.push(store);
    const bytes = randomBytes(11 * MiB);
    const { etag } = await store.put('mp/buffer', bytes);
    const got = await store.get('mp/buffer', { ifMatch: etag });
    expect((await readStream(got.body)).equals(bytes)).toBe(true);
  });

  it('serves the exact range asked for, also where s3rver sends more (bytes=0-0)', async () => {
    const store = s3StoreFor();
    opened.push(store);
    const bytes = randomBytes(5000);
    await store.put('r/object', bytes);
    for (const [start, end] of [
      [0, 0],
      [0, 1],
      [4999, 4999],
    ] as const) {
      const got = await store.get('r/object', { range: { start, end } });
      expect([got.start, got.end, got.info.size]).toEqual([start, end, 5000]);
      expect((await readStream(got.body)).equals(bytes.subarray(start, end + 1))).toBe(true);
    }
    const empty = await store.put('r/empty', Buffer.alloc(0));
    const got = await store.get('r/empty', { ifMatch: empty.etag });
    expect([got.start, got.end, got.info.size]).toEqual([0, -1, 0]);
    expect((await readStream(got.body)).length).toBe(0);
    expect(await failure(store.get('r/empty', { range: { start: 0 } }))).toMatchObject({ code: 'RANGE_NOT_SATISFIABLE' });
  });

  it('opens s3:// URLs through createStore, with credentials from the environment', async () => {
    const restore = useS3Env();
    const prefix = uniqueName('url');
    const store = createStore(s3Url(prefix));
    opened.push(store);
    try {
      const { etag } = await store.put('a/b.bin', Buffer.from('via url'));
      expect(await store.head('a/b.bin')).toMatchObject({ key: 'a/b.bin', size: 7, etag });
      expect((await readStream((await store.get('a/b.bin')).body)).toString()).toBe('via url');
      // The prefix is really a prefix of the bucket: the whole-bucket store sees the full key.
      expect((await s3Store().head(`${prefix}/a/b.bin`)).etag).toBe(etag);
      const keys: string[] = [];
      for await (const page of store.list('')) keys.push(...page.items.map((i) => i.key));
      expect(keys).toEqual(['a/b.bin']);
      await store.delete('a/b.bin');
      expect(await failure(store.head('a/b.bin'))).toBeInstanceOf(NotFoundError);
      expect(store.url).not.toContain('S3RVER');
    } finally {
      restore();
    }
  });

  it('reports an unreachable endpoint as UNAVAILABLE in one line, without secrets', async () => {
    const port = await freePort();
    const store = new S3Store({
      bucket: 'ferry-test',
      endpoint: `http://127.0.0.1:${port}`,
      region: 'us-east-1',
      forcePathStyle: true,
      checksums: 'when_required',
      credentials: { accessKeyId: 'AKIDSECRETID', secretAccessKey: 'do-not-print-me' },
    });
    opened.push(store);
    for (const call of [
      () => store.head('x'),
      () => store.get('x'),
      () => store.put('x', Buffer.from('x')),
      () => store.list('')[Symbol.asyncIterator]().next(),
    ]) {
      const err = await failure(call());
      expect(err).toBeInstanceOf(UnavailableError);
      expect(err.message).toBe(`s3://ferry-test: cannot reach http://127.0.0.1:${port} (ECONNREFUSED)`);
      expect(err.cause).toBeDefined();
      expect(`${err.message}${String(err)}`).not.toMatch(/AKIDSECRETID|do-not-print-me|\n/);
    }
  });

  it('reports a missing bucket as NOT_FOUND naming the bucket', async () => {
    const store = s3Store({ bucket: 'ferry-no-such-bucket' });
    opened.push(store);
    const expected = 's3://ferry-no-such-bucket: bucket "ferry-no-such-bucket" does not exist';
    for (const call of [
      () => store.get('k'),
      () => store.put('k', Buffer.from('x')),
      () => store.delete('k'),
      () => store.list('')[Symbol.asyncIterator]().next(),
    ]) {
      const err = await failure(call());
      expect(err).toBeInstanceOf(NotFoundError);
      expect(err.message).toBe(expected);
    }
  });

  it('puts a chunk whose sha256 it is told without hashing it again: the payload hash, and x-amz-checksum-sha256 with flexible checksums', async () => {
    const bytes = randomBytes(100_000);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const store = s3StoreFor();
    opened.push(store);
    await store.put('known/one', bytes, { sha256 });
    expect((await readStream((await store.get('known/one')).body)).equals(bytes)).toBe(true);

    // What leaves the SDK after signing, stopped there. A stand-in digest shows the SDK computed
    // nothing: a hash of its own would be the real one.
    const standIn = 'ab'.repeat(32);
    const { endpoint, bucket } = s3Endpoint();
    const sent = async (checksums: 'when_required' | 'when_supported', known?: string) => {
      const client = new S3Client({
        endpoint,
        region: 'us-east-1',
        forcePathStyle: true,
        credentials: S3RVER_CREDENTIALS,
        ...(checksums === 'when_required' ? { requestChecksumCalculation: 'WHEN_REQUIRED' as const } : {}),
      });
      let headers: Record<string, string> = {};
      client.middlewareStack.add(
        () => async (args) => {
          headers = { ...(args.request as { headers: Record<string, string> }).headers };
          throw new Error('stopped before sending');
        },
        { step: 'deserialize', name: 'capture' },
      );
      const s3 = new S3Store({ bucket, client, checksums });
      await expect(s3.put('known/two', bytes, known ? { sha256: known } : {})).rejects.toThrow();
      client.destroy();
      return Object.fromEntries(Object.entries(headers).filter(([name]) => name.startsWith('x-amz-c')));
    };
    expect(await sent('when_required')).toEqual({ 'x-amz-content-sha256': sha256 });
    expect(await sent('when_required', standIn)).toEqual({ 'x-amz-content-sha256': standIn });
    expect(await sent('when_supported', standIn)).toEqual({
      'x-amz-content-sha256': standIn,
      'x-amz-checksum-sha256': Buffer.from(standIn, 'hex').toString('base64'),
    });
    expect(Object.keys(await sent('when_supported'))).toContain('x-amz-checksum-crc32');
  });

  it('works on a bucket of its own', async () => {
    const store = s3Store({ bucket: await createS3Bucket() });
    opened.push(store);
    await store.put('only', Buffer.from('1'));
    const keys: string[] = [];
    for await (const page of store.list('')) keys.push(...page.items.map((i) => i.key));
    expect(keys).toEqual(['only']);
  });

  it('survives a key segment s3rver cannot store (the request fails, the server lives on)', async () => {
    const store = s3StoreFor();
    opened.push(store);
    const err = await failure(store.put(`long/${'x'.repeat(300)}`, Buffer.from('x')));
    expect(err).toMatchObject({ code: 'INVALID_ARGUMENT' });
    await store.put('long/ok', { stream: Readable.from([Buffer.from('ok')]), length: 2 });
    expect((await store.head('long/ok')).size).toBe(2);
  });

  it('turns a connection lost in the middle of a body into TRANSIENT on the stream', async () => {
    const prefix = uniqueName('cut');
    const direct = s3StoreFor(prefix);
    opened.push(direct);
    await direct.put('object', randomBytes(4 * MiB));
    const proxy = await cuttingProxy(new URL(s3Endpoint().endpoint), 256 * 1024);
    try {
      const store = new PrefixStore({ inner: s3Store({ endpoint: proxy.endpoint }), prefix });
      opened.push(store);
      const got = await store.get('object');
      const err = await failure(readStream(got.body));
      expect(err).toMatchObject({ code: 'TRANSIENT' });
      expect(err.message).toMatch(/^s3:\/\/ferry-test: get .*object: connection lost after \d+ of 4194304 bytes$/);
    } finally {
      await proxy.close();
    }
  });
});
