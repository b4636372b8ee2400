import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { BufferPool } from './buffer-pool.js';
import { CorruptError } from './errors.js';
import { HashPool, sharedBuffer } from './hash-pool.js';
import { VerifyingStream } from './hashing.js';

const hex = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('HashPool', () => {
  const pool = new HashPool({ threads: 2, inlineBelow: 1024 });
  afterAll(() => pool.close());

  it('hashes shared, plain and small inputs, and views of a larger buffer, like node:crypto', async () => {
    const plain = randomBytes(3 * 2 ** 20);
    const shared = sharedBuffer(plain.length);
    plain.copy(shared);
    const view = plain.subarray(1000, 200_000);
    const small = plain.subarray(0, 100);
    expect(await Promise.all([pool.sha256(plain), pool.sha256(shared), pool.sha256(view), pool.sha256(small)])).toEqual([
      hex(plain),
      hex(plain),
      hex(view),
      hex(small),
    ]);
    // The caller's bytes are untouched by the hand-over (copied views are moved, not the original).
    expect(plain.length).toBe(3 * 2 ** 20);
  });

  it('keeps a session in order across shared and copied pieces, many sessions at once', async () => {
    const files = Array.from({ length: 5 }, () => randomBytes(2 ** 20 + 12345));
    const digests = await Promise.all(
      files.map(async (file) => {
        const session = pool.session();
        for (let at = 0, n = 0; at < file.length; n++) {
          const size = [1, 70_000, 300_000, 5][n % 4] as number;
          const piece = file.subarray(at, at + size);
          let bytes: Buffer = piece;
          if (n % 2 === 1) {
            bytes = sharedBuffer(piece.length);
            bytes.set(piece);
          }
          await session.update(bytes);
          at += size;
        }
        return session.digest();
      }),
    );
    expect(digests).toEqual(files.map(hex));
  });

  it('an empty session is the hash of nothing', async () => {
    expect(await pool.session().digest()).toBe(hex(Buffer.alloc(0)));
  });

  it('hashes small sessions on the calling thread (no thread, no slot), and one that grows past the bound on a thread', async () => {
    const fresh = new HashPool({ threads: 2, inlineBelow: 1024 });
    try {
      const files = Array.from({ length: 2000 }, (_, i) => randomBytes(1 + (i % 1000)));
      const expected = files.map(hex);
      const digests = await Promise.all(
        files.map(async (file) => {
          const session = fresh.session();
          const piece = file.subarray(0, file.length >> 1);
          await session.update(piece);
          piece.fill(0); // the session's copy is its own
          await session.update(file.subarray(file.length >> 1));
          return session.digest();
        }),
      );
      expect(digests).toEqual(expected);
      expect(fresh.running).toBe(0);
      const growing = randomBytes(3000);
      const session = fresh.session();
      for (let at = 0; at < growing.length; at += 700) await session.update(growing.subarray(at, at + 700));
      expect(await session.digest()).toBe(hex(growing));
      expect(fresh.running).toBe(1);
    } finally {
      await fresh.close();
    }
  });
});

describe('VerifyingStream', () => {
  it('passes right bytes and fails wrong ones before the end, on the hash pool', async () => {
    const bytes = randomBytes(5 * 2 ** 20);
    const pieces = () => Readable.from(Array.from({ length: 80 }, (_, i) => bytes.subarray(i * 65536, (i + 1) * 65536)));
    const out: Buffer[] = [];
    await pipeline(pieces(), new VerifyingStream({ sha256: hex(bytes), length: bytes.length, what: 'x' }), async (source) => {
      for await (const p of source) out.push(p as Buffer);
    });
    expect(Buffer.concat(out).equals(bytes)).toBe(true);
    const wrong = hex(Buffer.from('other'));
    await expect(
      pipeline(pieces(), new VerifyingStream({ sha256: wrong, what: 'x' }), async (s) => {
        for await (const _ of s);
      }),
    ).rejects.toBeInstanceOf(CorruptError);
  });
});

describe('BufferPool', () => {
  it('lends buffers back out only after every holder released them, up to `keep`', () => {
    const pool = new BufferPool({ bufferSize: 1024, keep: 1 });
    const a = pool.take(10);
    expect(a.bytes.length).toBe(10);
    expect(a.bytes.buffer).toBeInstanceOf(SharedArrayBuffer);
    a.hold();
    a.release();
    expect(pool.idle).toBe(0);
    a.release();
    expect(pool.idle).toBe(1);
    const b = pool.take();
    expect(b.bytes.buffer).toBe(a.bytes.buffer);
    const c = pool.take();
    b.release();
    c.release();
    expect(pool.idle).toBe(1);
    expect(() => pool.take(2048)).toThrow(/2048/);
  });
});
