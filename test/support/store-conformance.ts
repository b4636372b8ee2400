import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { ObjectStore } from '@ferry/stores';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestStream, randomStream, readStream } from './bytes.js';

export interface ConformanceOptions {
  /** Largest round trip; 100 MiB unless a backend cannot (it must then say why). */
  bigObject?: number;
  /** Keys to create for the pagination case (≥ 2,500). */
  listKeys?: number;
}

const MiB = 2 ** 20;

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code ?? `not a FerryError: ${(err as Error).message}`;
  }
}

/**
 * The contract every ObjectStore backend must keep, error behaviour included. `factory` returns
 * a store over a fresh, empty namespace (new prefix, bucket or directory) each call.
 */
export function storeConformance(backend: string, factory: () => Promise<ObjectStore>, options: ConformanceOptions = {}): void {
  const bigObject = options.bigObject ?? 100 * MiB;
  const listKeys = options.listKeys ?? 2500;

  describe(`ObjectStore conformance: ${backend}`, () => {
    let store: ObjectStore;
    beforeAll(async () => {
      store = await factory();
    });
    afterAll(async () => {
      await store?.close?.();
    });

    it.each([
      ['empty', 0],
      ['1 byte', 1],
      ['8 MiB', 8 * MiB],
    ])(`${backend}: round trip of a %s object from bytes`, async (_name, size) => {
      const bytes = randomBytes(size);
      const key = `roundtrip/bytes-${size}`;
      const { etag } = await store.put(key, bytes);
      const head = await store.head(key);
      expect(head).toMatchObject({ key, size, etag });
      const got = await store.get(key);
      expect(got.info.etag).toBe(etag);
      expect((await readStream(got.body)).equals(bytes)).toBe(true);
    });

    it(`${backend}: a put keeps no reference to the bytes it was given (callers reuse their buffers)`, async () => {
      const bytes = randomBytes(64 * 1024);
      const kept = Buffer.from(bytes);
      await store.put('reuse/after-put', bytes);
      bytes.fill(0);
      expect((await readStream((await store.get('reuse/after-put')).body)).equals(kept)).toBe(true);
    });

    it(`${backend}: round trip of a ${bigObject / MiB} MiB object streamed with a known length`, async () => {
      const key = 'roundtrip/big';
      const { stream, sha256 } = randomStream(bigObject);
      const { etag } = await store.put(key, { stream, length: bigObject });
      const got = await store.get(key);
      expect(got.info).toMatchObject({ size: bigObject, etag });
      const read = await digestStream(got.body);
      expect(read).toEqual({ sha256: await sha256, length: bigObject });
    });

    it(`${backend}: a stream shorter than its declared length stores nothing`, async () => {
      const key = 'short/one';
      const code = await codeOf(store.put(key, { stream: Readable.from([Buffer.alloc(10)]), length: 20 }));
      expect(code).toBeDefined();
      expect(await codeOf(store.head(key))).toBe('NOT_FOUND');
    });

    describe(`${backend}: ranges`, () => {
      const bytes = randomBytes(1000);
      const key = 'ranges/object';
      beforeAll(async () => {
        await store.put(key, bytes);
      });
      it.each([
        ['from a start to the end', { start: 100 }, 100, 999],
        ['start to end inclusive', { start: 10, end: 19 }, 10, 19],
        ['a single byte', { start: 999, end: 999 }, 999, 999],
        ['an end past the size (clamped)', { start: 990, end: 5000 }, 990, 999],
      ])('%s', async (_name, range, start, end) => {
        const got = await store.get(key, { range });
        expect([got.start, got.end]).toEqual([start, end]);
        expect(got.info.size).toBe(1000);
        expect((await readStream(got.body)).equals(bytes.subarray(start, end + 1))).toBe(true);
      });
      it('a start past the end is RANGE_NOT_SATISFIABLE', async () => {
        expect(await codeOf(store.get(key, { range: { start: 1000 } }))).toBe('RANGE_NOT_SATISFIABLE');
      });
    });

    it.each([
      ['larger than the object', 5000],
      ['as large as the range', 1500],
      ['smaller than the range', 700],
    ])(
      `${backend}: a get given a buffer to read into (%s) serves the same bytes, in place where it reads in place`,
      async (_name, room) => {
        const bytes = randomBytes(3000);
        const key = `into/object-${room}`;
        await store.put(key, bytes);
        for (const range of [undefined, { start: 1000, end: 2499 }]) {
          const into = Buffer.alloc(room);
          const got = await store.get(key, { ...(range ? { range } : {}), into });
          const pieces: Buffer[] = [];
          let at = 0;
          for await (const piece of got.body as AsyncIterable<Buffer>) {
            // A piece in `into` sits exactly where the bytes so far end: the reader copies nothing.
            if (piece.buffer === into.buffer) expect(piece.byteOffset - into.byteOffset).toBe(at);
            pieces.push(Buffer.from(piece));
            at += piece.length;
          }
          const start = range?.start ?? 0;
          const end = range?.end ?? bytes.length - 1;
          expect(Buffer.concat(pieces).equals(bytes.subarray(start, end + 1))).toBe(true);
        }
      },
    );

    it(`${backend}: head and get of a missing key are NOT_FOUND`, async () => {
      expect(await codeOf(store.head('missing/key'))).toBe('NOT_FOUND');
      expect(await codeOf(store.get('missing/key'))).toBe('NOT_FOUND');
    });

    it(`${backend}: get with a stale etag is PRECONDITION_FAILED, with the current one succeeds`, async () => {
      const key = 'etag/object';
      const first = await store.put(key, Buffer.from('first version'));
      const second = await store.put(key, Buffer.from('second version, longer'));
      expect(second.etag).not.toBe(first.etag);
      expect(await codeOf(store.get(key, { ifMatch: first.etag }))).toBe('PRECONDITION_FAILED');
      expect(await codeOf(store.get(key, { ifMatch: first.etag, range: { start: 0, end: 3 } }))).toBe('PRECONDITION_FAILED');
      const got = await store.get(key, { ifMatch: second.etag });
      expect((await readStream(got.body)).toString()).toBe('second version, longer');
    });

    it(`${backend}: delete is idempotent`, async () => {
      await store.delete('never/existed');
      await store.put('del/me', Buffer.from('x'));
      await store.delete('del/me');
      await store.delete('del/me');
      expect(await codeOf(store.head('del/me'))).toBe('NOT_FOUND');
    });

    it(`${backend}: lists ${listKeys} keys through pages: none missing, none repeated, in order`, async () => {
      const keys = Array.from({ length: listKeys }, (_, i) => `many/${String(i).padStart(5, '0')}/${i % 7 === 0 ? 'deep/' : ''}k`);
      const queue = [...keys];
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          for (let key = queue.pop(); key !== undefined; key = queue.pop()) await store.put(key, Buffer.from(key));
        }),
      );
      const seen: string[] = [];
      let pages = 0;
      for await (const page of store.list('many/', { pageSize: 1000 })) {
        pages += 1;
        expect(page.items.length).toBeLessThanOrEqual(1000);
        seen.push(...page.items.map((i) => i.key));
      }
      expect(pages).toBeGreaterThanOrEqual(3);
      expect(seen).toEqual([...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
    });

    it(`${backend}: a listing resumes from a page's cursor`, async () => {
      const keys = Array.from({ length: 25 }, (_, i) => `resume/${String(i).padStart(3, '0')}`);
      for (const key of keys) await store.put(key, Buffer.from(key));
      const first = await store.list('resume/', { pageSize: 10 })[Symbol.asyncIterator]().next();
      const cursor = first.value?.cursor;
      expect(cursor).toBeDefined();
      const rest: string[] = [];
      for await (const page of store.list('resume/', { pageSize: 10, cursor })) rest.push(...page.items.map((i) => i.key));
      expect(rest).toEqual(keys.slice(10));
    });

    it(`${backend}: prefixes, spaces and unicode in keys`, async () => {
      const keys = ['uni/a b/c d.bin', 'uni/モデル/重み.safetensors', 'uni/émoji 🚀.txt', 'uni-other/x', 'uni/a-b', 'uni/a/b'];
      for (const key of keys) await store.put(key, Buffer.from(`content of ${key}`));
      const listed: string[] = [];
      for await (const page of store.list('uni/')) listed.push(...page.items.map((i) => i.key));
      const expected = keys.filter((k) => k.startsWith('uni/')).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
      expect(listed).toEqual(expected);
      for (const key of expected) {
        const got = await store.get(key);
        expect((await readStream(got.body)).toString()).toBe(`content of ${key}`);
      }
      const partial: string[] = [];
      for await (const page of store.list('uni/a')) partial.push(...page.items.map((i) => i.key));
      expect(partial).toEqual(['uni/a b/c d.bin', 'uni/a-b', 'uni/a/b']);
    });

    it(`${backend}: concurrent puts of one key leave one whole object`, async () => {
      const key = 'race/object';
      const bodies = Array.from({ length: 4 }, () => randomBytes(2 * MiB));
      const digests = bodies.map((b) => createHash('sha256').update(b).digest('hex'));
      await Promise.all(bodies.map((b) => store.put(key, { stream: Readable.from(chunks(b, 64 * 1024)), length: b.length })));
      const got = await digestStream((await store.get(key)).body);
      expect(got.length).toBe(2 * MiB);
      expect(digests).toContain(got.sha256);
    });
  });
}

function* chunks(buffer: Buffer, size: number): Generator<Buffer> {
  for (let i = 0; i < buffer.length; i += size) yield buffer.subarray(i, i + size);
}
