import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3ServiceException } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { build as buildCacheNode, createCacheMetrics, DiskCache, listen } from '@ferry/cache-node';
import { type ChunkId, nativeChunkId, sha256Hex } from '@ferry/core';
import { build as buildApi, type WarmFlows, warmupRoutes } from '@ferry/replicator';
import type { FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_LIMITS, cacheLimits } from '../support/defaults.js';
import { errorCode, type GatewayFixture, startGateway } from '../support/gateway.js';

// What a request may do is decided by the route fastify matched, never by how its URL is spelled:
// percent-encoded letters (either case of hex), encoded slashes and double encoding either name
// the same route (and need what it needs) or no route at all; with a weaker token nothing changes
// either way. Every request here goes over a real socket with its path sent byte for byte.

interface Sent {
  status: number;
  bytes: Buffer;
  body: string;
}

/** One request with the path exactly as given (fetch would normalise it). */
function send(port: number, method: string, path: string, headers: Record<string, string> = {}, body?: Buffer): Promise<Sent> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        headers: { ...(body ? { 'content-type': 'application/octet-stream', 'content-length': String(body.length) } : {}), ...headers },
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (b: Buffer) => parts.push(b));
        res.on('end', () => {
          const bytes = Buffer.concat(parts);
          resolve({ status: res.statusCode ?? 0, bytes, body: bytes.toString('utf8') });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const basic = (password: string) => ({ authorization: `Basic ${Buffer.from(`u:${password}`).toString('base64')}` });

/** Every percent-encoded byte of `text` as %XX in upper- and in lower-case hex. */
function encodeAll(text: string): [string, string] {
  const upper = [...Buffer.from(text)].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join('');
  return [upper, upper.toLowerCase()];
}

describe('cache node: the write routes under every spelling', () => {
  const READ = `read-${randomBytes(8).toString('hex')}`;
  const WRITE = `write-${randomBytes(8).toString('hex')}`;
  const bytes = randomBytes(32 * 1024);
  const id = nativeChunkId(sha256Hex(bytes));
  const hex = id.slice('sha256-'.length);
  const held = randomBytes(16 * 1024);
  const heldId = nativeChunkId(sha256Hex(held));
  let dir: string;
  let cache: DiskCache;
  let metrics: ReturnType<typeof createCacheMetrics>;
  let app: FastifyInstance;
  let port: number;
  /** Chunks the node asked its upstream for: a refused fill must ask for none. */
  const upstreamAsked: ChunkId[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-encoded-'));
    metrics = createCacheMetrics();
    cache = await DiskCache.open({ dir, capacity: 1 << 24 });
    app = buildCacheNode({
      cache,
      tokens: { read: READ, write: WRITE },
      maxChunkBytes: 1 << 20,
      limits: cacheLimits(),
      metrics,
      upstream: async (want) => {
        upstreamAsked.push(want.id);
        return want.id === id ? bytes : undefined;
      },
    });
    ({ port } = await listen(app, '127.0.0.1:0'));
    expect((await send(port, 'PUT', `/chunks/${heldId}`, bearer(WRITE), held)).status).toBe(201);
  });

  afterAll(async () => {
    await app?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** What the node holds: nothing but the chunk stored above, nothing in flight, nothing asked upstream. */
  async function unchanged(what: string) {
    expect(cache.has(id), what).toBe(false);
    expect(cache.has(heldId), what).toBe(true);
    expect(cache.count, what).toBe(1);
    expect(upstreamAsked, what).toEqual([]);
    expect((await metrics.registry.getSingleMetric('ferry_cache_inflight_bytes')?.get())?.values[0]?.value ?? 0, what).toBe(0);
    expect((await send(port, 'HEAD', `/chunks/${id}`, bearer(READ))).status, what).toBe(404);
  }

  const [fillUpper, fillLower] = encodeAll('fill');
  const [chunksUpper, chunksLower] = encodeAll('chunks');
  const [shaUpper] = encodeAll('sha256-');

  /** [method, path, status with the read token]: 403 where the path is the write route, 404 where it is no route. */
  const fills: Array<[string, number]> = [
    [`/chunks/${id}/fill`, 403],
    [`/chunks/${id}/%66ill`, 403],
    [`/chunks/${id}/%66%69%6C%6C`, 403],
    [`/chunks/${id}/${fillUpper}`, 403],
    [`/chunks/${id}/${fillLower}`, 403],
    [`/chunks/${id}/fil%6c`, 403],
    [`/${chunksUpper}/${id}/fill`, 403],
    [`/${chunksLower}/${id}/%66ill`, 403],
    [`/chunks/${shaUpper}${hex}/fill`, 403],
    [`/chunks/${id}/fill?size=1&path=/x/../fill`, 403],
    // Not the fill route: an encoded slash stays inside a segment, double encoding decodes once.
    [`/chunks/${id}%2Ffill`, 404],
    [`/chunks/${id}%2ffill`, 404],
    [`/chunks%2F${id}%2Ffill`, 404],
    [`%2Fchunks%2F${id}%2Ffill`, 404],
    [`/chunks/${id}/%2566ill`, 404],
    [`/chunks/${id}/%252566ill`, 404],
    [`/%2563hunks/${id}/fill`, 404],
    [`/chunks/${id}/%46ILL`, 404],
    [`/chunks/${id}/fill%2F`, 404],
    [`/chunks/${id}/fill%00`, 404],
    [`/chunks/${id}/fill;x`, 404],
    [`//chunks/${id}/fill`, 404],
    [`/chunks/${id}/x/../fill`, 404],
    [`/chunks/${id}/%2e%2e/${id}/fill`, 404],
  ];

  it('a fill with the read token is refused (403, or 404 where no route matches) and the node fetches and keeps nothing', async () => {
    for (const [path, status] of fills) {
      const url = path.startsWith('/') ? path : `/${path}`;
      const withSize = url.includes('?') ? url : `${url}?size=${bytes.length}`;
      const res = await send(port, 'POST', withSize, bearer(READ));
      expect(res.status, `POST ${withSize}`).toBe(status);
      expect(JSON.parse(res.body).error, withSize).toBe(status === 403 ? 'ACCESS_DENIED' : 'NOT_FOUND');
      // Without a token every spelling is 401, routes or not.
      expect((await send(port, 'POST', withSize)).status, `POST ${withSize} (no token)`).toBe(401);
      await unchanged(withSize);
    }
  });

  it('a PUT or DELETE with the read token under any spelling changes nothing', async () => {
    const puts: Array<[string, number]> = [
      [`/chunks/${id}`, 403],
      [`/${chunksUpper}/${id}`, 403],
      [`/${chunksLower}/${id}`, 403],
      [`/chunks/${shaUpper}${hex}`, 403],
      [`/chunks/${encodeAll(id)[1]}`, 403],
      [`/chunks/${id}%2F`, 403],
      [`/chunks%2F${id}`, 404],
      [`/%2563hunks/${id}`, 404],
      [`/chunks/${id}/`, 404],
    ];
    for (const [path, status] of puts) {
      const res = await send(port, 'PUT', path, bearer(READ), bytes);
      expect(res.status, `PUT ${path}`).toBe(status);
      await unchanged(`PUT ${path}`);
    }
    const deletes: Array<[string, number]> = [
      [`/chunks/${heldId}`, 403],
      [`/%63hunks/${heldId}`, 403],
      [`/chunks/${encodeAll(heldId)[0]}`, 403],
      [`/chunks%2F${heldId}`, 404],
      [`/chunks%2f${heldId}`, 404],
      [`/%2563hunks/${heldId}`, 404],
    ];
    for (const [path, status] of deletes) {
      expect((await send(port, 'DELETE', path, bearer(READ))).status, `DELETE ${path}`).toBe(status);
      await unchanged(`DELETE ${path}`);
    }
  });

  it('the same encoded spellings are the write routes: the write token fills, stores and deletes through them', async () => {
    const filled = await send(port, 'POST', `/chunks/${id}/%66%69%6c%6c?size=${bytes.length}`, bearer(WRITE));
    expect([filled.status, JSON.parse(filled.body)]).toEqual([200, { id, state: 'fetched' }]);
    expect(cache.has(id)).toBe(true);
    expect((await send(port, 'DELETE', `/${chunksLower}/${id}`, bearer(WRITE))).status).toBe(204);
    expect(cache.has(id)).toBe(false);
    expect((await send(port, 'PUT', `/chunks/${shaUpper}${hex}`, bearer(WRITE), bytes)).status).toBe(201);
    expect(cache.has(id)).toBe(true);
  });
});

describe('control API: the admin routes under every spelling', () => {
  const READ = `read-${randomBytes(8).toString('hex')}`;
  const ADMIN = `admin-${randomBytes(8).toString('hex')}`;
  let app: FastifyInstance;
  let port: number;
  let retried = 0;
  const warmups: unknown[] = [];

  beforeAll(async () => {
    const flows = {
      request: async (paths: unknown) => {
        warmups.push(paths);
        return { id: 'w1', paths: 0, chunks: 0 };
      },
      state: async () => undefined,
    } as unknown as WarmFlows;
    app = buildApi({
      tokens: { read: READ, admin: ADMIN, open: false },
      registry: new Registry(),
      status: async () => ({ ok: true }),
      health: async () => ({ ok: true }),
      retryFailed: async () => {
        retried += 1;
        return 0;
      },
      routes: warmupRoutes(() => flows),
      limits: API_LIMITS,
    });
    ({ port } = await listen(app, '127.0.0.1:0'));
  });

  afterAll(async () => {
    await app?.close();
  });

  const [retryUpper, retryLower] = encodeAll('retry-failed');
  const [warmUpper, warmLower] = encodeAll('warmup');
  const admin: Array<[string, number]> = [
    ['/retry-failed', 403],
    ['/%72etry-failed', 403],
    ['/retry%2Dfailed', 403],
    ['/retry%2dfailed', 403],
    [`/${retryUpper}`, 403],
    [`/${retryLower}`, 403],
    ['/retry-failed?x=/status', 403],
    ['/warmup', 403],
    ['/%77armup', 403],
    ['/warm%75p', 403],
    [`/${warmUpper}`, 403],
    [`/${warmLower}`, 403],
    // No route: 404 with the read token, nothing run.
    ['/%2572etry-failed', 404],
    ['/%25%37%32etry-failed', 404],
    ['/%252577armup', 404],
    ['/RETRY-FAILED', 404],
    ['/%57ARMUP', 404],
    ['/retry-failed%2F', 404],
    ['/status%2F..%2Fretry-failed', 404],
    ['/status/../retry-failed', 404],
    ['/warmup;jsessionid=1', 404],
    ['/warmup%3F', 404],
    ['/warmup%23', 404],
    ['//warmup', 404],
  ];

  it('the read token (bearer or Basic) cannot retry failed copies or queue a warmup under any spelling', async () => {
    const body = Buffer.from(JSON.stringify({ paths: ['/models'] }));
    const json = { 'content-type': 'application/json' };
    const post = (path: string, headers: Record<string, string>) => send(port, 'POST', path, { ...headers, ...json }, body);
    for (const [path, status] of admin) {
      const res = await post(path, bearer(READ));
      expect(res.status, `POST ${path}`).toBe(status);
      if (status === 403) expect(JSON.parse(res.body)).toEqual({ error: 'ACCESS_DENIED', message: 'this request needs the admin token' });
      // Basic auth carries reads only: not even the admin token gets a POST through it.
      expect((await post(path, basic(READ))).status, `POST ${path} (Basic read)`).toBe(401);
      expect((await post(path, basic(ADMIN))).status, `POST ${path} (Basic admin)`).toBe(401);
      expect((await post(path, {})).status, `POST ${path} (no token)`).toBe(401);
      expect([retried, warmups], path).toEqual([0, []]);
    }
    // The encoded spellings are the admin routes themselves: the admin token runs them.
    expect((await post('/%72etry-failed', bearer(ADMIN))).status).toBe(200);
    expect((await post(`/${warmLower}`, bearer(ADMIN))).status).toBe(202);
    expect([retried, warmups]).toEqual([1, [['/models']]]);
  });

  it('read routes stay readable by their spelling, and open only where their route is open', async () => {
    expect((await send(port, 'GET', '/%73tatus', bearer(READ))).status).toBe(200);
    expect((await send(port, 'HEAD', '/%73tatus', basic(READ))).status).toBe(200);
    expect((await send(port, 'GET', '/%68ealthz')).status).toBe(200);
    for (const path of ['/%73tatus', '/healthz/../status', '/healthz%2F..%2Fstatus', '/metrics?/healthz', '/%2568ealthz']) {
      expect((await send(port, 'GET', path)).status, path).toBe(401);
    }
  });
});

describe('S3 gateway: encoded paths neither skip the signature nor turn a read into a write', () => {
  let fx: GatewayFixture;
  let open: GatewayFixture;
  const x = randomBytes(4096);
  const y = randomBytes(4096);
  const METRICS = `metrics-${randomBytes(8).toString('hex')}`;

  beforeAll(async () => {
    [fx, open] = await Promise.all([startGateway({ metricsToken: METRICS }), startGateway({ anonymous: true })]);
    await fx.put('/models', { 'x.bin': x, 'y.bin': y });
    await open.put('/models', { 'x.bin': x });
  });

  afterAll(async () => {
    await Promise.all([fx?.close(), open?.close()]);
  });

  /** Every file under the fixture's stores, and every key the volume lists. */
  async function state(f: GatewayFixture): Promise<{ files: string[]; keys: string[] }> {
    const files = (await readdir(f.root, { recursive: true })).map((p) => relative(f.root, join(f.root, p))).sort();
    const listed = await f.client().send(new ListObjectsV2Command({ Bucket: f.volume }));
    return { files, keys: (listed.Contents ?? []).map((c) => c.Key ?? '').sort() };
  }

  it('unsigned requests for encoded spellings of a key are refused by a gateway that needs signatures', async () => {
    const v = fx.volume;
    const [volUpper, volLower] = encodeAll(v);
    for (const path of [
      `/${v}/models/x.bin`,
      `/${v}/%6Dodels/x.bin`,
      `/${v}/models%2Fx.bin`,
      `/${v}/models%2fx.bin`,
      `/${volUpper}/models/x.bin`,
      `/${volLower}/models%2Fx.bin`,
      `/${v}/%256Dodels/x.bin`,
      `/-/../${v}/models/x.bin`,
      `/-/..%2F${v}%2Fmodels%2Fx.bin`,
      `/%2D/../${v}/models/x.bin`,
      `/${v}?list-type=2`,
      `/${volLower}?list-type=2`,
    ]) {
      for (const method of ['GET', 'HEAD']) {
        const res = await send(fx.port, method, path);
        expect(res.status, `${method} ${path}`).toBeGreaterThanOrEqual(400);
        expect(res.status, `${method} ${path}`).toBeLessThan(500);
        if (method === 'GET') expect(errorCode(res.body), path).toMatch(/^(AccessDenied|NoSuchBucket)$/);
        expect(res.body.includes('x.bin') && res.body.includes('<Contents>'), path).toBe(false);
      }
    }
  });

  it('a signed link for one key opens no other key, however the path is re-encoded', async () => {
    const s3 = fx.client();
    const url = new URL(await getSignedUrl(s3, new GetObjectCommand({ Bucket: fx.volume, Key: 'models/x.bin' }), { expiresIn: 60 }));
    const query = url.search;
    const get = (path: string) => send(fx.port, 'GET', `${path}${query}`);
    expect((await get(url.pathname)).bytes).toEqual(x);
    const v = fx.volume;
    // Spellings of another key, or of no key: the signature does not cover them.
    for (const path of [
      `/${v}/models/y.bin`,
      `/${v}/models/%79.bin`,
      `/${v}/%256Dodels/x.bin`,
      `/${v}/models%252Fx.bin`,
      `/${v}/models/x.bin%2F..%2Fy.bin`,
      `/${v}/models/x.bin/../y.bin`,
      `/${v}/models/./y.bin`,
      `/${v}%2Fmodels/x.bin`,
    ]) {
      const res = await get(path);
      expect(res.status, path).toBe(403);
      expect(errorCode(res.body), path).toBe('SignatureDoesNotMatch');
    }
    // Spellings of the same key may be read with it: the bytes are the signed key's, never another's.
    for (const path of [`/${v}/%6Dodels/x.bin`, `/${v}/%6dodels/x%2Ebin`]) {
      const res = await get(path);
      expect([res.status, res.bytes.equals(x)], path).toEqual([200, true]);
    }
  });

  it('writes under any spelling are refused, signed or not, and nothing in the volume or its store changes', async () => {
    for (const f of [fx, open]) {
      const before = await state(f);
      const v = f.volume;
      const body = randomBytes(512);
      for (const method of ['PUT', 'POST', 'DELETE', 'PATCH']) {
        for (const path of [
          `/${v}/models/new.bin`,
          `/${v}/models/x.bin`,
          `/${v}/%6Dodels/x.bin`,
          `/${v}/models%2Fx.bin`,
          `/${v}/models%2fnew.bin`,
          `/${v}/%256Dodels/new.bin`,
          `/${v}/%2e%2e/x.bin`,
          `/${v}?delete`,
          `/${v}/models/new.bin?uploads`,
          `/${encodeAll(v)[1]}/models/x.bin`,
          `/-/metrics`,
        ]) {
          const res = await send(f.port, method, path, { 'x-http-method-override': 'GET' }, method === 'DELETE' ? undefined : body);
          expect([res.status, errorCode(res.body)], `${method} ${path}`).toEqual([403, 'AccessDenied']);
        }
      }
      const s3 = f.client();
      for (const Key of ['models/new.bin', 'models/x.bin', 'models%2Fx.bin', '%6Dodels/x.bin']) {
        for (const command of [
          new PutObjectCommand({ Bucket: f.volume, Key, Body: 'x' }),
          new DeleteObjectCommand({ Bucket: f.volume, Key }),
        ]) {
          const outcome = await s3.send(command as PutObjectCommand).then(
            () => 'done',
            (err) => (err instanceof S3ServiceException ? `${err.name} ${err.$metadata.httpStatusCode}` : String(err)),
          );
          expect(outcome, `${command.constructor.name} ${Key}`).toBe('AccessDenied 403');
        }
      }
      expect(await state(f)).toEqual(before);
      const got = await s3.send(new GetObjectCommand({ Bucket: f.volume, Key: 'models/x.bin' }));
      expect(Buffer.from(await (got.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray())).toEqual(x);
    }
  });

  it('the metrics route is only /-/metrics with its token: encoded spellings are buckets that need a signature', async () => {
    expect((await send(fx.port, 'GET', '/-/metrics', bearer(METRICS))).body).toContain('# HELP');
    for (const path of [
      '/%2D/metrics',
      '/%2d/metrics',
      '/-%2Fmetrics',
      '/-/%6Detrics',
      '/-/%6detrics',
      '/-/%256Detrics',
      '/%252D/metrics',
    ]) {
      for (const headers of [{}, bearer(METRICS), bearer('wrong')]) {
        const res = await send(fx.port, 'GET', path, headers);
        expect(res.status, path).toBeGreaterThanOrEqual(400);
        expect(res.body, path).not.toContain('# HELP');
      }
    }
    expect((await send(fx.port, 'GET', '/-/metrics', bearer('wrong'))).status).toBe(403);
    expect((await send(fx.port, 'GET', '/-/metrics')).status).toBe(403);
  });
});
