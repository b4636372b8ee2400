import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CacheNodeClient } from '@ferry/cache';
import { type ChunkId, nativeChunkId, sha256Hex, UnauthorizedError, UnavailableError } from '@ferry/core';
import { Unreachable } from '@ferry/http';
import { afterEach, describe, expect, it } from 'vitest';

// How the cache client takes a chunk body off the socket, against a real HTTP server that answers
// each request the way a test tells it to: whole, too long, cut short, refused, slow.

const bytes = randomBytes(3 * 1024 * 1024 + 17);
const id: ChunkId = nativeChunkId(sha256Hex(bytes));

let server: Server | undefined;
let client: CacheNodeClient | undefined;

async function serve(answer: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ id: string; url: string }> {
  server = createServer(answer);
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  return { id: 'n1', url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

function newClient(): CacheNodeClient {
  client = new CacheNodeClient({ token: 'reader-token', connectTimeoutMs: 1000, requestTimeoutMs: 2000, region: 'eu' });
  return client;
}

afterEach(async () => {
  await client?.close();
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  server = undefined;
  client = undefined;
});

describe('cache client chunk bodies', () => {
  it('receives a chunk whole, sends the token and the size, and gets the same bytes on a reused connection', async () => {
    const seen: string[] = [];
    const node = await serve((req, res) => {
      seen.push(`${req.headers.authorization} ${req.url}`);
      res.writeHead(200, { 'content-length': bytes.length });
      // Several writes: the body reaches the client in many pieces.
      for (let at = 0; at < bytes.length; at += 100_000) res.write(bytes.subarray(at, at + 100_000));
      res.end();
    });
    const c = newClient();
    for (let i = 0; i < 3; i++) {
      const got = await c.get(node, id, { size: bytes.length });
      expect(got?.equals(bytes)).toBe(true);
    }
    expect(seen).toEqual(Array(3).fill(`Bearer reader-token /chunks/${id}?size=${bytes.length}`));
  });

  it('stops a body longer than the chunk one byte past it, so the check sees the wrong length', async () => {
    const node = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': bytes.length + 4096 });
      res.end(Buffer.concat([bytes, randomBytes(4096)]));
    });
    const got = await newClient().get(node, id, { size: bytes.length });
    expect(got?.length).toBe(bytes.length + 1);
    expect(got?.subarray(0, bytes.length).equals(bytes)).toBe(true);
  });

  it('a body cut short is an UnavailableError and the node is skipped for a while', async () => {
    const node = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': bytes.length });
      res.write(bytes.subarray(0, 1024 * 1024), () => res.destroy());
    });
    const c = newClient();
    const err = await c.get(node, id, { size: bytes.length }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnavailableError);
    expect((err as Error).message).toMatch(/^cache node n1: get sha256-[0-9a-f]+: body cut short: /);
    expect(c.isDown(node)).toBe(true);
  });

  it('404 is "not held"; an error answer becomes the Ferry error it stands for, with the config key to check', async () => {
    let status = 404;
    const node = await serve((_req, res) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ code: status === 401 ? 'unauthorized' : 'not_found', message: 'nope' }));
    });
    const c = newClient();
    expect(await c.get(node, id, { size: bytes.length })).toBeUndefined();
    status = 401;
    const err = await c.get(node, id, { size: bytes.length }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnauthorizedError);
    expect((err as Error).message).toContain('regions.eu.cache.readToken');
    expect(c.isDown(node)).toBe(false);
  });

  it('a node that cannot be reached is Unreachable and marked down; an abort is an AbortError and marks nothing', async () => {
    const c = newClient();
    const closed = { id: 'gone', url: 'http://127.0.0.1:1' };
    const err = await c.get(closed, id, { size: bytes.length }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Unreachable);
    expect(c.isDown(closed)).toBe(true);

    const node = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': bytes.length });
      res.write(bytes.subarray(0, 1024));
    });
    const abort = new AbortController();
    const pending = c.get(node, id, { size: bytes.length, signal: abort.signal }).catch((e: unknown) => e);
    setTimeout(() => abort.abort(), 100);
    const aborted = await pending;
    expect((aborted as Error).name).toBe('AbortError');
    expect(c.isDown(node)).toBe(false);
  });
});
