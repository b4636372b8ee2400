import { createHash, randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, S3ServiceException } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { type ChunkId, chunkKey, type Logger, nativeChunkId, sha256Hex } from '@ferry/core';
import { CopyQueue, QUEUES, queuePrefix } from '@ferry/jobs';
import { Meta, MirrorMeta } from '@ferry/meta';
import { queueBackfill } from '@ferry/replicator';
import { Queue, UnrecoverableError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COPY_QUEUE } from '../support/defaults.js';
import { errorCode, type GatewayFixture, rawRequest, startGateway } from '../support/gateway.js';
import { uniqueName } from '../support/random.js';
import { waitFor } from '../support/wait.mjs';

// Keys from the network never reach outside the volume; a client that goes away stops the reads;
// a mirror serves through the source; nothing secret is logged.

const SECRET = Buffer.from('SECRET-BYTES-OUTSIDE-THE-VOLUME');
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** A Logger that keeps every line it is given (with its bindings) as JSON text. */
function recordingLogger(lines: string[], bindings: Record<string, unknown> = {}): Logger {
  const write = (obj: object | string, msg?: string) => {
    lines.push(
      JSON.stringify(typeof obj === 'string' ? { ...bindings, msg: obj } : { ...bindings, ...obj, msg }, (_k, v) =>
        v instanceof Error ? v.message : v,
      ),
    );
  };
  return { error: write, warn: write, info: write, debug: write, child: (more) => recordingLogger(lines, { ...bindings, ...more }) };
}

describe('traversal', () => {
  let fx: GatewayFixture;
  let open: GatewayFixture;
  let other: string;

  beforeAll(async () => {
    [fx, open] = await Promise.all([startGateway(), startGateway({ anonymous: true })]);
    await fx.put('/models', { 'x.bin': Buffer.from('inside') });
    await open.put('/models', { 'x.bin': Buffer.from('inside') });
    // Another volume in the same Redis database, and a file next to the store on disk.
    other = uniqueName('gw-other');
    const meta = new Meta({ redis: open.source.redis, volume: other });
    const bytes = SECRET;
    const id = nativeChunkId(sha256Hex(bytes));
    await open.source.store.put(chunkKey(id), bytes);
    await meta.commit([
      { path: '/secret.bin', size: bytes.length, mtime: Date.now(), chunkSize: 1 << 20, chunks: [{ id, size: bytes.length }] },
    ]);
    await writeFile(join(open.root, 'outside.txt'), SECRET);
  });

  afterAll(async () => {
    await Promise.all([fx?.close(), open?.close()]);
  });

  it('raw paths with "..", "%2e%2e", encoded slashes, NUL, "." and "//" get 400 or 404 and no foreign byte', async () => {
    const v = open.volume;
    const cases: Array<[string, number, string]> = [
      [`/${v}/../${other}/secret.bin`, 400, 'InvalidArgument'],
      [`/${v}/models/../../${other}/secret.bin`, 400, 'InvalidArgument'],
      [`/${v}/%2e%2e/${other}/secret.bin`, 400, 'InvalidArgument'],
      [`/${v}/%2E%2E%2F${other}%2Fsecret.bin`, 400, 'InvalidArgument'],
      [`/${v}/models%2F..%2F..%2Foutside.txt`, 400, 'InvalidArgument'],
      [`/${v}/..%2F..%2F..%2Foutside.txt`, 400, 'InvalidArgument'],
      [`/${v}/%2Fetc%2Fpasswd`, 400, 'InvalidArgument'],
      [`/${v}//models/x.bin`, 400, 'InvalidArgument'],
      [`/${v}/models/./x.bin`, 400, 'InvalidArgument'],
      [`/${v}/models/x.bin%00.txt`, 400, 'InvalidArgument'],
      [`/${v}/models%5C..%5C..%5Coutside.txt`, 400, 'InvalidArgument'],
      [`/${v}/models/%zz`, 400, 'InvalidURI'],
      [`/${v}/%252e%252e/${other}/secret.bin`, 404, 'NoSuchKey'],
      [`/${v}/models/x.bin/`, 404, 'NoSuchKey'],
      [`/${other}/secret.bin`, 404, 'NoSuchBucket'],
      [`/../${other}/secret.bin`, 404, 'NoSuchBucket'],
      [`/%2e%2e/${other}/secret.bin`, 404, 'NoSuchBucket'],
      [`/-/../${other}/secret.bin`, 404, 'NoSuchBucket'],
    ];
    for (const [path, status, code] of cases) {
      for (const method of ['GET', 'HEAD']) {
        const res = await rawRequest(open.port, path, { method });
        expect([res.status, method === 'GET' ? errorCode(res.body) : code], `${method} ${path}`).toEqual([status, code]);
        expect(res.body.includes(SECRET), path).toBe(false);
      }
    }
    // The volume itself is readable, so the refusals above are about the keys.
    expect((await rawRequest(open.port, `/${v}/models/x.bin`)).body.toString()).toBe('inside');
  });

  it('listing prefixes that climb out list nothing', async () => {
    for (const prefix of ['..', '../', `../${other}/`, '%2e%2e/', '/', '//', 'models/../']) {
      const res = await rawRequest(open.port, `/${open.volume}?list-type=2&prefix=${encodeURIComponent(prefix)}`);
      expect(res.status, prefix).toBe(200);
      expect(res.body.toString(), prefix).not.toContain('secret');
      expect(res.body.toString(), prefix).toContain('<KeyCount>0</KeyCount>');
    }
  });

  it('signed requests for such keys are refused the same way', async () => {
    const s3 = fx.client();
    for (const Key of ['../x.bin', 'models/../../x.bin', '.', 'models/./x.bin', 'a//b', 'x\u0000y']) {
      const outcome = await s3.send(new GetObjectCommand({ Bucket: fx.volume, Key })).then(
        () => 'served',
        (err) => (err instanceof S3ServiceException ? `${err.name} ${err.$metadata.httpStatusCode}` : String(err)),
      );
      expect(outcome, JSON.stringify(Key)).toBe('InvalidArgument 400');
    }
  });
});

