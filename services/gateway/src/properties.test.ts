import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { isWithin, normalizePath } from '@ferry/core';
import { SignatureV4 } from '@smithy/signature-v4';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { S3Error } from './errors.js';
import { uriEncode, verifyRequest } from './sigv4.js';
import { keyToPath, parseUrl } from './target.js';

// Properties over generated requests: the gateway's SigV4 canonicalization agrees with the AWS
// SDK's signer on every key, query and header it generates; no request crashes it; no key
// escapes the volume; every rejection is an S3 error with one line.

const RUNS = 2_000;

class NodeSha256 {
  readonly #hash: Hash | Hmac;
  constructor(secret?: string | Uint8Array) {
    this.#hash = secret === undefined ? createHash('sha256') : createHmac('sha256', secret);
  }
  update(data: string | Uint8Array): void {
    this.#hash.update(data);
  }
  async digest(): Promise<Uint8Array> {
    return this.#hash.digest();
  }
  reset(): void {}
}

const signer = new SignatureV4({
  credentials: { accessKeyId: 'gw-key', secretAccessKey: 'gw-secret-0123456789' },
  region: 'eu-central-1',
  service: 's3',
  sha256: NodeSha256,
  uriEscapePath: false,
});
const opts = { secretOf: (id: string) => (id === 'gw-key' ? 'gw-secret-0123456789' : undefined), region: 'eu-central-1' };

/** Key segments with what S3 keys really hold: unicode, spaces, reserved and percent characters. */
const segment = fc.oneof(
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 12 }),
  fc.constantFrom('a b', 'c+d', 'e=f&g', "q'(*)!~", '%2F', '名前', 'model-00001.safetensors', '..', '.'),
);
const key = fc.array(segment, { minLength: 1, maxLength: 5 }).map((parts) => parts.join('/'));
const queryParams = fc.dictionary(
  fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/).filter((k) => !k.startsWith('x-amz-')),
  fc.string({ unit: 'grapheme', maxLength: 16 }),
  { maxKeys: 4 },
);
/** Header values as clients send them: printable ASCII, inner runs of spaces included. */
const headerValue = fc.stringMatching(/^[!-~]([ !-~]{0,20}[!-~])?$/);
const headers = fc.dictionary(fc.stringMatching(/^x-t-[a-z0-9-]{1,10}$/), headerValue, { maxKeys: 3 });

function oneLine(message: string): boolean {
  return message.length > 0 && !/[\r\n]/.test(message);
}

function rawQueryOf(query: Record<string, string>): string {
  return Object.entries(query)
    .map(([k, v]) => `${uriEncode(k)}=${uriEncode(v)}`)
    .join('&');
}

describe('SigV4 against @smithy/signature-v4', () => {
  it('every header-signed request the SDK signer makes verifies, and a changed byte does not', async () => {
    await fc.assert(
      fc.asyncProperty(key, queryParams, headers, async (k, query, extra) => {
        const path = `/vol/${k.split('/').map(uriEncode).join('/')}`;
        const request = {
          method: 'GET',
          protocol: 'http:',
          hostname: '127.0.0.1',
          port: 9000,
          path,
          query,
          headers: { host: '127.0.0.1:9000', 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', ...extra },
        };
        const signed = await signer.sign(request);
        const rawHeaders = Object.entries(signed.headers).flat();
        const rawQuery = rawQueryOf(query);
        expect(verifyRequest({ method: 'GET', rawPath: path, rawQuery, rawHeaders }, opts)).toEqual({
          kind: 'signed',
          accessKeyId: 'gw-key',
          presigned: false,
        });
        let code: string | undefined;
        try {
          verifyRequest({ method: 'GET', rawPath: `${path}x`, rawQuery, rawHeaders }, opts);
        } catch (err) {
          code = err instanceof S3Error ? err.code : String(err);
        }
        expect(code).toBe('SignatureDoesNotMatch');
      }),
      { numRuns: RUNS },
    );
  });

  it('every presigned URL verifies', async () => {
    await fc.assert(
      fc.asyncProperty(key, queryParams, async (k, query) => {
        const path = `/vol/${k.split('/').map(uriEncode).join('/')}`;
        const url = await signer.presign(
          // As the S3 presigner does: a presigned request's payload is unsigned.
          {
            method: 'GET',
            protocol: 'http:',
            hostname: '127.0.0.1',
            port: 9000,
            path,
            query,
            headers: { host: '127.0.0.1:9000', 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' },
          },
          { expiresIn: 300 },
        );
        const rawQuery = rawQueryOf(Object.fromEntries(Object.entries(url.query ?? {}).map(([n, v]) => [n, String(v)])));
        expect(verifyRequest({ method: 'GET', rawPath: path, rawQuery, rawHeaders: ['Host', '127.0.0.1:9000'] }, opts).kind).toBe('signed');
      }),
      { numRuns: RUNS },
    );
  });

  it('any Authorization header or query is a verdict or one S3 error line, never a crash', () => {
    const auth = fc.oneof(
      fc.string(),
      fc
        .tuple(fc.string(), fc.string(), fc.string())
        .map(([c, h, s]) => `AWS4-HMAC-SHA256 Credential=${c}, SignedHeaders=${h}, Signature=${s}`),
    );
    fc.assert(
      fc.property(auth, fc.string(), fc.string(), (authorization, rawPath, rawQuery) => {
        try {
          const result = verifyRequest(
            { method: 'GET', rawPath: `/${rawPath}`, rawQuery, rawHeaders: ['Host', 'h', 'Authorization', authorization] },
            opts,
          );
          expect(result.kind).not.toBe('signed');
        } catch (err) {
          expect(err).toBeInstanceOf(S3Error);
          expect(oneLine((err as Error).message), (err as Error).message).toBe(true);
        }
      }),
      { numRuns: RUNS * 2 },
    );
  });
});

describe("the gateway's key decoding", () => {
  it('a request target decodes to a path inside the volume, or an S3 error of one line', () => {
    const target = fc.oneof(
      key.map((k) => `/vol/${k}`),
      key.map((k) => `/vol/${k.split('/').map(uriEncode).join('/')}`),
      fc.string().map((s) => `/${s}`),
      fc.constantFrom('/vol/..%2F..%2Fetc%2Fpasswd', '/vol/%2e%2e/x', '/vol/a%00b', '/vol/%zz', '/vol//x', '/vol/a/'),
    );
    fc.assert(
      fc.property(target, fc.string(), (raw, query) => {
        try {
          const parsed = parseUrl(`${raw}?${query}`);
          if (parsed.target.kind !== 'object') return;
          const path = keyToPath(parsed.target.key);
          expect(normalizePath(path)).toBe(path);
          expect(isWithin(path, '/')).toBe(true);
          expect(path).toBe(`/${parsed.target.key}`);
          expect(path.split('/')).not.toContain('..');
        } catch (err) {
          expect(err).toBeInstanceOf(S3Error);
          expect(oneLine((err as Error).message), (err as Error).message).toBe(true);
        }
      }),
      { numRuns: RUNS * 2 },
    );
  });
});
