import { randomBytes } from 'node:crypto';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { createStore, PrefixStore } from '@ferry/stores';
import { GcsStore } from '@ferry/stores/gcs';
import { Storage } from '@google-cloud/storage';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readStream } from '../support/bytes.js';
import { gcsEndpoint, gcsStore, gcsStoreFor, gcsUrl } from '../support/gcs.js';
import { uniqueName } from '../support/random.js';
import { freePort } from '../support/servers/free-port.js';
import { storeConformance } from '../support/store-conformance.js';

storeConformance('gs', async () => gcsStoreFor(uniqueName('conformance')));

async function failure(promise: Promise<unknown>): Promise<{ code?: string; message: string; retryable?: boolean }> {
  try {
    await promise;
  } catch (err) {
    return err as { code?: string; message: string; retryable?: boolean };
  }
  throw new Error('expected a failure');
}

describe('gs: specifics', () => {
  it('createStore(gs://bucket/prefix?endpoint=…&projectId=…) works end to end without Google credentials', async () => {
    const prefix = uniqueName('url');
    const store = createStore(gcsUrl(prefix));
    try {
      expect(store.capabilities).toMatchObject({ scheme: 'gs', serverSideIfMatch: true });
      expect(store.url.startsWith(`gs://${gcsEndpoint().bucket}/${prefix}`)).toBe(true);
      const { etag } = await store.put('a/b.bin', Buffer.from('hello'));
      expect(await store.head('a/b.bin')).toMatchObject({ key: 'a/b.bin', size: 5, etag });
      expect((await readStream((await store.get('a/b.bin', { ifMatch: etag })).body)).toString()).toBe('hello');
      const keys: string[] = [];
      for await (const page of store.list('')) keys.push(...page.items.map((i) => i.key));
      expect(keys).toEqual(['a/b.bin']);
      await store.delete('a/b.bin');
      expect((await failure(store.head('a/b.bin'))).code).toBe('NOT_FOUND');
    } finally {
      await store.close?.();
    }
  });

  it('a short or long stream on the resumable path stores nothing', async () => {
    const store = gcsStoreFor(uniqueName('resumable'), { resumableThreshold: 1024 });
    // Slow enough that the upload request is under way when the stream turns out wrong.
    async function* slowly(count: number, size: number) {
      for (let i = 0; i < count; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        yield randomBytes(size);
      }
    }
    const short = await failure(store.put('short', { stream: Readable.from(slowly(3, 2 ** 20)), length: 8 * 2 ** 20 }));
    expect(short.code).toBe('CORRUPT');
    const long = await failure(store.put('long', { stream: Readable.from(slowly(3, 2 ** 20)), length: 2 * 2 ** 20 + 5 }));
    expect(long.code).toBe('CORRUPT');
    expect((await failure(store.head('short'))).code).toBe('NOT_FOUND');
    expect((await failure(store.head('long'))).code).toBe('NOT_FOUND');
    const bytes = randomBytes(5000);
    const { etag } = await store.put('fine', { stream: Readable.from([bytes]), length: bytes.length });
    const got = await store.get('fine', { range: { start: 4000 } });
    expect(got.info).toMatchObject({ size: 5000, etag });
    expect((await readStream(got.body)).equals(bytes.subarray(4000))).toBe(true);
    await store.close();
  });

  it('a cursor resumes a listing in another store instance', async () => {
    const prefix = uniqueName('cursor');
    const first = gcsStoreFor(prefix);
    for (let i = 0; i < 7; i++) await first.put(`k/${i}`, Buffer.from(`${i}`));
    const cursor = (await first.list('k/', { pageSize: 3 })[Symbol.asyncIterator]().next()).value?.cursor;
    expect(cursor).toBeDefined();
    await first.delete('k/3'); // the key after the cursor vanishing must not matter
    await first.close();
    const second = gcsStoreFor(prefix);
    const rest: string[] = [];
    for await (const page of second.list('k/', { pageSize: 3, cursor })) rest.push(...page.items.map((i) => i.key));
    expect(rest).toEqual(['k/4', 'k/5', 'k/6']);
    await second.close();
  });

  describe('an object overwritten between the metadata read and the download', () => {
    // A loopback proxy in front of the emulator that, once armed, overwrites the object just
    // before forwarding the next media download: the store's own metadata read has then passed.
    let proxy: Server;
    let armed: (() => Promise<unknown>) | undefined;
    let store: PrefixStore;
    const prefix = uniqueName('race');

    beforeAll(async () => {
      const upstream = new URL(gcsEndpoint().endpoint);
      proxy = createServer((req, res) => {
        const forward = () => {
          const out = httpRequest(
            { host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: req.headers },
            (reply) => {
              res.writeHead(reply.statusCode ?? 502, reply.headers);
              reply.pipe(res);
            },
          );
          out.on('error', () => res.destroy());
          req.pipe(out);
        };
        const overwrite = armed;
        if (overwrite && req.method === 'GET' && req.url?.includes('alt=media')) {
          armed = undefined;
          void overwrite().then(forward, () => res.destroy());
        } else forward();
      });
      await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
      const { port } = proxy.address() as AddressInfo;
      const storage = new Storage({ apiEndpoint: `http://127.0.0.1:${port}`, projectId: gcsEndpoint().projectId });
      store = new PrefixStore({ inner: new GcsStore({ storage, bucket: gcsEndpoint().bucket }), prefix });
    });
    afterAll(async () => {
      await store?.close();
      await new Promise((resolve) => proxy?.close(resolve));
    });

    const direct = () => gcsStoreFor(prefix);

    it.each([
      ['whole', undefined],
      ['ranged', { start: 2, end: 9 }],
    ])('a guarded %s get is PRECONDITION_FAILED, never the new bytes', async (_name, range) => {
      const key = `guarded-${_name}`;
      const { etag } = await direct().put(key, Buffer.from('the first version'));
      armed = () => direct().put(key, Buffer.from('the second version, a different size'));
      const err = await failure(store.get(key, { ifMatch: etag, ...(range ? { range } : {}) }));
      expect(armed).toBeUndefined();
      expect(err.code).toBe('PRECONDITION_FAILED');
    });

    it('an unguarded get follows the object to its new version, metadata and bytes agreeing', async () => {
      const key = 'unguarded';
      await direct().put(key, Buffer.from('the first version'));
      let second = '';
      armed = async () => {
        second = (await direct().put(key, Buffer.from('the second version'))).etag;
      };
      const got = await store.get(key);
      expect(armed).toBeUndefined();
      expect(got.info).toMatchObject({ etag: second, size: 18 });
      expect((await readStream(got.body)).toString()).toBe('the second version');
    });
  });

  it('an unreachable endpoint is a one-line, retryable UNAVAILABLE for every operation', async () => {
    const store = gcsStore({ endpoint: `http://127.0.0.1:${await freePort()}`, resumableThreshold: 100 });
    const listing = (async () => {
      for await (const _page of store.list('x/'));
    })();
    const errors = await Promise.all([
      failure(store.head('a')),
      failure(store.get('a')),
      failure(store.put('a', Buffer.from('small'))),
      failure(store.put('b', randomBytes(1000))),
      failure(store.delete('a')),
      failure(listing),
    ]);
    for (const err of errors) {
      expect(err).toMatchObject({ code: 'UNAVAILABLE', retryable: true });
      expect(err.message).toMatch(/^gs:\/\/[^\n]*cannot reach http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)$/);
    }
    await store.close();
  });
});