describe('streaming', () => {
  let fx: GatewayFixture;
  const size = 48 << 20;
  const bytes = randomBytes(size);

  beforeAll(async () => {
    fx = await startGateway({ anonymous: true, memoryBytes: 0 });
    await fx.put('/big', { 'shard.bin': bytes });
  });

  afterAll(async () => {
    await fx?.close();
  });

  const fetched = () => Object.values(fx.gateway.reader.chunks.stats.chunks).reduce((a, b) => a + b, 0);

  it('a client that goes away stops the reads from the store', async () => {
    const before = fetched();
    await new Promise<void>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: fx.port, path: `/${fx.volume}/big/shard.bin` }, (res) => {
        let got = 0;
        res.on('data', (b: Buffer) => {
          got += b.length;
          if (got >= 2 << 20) {
            req.destroy();
            resolve();
          }
        });
        res.on('error', () => {});
      });
      req.on('error', (err) => (err.message.includes('socket hang up') ? resolve() : reject(err)));
      req.end();
    });
    // Fetches already in flight when the client left may still land; then nothing more.
    await new Promise((r) => setTimeout(r, 1000));
    const after = fetched() - before;
    await new Promise((r) => setTimeout(r, 500));
    expect(fetched() - before, 'reads went on after the client left').toBe(after);
    // 48 chunks in the file. Measured 10-12: the 2 read, the prefetch window (4) and what the
    // loopback socket buffers hold; half the file leaves room for a busy machine.
    expect(after).toBeLessThan(24);
  });

  it('a chunk no tier has: an S3 error before the first byte, a cut connection after it', async () => {
    const [entry] = await fx.put('/broken', { 'a.bin': randomBytes(3 << 20) });
    const chunks = entry?.chunks ?? [];
    await rm(join(fx.root, 'src', chunkKey(chunks[2]?.id as ChunkId)));
    const head = await fetch(`${fx.endpoint}/${fx.volume}/broken/a.bin`, { headers: { range: 'bytes=-10' } });
    expect(head.status).toBe(500);
    expect(errorCode(Buffer.from(await head.arrayBuffer()))).toBe('InternalError');
    expect(head.headers.get('content-range')).toBeNull();
    const cut = await fetch(`${fx.endpoint}/${fx.volume}/broken/a.bin`);
    expect(cut.status).toBe(200);
    await expect(cut.arrayBuffer()).rejects.toThrow();
  });

  it('a full read streams the file intact', async () => {
    const res = await fetch(`${fx.endpoint}/${fx.volume}/big/shard.bin`);
    expect(res.headers.get('content-length')).toBe(String(size));
    expect(sha(new Uint8Array(await res.arrayBuffer()))).toBe(sha(bytes));
  });
});

