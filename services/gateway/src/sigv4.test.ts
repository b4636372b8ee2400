import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import { describe, expect, it } from 'vitest';
import { S3Error } from './errors.js';
import { canonicalQuery, canonicalUri, type SignedRequest, uriEncode, verifyRequest } from './sigv4.js';

// The examples of the AWS documentation ("Signature Calculations for the Authorization Header"
// and "Authenticating Requests: Using Query Parameters") with their published signatures.
const AKID = 'AKIAIOSFODNN7EXAMPLE';
const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const HOST = 'examplebucket.s3.amazonaws.com';
const EMPTY = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const AT = Date.UTC(2013, 4, 24);
const keys = { secretOf: (id: string) => (id === AKID ? SECRET : undefined), region: 'us-east-1', now: AT };

function headerRequest(method: string, target: string, headers: Array<[string, string]>, signed: string, signature: string): SignedRequest {
  const [rawPath = '', rawQuery = ''] = target.split('?');
  const auth = `AWS4-HMAC-SHA256 Credential=${AKID}/20130524/us-east-1/s3/aws4_request,SignedHeaders=${signed},Signature=${signature}`;
  return { method, rawPath, rawQuery, rawHeaders: [...headers.flat(), 'Authorization', auth] };
}

const getObject = (signature = 'f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41') =>
  headerRequest(
    'GET',
    '/test.txt',
    [
      ['Host', HOST],
      ['Range', 'bytes=0-9'],
      ['x-amz-content-sha256', EMPTY],
      ['x-amz-date', '20130524T000000Z'],
    ],
    'host;range;x-amz-content-sha256;x-amz-date',
    signature,
  );

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return err instanceof S3Error ? err.code : String(err);
  }
}

describe('AWS documentation vectors', () => {
  it('GET Object with a Range header', () => {
    expect(verifyRequest(getObject(), keys)).toEqual({ kind: 'signed', accessKeyId: AKID, presigned: false });
  });

  it('PUT Object: Date and x-amz-storage-class signed, "$" in the key', () => {
    const req = headerRequest(
      'PUT',
      '/test%24file.text',
      [
        ['Host', HOST],
        ['Date', 'Fri, 24 May 2013 00:00:00 GMT'],
        ['x-amz-date', '20130524T000000Z'],
        ['x-amz-storage-class', 'REDUCED_REDUNDANCY'],
        ['x-amz-content-sha256', '44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072'],
      ],
      'date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class',
      '98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd',
    );
    expect(verifyRequest(req, keys).kind).toBe('signed');
  });

  it('GET Bucket lifecycle: a sub-resource without a value', () => {
    const headers: Array<[string, string]> = [
      ['Host', HOST],
      ['x-amz-date', '20130524T000000Z'],
      ['x-amz-content-sha256', EMPTY],
    ];
    const req = headerRequest(
      'GET',
      '/?lifecycle',
      headers,
      'host;x-amz-content-sha256;x-amz-date',
      'fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543',
    );
    expect(verifyRequest(req, keys).kind).toBe('signed');
  });

  it('GET Bucket (list objects): query sorted by name', () => {
    const headers: Array<[string, string]> = [
      ['Host', HOST],
      ['x-amz-date', '20130524T000000Z'],
      ['x-amz-content-sha256', EMPTY],
    ];
    const req = headerRequest(
      'GET',
      '/?max-keys=2&prefix=J',
      headers,
      'host;x-amz-content-sha256;x-amz-date',
      '34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7',
    );
    expect(verifyRequest(req, keys).kind).toBe('signed');
  });

  const presigned = (now: number, signature = 'aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404') =>
    verifyRequest(
      {
        method: 'GET',
        rawPath: '/test.txt',
        rawQuery:
          'X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request' +
          `&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=${signature}`,
        rawHeaders: ['Host', HOST],
      },
      { ...keys, now },
    );

  it('a presigned URL, valid until X-Amz-Expires has passed', () => {
    expect(presigned(AT + 3600_000)).toEqual({ kind: 'signed', accessKeyId: AKID, presigned: true });
    expect(codeOf(() => presigned(AT + 86_401_000))).toBe('AccessDenied');
    expect(codeOf(() => presigned(AT - 3600_000))).toBe('AccessDenied');
    expect(codeOf(() => presigned(AT, `${'0'.repeat(63)}1`))).toBe('SignatureDoesNotMatch');
  });
});

