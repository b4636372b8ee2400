import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HfStore } from '@ferry/stores';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The Hugging Face origin store against two real loopback servers, one playing the Hub's API host
// and one its CDN: what each host is sent (the token reaches the Hub only), a range through the
// redirect, and the errors an import and a copy see.

const TOKEN = 'hf_secret_token_0123456789';
const BYTES = Buffer.from('0123456789abcdefghij'.repeat(100));
const SHA = 'a'.repeat(64);
const COMMIT = 'c'.repeat(40);

interface Seen {
  host: 'api' | 'cdn';
  url: string;
  headers: IncomingHttpHeaders;
}

async function listen(server: Server, host: string): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://${host}:${(server.address() as AddressInfo).port}`;
}

describe('HfStore, the read-only origin of imported Hub files', () => {
  const seen: Seen[] = [];
  let api: Server;
  let cdn: Server;
  let apiUrl: string;
  let cdnUrl: string;
  let servedEtag = SHA;

  beforeAll(async () => {
    cdn = createServer((req, res) => {
      seen.push({ host: 'cdn', url: req.url ?? '', headers: req.headers });
      const m = /bytes=(\d+)-(\d*)/.exec(req.headers.range ?? '');
      if (m) {
        const start = Number(m[1]);
        const end = m[2] ? Number(m[2]) : BYTES.length - 1;
        res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${BYTES.length}`, 'content-length': String(end - start + 1) });
        res.end(BYTES.subarray(start, end + 1));
        return;
      }
      res.writeHead(200, { 'content-length': String(BYTES.length) });
      res.end(BYTES);
    });
    api = createServer((req, res) => {
      seen.push({ host: 'api', url: req.url ?? '', headers: req.headers });
      if (req.url?.includes('/gated/')) {
        res.writeHead(401, { 'x-error-code': 'GatedRepo', 'x-error-message': 'Access restricted' });
        res.end('{"error":"Access restricted"}');
        return;
      }
      // A signed URL on another host, as the Hub's CDN redirect.
      res.writeHead(302, {
        location: `${cdnUrl}/signed/${SHA}?sig=xyz`,
        'x-linked-etag': `"${servedEtag}"`,
        'x-linked-size': String(BYTES.length),
        'content-length': '0',
      });
      res.end();
    });
    apiUrl = await listen(api, '127.0.0.1');
    // Another host name for the same loopback: the store must see a different host.
    cdnUrl = await listen(cdn, 'localhost');
  });

  afterAll(async () => {
    api?.close();
    cdn?.close();
  });

  it('reads a range through the redirect, and sends the token to the Hub only, never to the CDN', async () => {
    const store = new HfStore({ endpoint: apiUrl, repo: 'acme/model', token: TOKEN });
    seen.length = 0;
    const got = await store.get(`${COMMIT}/dir/model.safetensors`, { range: { start: 100, end: 199 }, ifMatch: SHA });
    const parts: Buffer[] = [];
    for await (const p of got.body) parts.push(p as Buffer);
    expect(Buffer.concat(parts).equals(BYTES.subarray(100, 200))).toBe(true);
    expect(got).toMatchObject({ start: 100, end: 199, info: { size: BYTES.length, etag: SHA } });
    expect(seen.map((s) => s.host)).toEqual(['api', 'cdn']);
    expect(seen[0]?.url).toBe(`/acme/model/resolve/${COMMIT}/dir/model.safetensors`);
    expect(seen[0]?.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(seen[1]?.headers.authorization).toBeUndefined();
    expect(seen[1]?.headers.range).toBe('bytes=100-199');
    const head = await store.head(`${COMMIT}/dir/model.safetensors`);
    expect(head).toMatchObject({ size: BYTES.length, etag: SHA });
    await store.close();
  });

  it('refuses a file whose etag changed, names a gated repo, and writes nothing', async () => {
    const store = new HfStore({ endpoint: apiUrl, repo: 'acme/model' });
    servedEtag = 'b'.repeat(64);
    await expect(store.get(`${COMMIT}/model.safetensors`, { ifMatch: SHA })).rejects.toMatchObject({ code: 'PRECONDITION_FAILED' });
    servedEtag = SHA;
    const gated = new HfStore({ endpoint: apiUrl, repo: 'acme/gated' });
    await expect(gated.get(`${COMMIT}/w.bin`)).rejects.toThrow(/acme\/gated .*set HF_TOKEN/);
    await expect(store.put()).rejects.toMatchObject({ code: 'ACCESS_DENIED' });
    await expect(store.delete()).rejects.toMatchObject({ code: 'ACCESS_DENIED' });
    await store.close();
    await gated.close();
  });
});