describe('a mirror region', () => {
  let fx: GatewayFixture;
  let chunks: ChunkId[];
  const lines: string[] = [];
  const shard = randomBytes(5 << 20);

  beforeAll(async () => {
    fx = await startGateway({ mirror: true, logger: recordingLogger(lines) });
    const [entry] = await fx.put('/m', { 'shard.bin': shard });
    chunks = (entry?.chunks ?? []).map((c) => c.id);
    await fx.syncMirror();
  });

  afterAll(async () => {
    await fx?.close();
  });

  /** A copy job of `chunk` that failed for good and stayed in the queue, as jobs did before failed jobs were removed. */
  async function failedCopyJob(chunk: ChunkId): Promise<void> {
    const mirrorRedis = fx.mirror?.redis;
    if (!mirrorRedis) throw new Error('the fixture has no mirror');
    const redis = mirrorRedis.duplicate({ maxRetriesPerRequest: null });
    const prefix = queuePrefix(fx.volume);
    const queue = new Queue(QUEUES.copy, { connection: redis, prefix });
    await queue.add('copy', { chunk, size: 1 << 20 }, { jobId: chunk, attempts: 1, removeOnFail: false });
    const worker = new Worker(
      QUEUES.copy,
      async () => {
        throw new UnrecoverableError('the source store was unreachable');
      },
      { connection: redis, prefix },
    );
    try {
      await waitFor(async () => (await queue.getJobState(chunk)) === 'failed', 10_000, 'the copy job to fail');
    } finally {
      await worker.close();
      await queue.close();
      redis.disconnect();
    }
  }

  it('serves files whose chunks are only in the source, and queues their copy (replacing a copy that had failed)', async () => {
    await failedCopyJob(chunks[2] as ChunkId);
    const s3 = fx.client();
    const out = await s3.send(new GetObjectCommand({ Bucket: fx.volume, Key: 'm/shard.bin' }));
    expect(sha((await out.Body?.transformToByteArray()) ?? new Uint8Array())).toBe(sha(shard));
    const { bytes } = fx.gateway.reader.chunks.stats;
    expect(bytes['source:src']).toBe(shard.length);
    expect(bytes['store:eu']).toBe(0);
    // The gateway asks for copies in the region's backfill list (its Redis user may write no other
    // key); the replicator's backfill step checks them and queues a copy job of every chunk, waiting
    // to run: the failed one was replaced, not ignored.
    const mirror = new MirrorMeta({ redis: fx.mirror?.redis as Redis, volume: fx.volume });
    const queue = new CopyQueue({ connection: fx.mirror?.redis as Redis, volume: fx.volume, ...COPY_QUEUE });
    try {
      const redis = fx.mirror?.redis as Redis;
      await waitFor(async () => (await redis.llen(mirror.keys.backfill)) >= chunks.length, 10_000, 'the backfill requests');
      expect(await queueBackfill(fx.mirror?.meta as Meta, mirror, queue, 500)).toEqual({
        taken: chunks.length,
        queued: chunks.length,
        skipped: 0,
        invalid: 0,
      });
      expect(await Promise.all(chunks.map((c) => queue.queue.getJobState(c)))).toEqual(chunks.map(() => 'prioritized'));
      // What a hostile reader could push instead: the copy is made from the region's own entry
      // (a wrong size is not taken), a chunk the file does not have and junk are refused, a file
      // that is not there is skipped, and an oversized request is dropped unread.
      const first = chunks[0] as ChunkId;
      await queue.queue.remove(first);
      await redis.lpush(
        mirror.keys.backfill,
        JSON.stringify({ chunk: first, path: '/m/shard.bin', size: 1 }),
        JSON.stringify({ chunk: first, path: '/m/not-there.bin' }),
        JSON.stringify({ chunk: nativeChunkId('0'.repeat(64)), path: '/m/shard.bin' }),
        JSON.stringify({ chunk: '../../etc/passwd', path: '/m/shard.bin' }),
        JSON.stringify({ chunk: first, path: `/m/${'x'.repeat(4000)}` }),
      );
      expect(await queueBackfill(fx.mirror?.meta as Meta, mirror, queue, 500)).toEqual({ taken: 4, queued: 1, skipped: 1, invalid: 2 });
      expect((await queue.queue.getJob(first))?.data).toMatchObject({ chunk: first, size: 1 << 20 });
    } finally {
      await queue.close();
    }
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: fx.volume, Prefix: 'm/' }));
    expect(listed.Contents?.map((c) => c.Key)).toEqual(['m/shard.bin']);
  });

  it('logs no signature, no Authorization header and no secret', async () => {
    const s3 = fx.client();
    const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket: fx.volume, Key: 'm/shard.bin' }), { expiresIn: 60 });
    await (await fetch(url)).arrayBuffer();
    await (await fetch(url.replace('X-Amz-Signature=', 'X-Amz-Signature=0'))).arrayBuffer();
    await rawRequest(fx.port, `/${fx.volume}/m/shard.bin`, {
      headers: {
        authorization: `AWS4-HMAC-SHA256 Credential=x/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=${'ab'.repeat(32)}`,
      },
    });
    const signature = new URL(url).searchParams.get('X-Amz-Signature') as string;
    const text = lines.join('\n');
    expect(lines.filter((l) => l.includes('"operation":"GetObject"')).length).toBeGreaterThanOrEqual(2);
    for (const secret of [signature, fx.secret, 'ab'.repeat(32), 'X-Amz-Signature', 'AWS4-HMAC-SHA256']) {
      expect(text.includes(secret), secret).toBe(false);
    }
  });
});