describe('refusals', () => {
  it('names the failure with S3 codes', () => {
    expect(codeOf(() => verifyRequest(getObject(`${'a'.repeat(64)}`), keys))).toBe('SignatureDoesNotMatch');
    expect(codeOf(() => verifyRequest(getObject(), { ...keys, secretOf: () => undefined }))).toBe('InvalidAccessKeyId');
    expect(codeOf(() => verifyRequest(getObject(), { ...keys, secretOf: () => `${SECRET}x` }))).toBe('SignatureDoesNotMatch');
    expect(codeOf(() => verifyRequest(getObject(), { ...keys, now: AT + 16 * 60_000 }))).toBe('RequestTimeTooSkewed');
    expect(verifyRequest(getObject(), { ...keys, now: AT - 14 * 60_000 }).kind).toBe('signed');
    expect(codeOf(() => verifyRequest(getObject(), { ...keys, region: 'eu-west-1' }))).toBe('AuthorizationHeaderMalformed');
  });

  it('a changed header, method or path breaks the signature', () => {
    const req = getObject();
    expect(
      codeOf(() => verifyRequest({ ...req, rawHeaders: req.rawHeaders.map((v) => (v === 'bytes=0-9' ? 'bytes=0-99' : v)) }, keys)),
    ).toBe('SignatureDoesNotMatch');
    expect(codeOf(() => verifyRequest({ ...req, method: 'HEAD' }, keys))).toBe('SignatureDoesNotMatch');
    expect(codeOf(() => verifyRequest({ ...req, rawPath: '/test.txT' }, keys))).toBe('SignatureDoesNotMatch');
    expect(codeOf(() => verifyRequest({ ...req, rawQuery: 'acl' }, keys))).toBe('SignatureDoesNotMatch');
  });

  it('no signature is anonymous; SigV2, two mechanisms and a missing payload hash are refused', () => {
    expect(verifyRequest({ method: 'GET', rawPath: '/b/k', rawQuery: '', rawHeaders: ['Host', 'h'] }, keys)).toEqual({ kind: 'anonymous' });
    const v2 = { method: 'GET', rawPath: '/b/k', rawQuery: '', rawHeaders: ['Host', 'h', 'Authorization', 'AWS AKID:sig'] };
    expect(codeOf(() => verifyRequest(v2, keys))).toBe('InvalidRequest');
    expect(codeOf(() => verifyRequest({ ...getObject(), rawQuery: 'X-Amz-Signature=x' }, keys))).toBe('InvalidArgument');
    const noHash = getObject();
    const headers = [...noHash.rawHeaders];
    headers.splice(4, 2);
    expect(codeOf(() => verifyRequest({ ...noHash, rawHeaders: headers }, keys))).toBe('InvalidRequest');
  });
});

describe('canonical forms', () => {
  it('encodes like AWS: unreserved kept, everything else %XX, "/" kept in paths', () => {
    expect(uriEncode("a b+c*!'()~_.-/é")).toBe('a%20b%2Bc%2A%21%27%28%29~_.-%2F%C3%A9');
    expect(canonicalUri('/bucket/a%2Fb/c%20d/%7e')).toBe('/bucket/a%2Fb/c%20d/~');
    expect(canonicalQuery('b=2&a=2&a=1&c&list-type=2&prefix=x%2Fy+z')).toBe('a=1&a=2&b=2&c=&list-type=2&prefix=x%2Fy%20z');
  });
});

/** The hash constructor the signer takes (it hashes, or HMACs when given a secret). */
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

describe('against the signer of the AWS SDK (@smithy/signature-v4)', () => {
  const signer = new SignatureV4({
    credentials: { accessKeyId: 'gw-key', secretAccessKey: 'gw-secret-0123456789' },
    region: 'eu-central-1',
    service: 's3',
    sha256: NodeSha256,
    // The S3 client encodes each key segment itself and has the signer take the path as it is.
    uriEscapePath: false,
  });
  const opts = { secretOf: (id: string) => (id === 'gw-key' ? 'gw-secret-0123456789' : undefined), region: 'eu-central-1' };
  const keys = ['models/x.bin', 'a b/c+d/e=f&g', 'ünïcödé/名前.safetensors', "quotes'(*)!~/tilde", 'pct%2Fliteral'];

  for (const key of keys) {
    it(`header and presigned forms of ${JSON.stringify(key)}`, async () => {
      const path = `/vol/${key.split('/').map(uriEncode).join('/')}`;
      const base = {
        method: 'GET',
        protocol: 'http:',
        hostname: '127.0.0.1',
        port: 9000,
        path,
        query: { 'list-type': '2', prefix: 'a b/', 'x-id': 'GetObject' },
        headers: { host: '127.0.0.1:9000', 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', range: 'bytes=0-1' },
      };
      const rawQuery = 'list-type=2&prefix=a%20b%2F&x-id=GetObject';
      const signed = await signer.sign({ ...base, headers: { ...base.headers } });
      const rawHeaders = Object.entries(signed.headers).flat();
      expect(verifyRequest({ method: 'GET', rawPath: path, rawQuery, rawHeaders }, opts).kind).toBe('signed');
      expect(codeOf(() => verifyRequest({ method: 'GET', rawPath: `${path}x`, rawQuery, rawHeaders }, opts))).toBe('SignatureDoesNotMatch');

      // As the S3 presigner does: S3 takes a presigned request's payload as unsigned.
      const unsigned = { host: '127.0.0.1:9000', 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' };
      const url = await signer.presign({ ...base, headers: unsigned }, { expiresIn: 300 });
      const query = Object.entries(url.query ?? {})
        .map(([k, v]) => `${uriEncode(k)}=${uriEncode(String(v))}`)
        .join('&');
      const result = verifyRequest({ method: 'GET', rawPath: path, rawQuery: query, rawHeaders: ['Host', '127.0.0.1:9000'] }, opts);
      expect(result).toEqual({ kind: 'signed', accessKeyId: 'gw-key', presigned: true });
    });
  }
});
