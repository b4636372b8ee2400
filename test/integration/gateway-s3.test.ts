import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import {
  DeleteObjectCommand,
  GetBucketLocationCommand,
  GetBucketVersioningCommand,
  GetObjectAclCommand,
  GetObjectCommand,
  GetObjectTaggingCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListMultipartUploadsCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  PutObjectCommand,
  type S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACCESS_KEY, errorCode, type GatewayFixture, rawRequest, startGateway } from '../support/gateway.js';

// The AWS SDK for JavaScript against the gateway: listing, reads, conditions, auth and refusals.

let fx: GatewayFixture;
let s3: S3Client;
const big = randomBytes(3 * (1 << 20) + 12_345);
const small = Buffer.from('{"architectures":["Llama"]}\n');
const sha = (b: Buffer | Uint8Array) => createHash('sha256').update(b).digest('hex');

async function code(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'no error';
  } catch (err) {
    if (err instanceof S3ServiceException) return `${err.name} ${err.$metadata.httpStatusCode}`;
    throw err;
  }
}

beforeAll(async () => {
  fx = await startGateway({ metricsToken: 'metrics-token-0123' });
  s3 = fx.client();
  await fx.put('/models/llm', { 'config.json': small, 'model-00001.safetensors': big, 'sub/tokenizer.json': Buffer.from('tok') });
  const names: Record<string, Buffer> = {};
  for (let i = 0; i < 25; i++) names[`f${String(i).padStart(2, '0')}.bin`] = Buffer.from(`file ${i}`);
  for (let i = 0; i < 5; i++) names[`d${i}/x.bin`] = Buffer.from(`dir ${i}`);
  names['space name+plus.bin'] = Buffer.from('odd');
  await fx.put('/many', names);
  await fx.put('/', { 'top.bin': Buffer.from('top') });
});

afterAll(async () => {
  await fx?.close();
});

describe('bucket operations', () => {
  it('ListBuckets shows the volume; HeadBucket and GetBucketLocation answer', async () => {
    const buckets = await s3.send(new ListBucketsCommand({}));
    expect(buckets.Buckets?.map((b) => b.Name)).toEqual([fx.volume]);
    const head = await s3.send(new HeadBucketCommand({ Bucket: fx.volume }));
    expect(head.$metadata.httpStatusCode).toBe(200);
    expect(head.BucketRegion).toBe('us-east-1');
    const location = await s3.send(new GetBucketLocationCommand({ Bucket: fx.volume }));
    expect(location.LocationConstraint ?? '').toBe('');
    expect(await code(s3.send(new HeadBucketCommand({ Bucket: 'other-bucket' })))).toBe('NotFound 404');
    expect(await code(s3.send(new ListObjectsV2Command({ Bucket: 'other-bucket' })))).toBe('NoSuchBucket 404');
  });
});

describe('ListObjectsV2', () => {
  it('lists everything recursively without a delimiter', async () => {
    const out = await s3.send(new ListObjectsV2Command({ Bucket: fx.volume }));
    const keys = out.Contents?.map((c) => c.Key) ?? [];
    expect(keys).toContain('models/llm/sub/tokenizer.json');
    expect(keys).toContain('many/d3/x.bin');
    expect(keys).toEqual([...keys].sort());
    expect(out.KeyCount).toBe(keys.length);
    const shard = out.Contents?.find((c) => c.Key === 'models/llm/model-00001.safetensors');
    expect(shard?.Size).toBe(big.length);
    expect(shard?.ETag).toBe(`"${sha(big)}"`);
    expect(shard?.LastModified).toBeInstanceOf(Date);
  });

  it('rolls keys up into common prefixes with "/"', async () => {
    const root = await s3.send(new ListObjectsV2Command({ Bucket: fx.volume, Delimiter: '/' }));
    expect(root.CommonPrefixes?.map((p) => p.Prefix)).toEqual(['many/', 'models/']);
    expect(root.Contents?.map((c) => c.Key)).toEqual(['top.bin']);
    const llm = await s3.send(new ListObjectsV2Command({ Bucket: fx.volume, Prefix: 'models/llm/', Delimiter: '/' }));
    expect(llm.Contents?.map((c) => c.Key)).toEqual(['models/llm/config.json', 'models/llm/model-00001.safetensors']);
    expect(llm.CommonPrefixes?.map((p) => p.Prefix)).toEqual(['models/llm/sub/']);
  });

  it('takes any prefix, not only directories', async () => {
    const out = await s3.send(new ListObjectsV2Command({ Bucket: fx.volume, Prefix: 'many/f1' }));
    expect(out.Contents?.map((c) => c.Key)).toEqual(Array.from({ length: 10 }, (_, i) => `many/f1${i}.bin`));
    const dirs = await s3.send(new ListObjectsV2Command({ Bucket: fx.volume, Prefix: 'many/d', Delimiter: '/' }));
    expect(dirs.CommonPrefixes?.map((p) => p.Prefix)).toEqual(['many/d0/', 'many/d1/', 'many/d2/', 'many/d3/', 'many/d4/']);
    expect(dirs.Contents ?? []).toEqual([]);
    const file = await s3.send(new ListObjectsV2Command({ Bucket: fx.volume, Prefix: 'models/llm/config.json' }));
    expect(file.Contents?.map((c) => c.Key)).toEqual(['models/llm/config.json']);
    for (const prefix of ['nothing/', 'models/llm/config.json/', '../', 'a//b']) {
      const none = await s3.send(new ListObjectsV2Command({ Bucket: fx.volume, Prefix: prefix }));
      expect(none.KeyCount).toBe(0);
    }
  });

  it('pages with max-keys and continuation tokens, common prefixes included, nothing twice', async () => {
    const seen: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const page: ListObjectsV2CommandOutput = await s3.send(
        new ListObjectsV2Command({ Bucket: fx.volume, Prefix: 'many/', Delimiter: '/', MaxKeys: 4, ContinuationToken: token }),
      );
      pages++;
      expect(page.KeyCount).toBeLessThanOrEqual(4);
      seen.push(...(page.Contents ?? []).map((c) => c.Key as string), ...(page.CommonPrefixes ?? []).map((p) => p.Prefix as string));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
      if (page.IsTruncated) expect(token).toBeTruthy();
    } while (token);
    expect(seen.length).toBe(31);
    expect(new Set(seen).size).toBe(31);
    expect(pages).toBe(8);
    expect(seen.filter((k) => k.endsWith('/'))).toEqual(['many/d0/', 'many/d1/', 'many/d2/', 'many/d3/', 'many/d4/']);
  });

  it('start-after skips keys, and a common prefix it falls in', async () => {
    const out = await s3.send(new ListObjectsV2Command({ Bucket: fx.volume, Prefix: 'many/', StartAfter: 'many/f20.bin' }));
    expect(out.Contents?.map((c) => c.Key)).toEqual([
      'many/f21.bin',
      'many/f22.bin',
      'many/f23.bin',
      'many/f24.bin',
      'many/space name+plus.bin',
    ]);
    const dirs = await s3.send(
      new ListObjectsV2Command({ Bucket: fx.volume, Prefix: 'many/', Delimiter: '/', StartAfter: 'many/d2/x.bin', MaxKeys: 3 }),
    );
    expect(dirs.CommonPrefixes?.map((p) => p.Prefix)).toEqual(['many/d3/', 'many/d4/']);
    expect(dirs.Contents?.map((c) => c.Key)).toEqual(['many/f00.bin']);
    const past = await s3.send(new ListObjectsV2Command({ Bucket: fx.volume, Prefix: 'many/', StartAfter: 'zzz' }));
    expect(past.KeyCount).toBe(0);
  });

  it('encoding-type=url encodes keys; max-keys above 1000 is capped; bad arguments are 400', async () => {
    const out = await s3.send(new ListObjectsV2Command({ Bucket: fx.volume, Prefix: 'many/space', EncodingType: 'url', MaxKeys: 5000 }));
    expect(out.Contents?.map((c) => c.Key)).toEqual(['many/space%20name%2Bplus.bin']);
    expect(out.MaxKeys).toBe(1000);
    expect(await code(s3.send(new ListObjectsV2Command({ Bucket: fx.volume, ContinuationToken: '!!' })))).toBe('InvalidArgument 400');
    expect(await code(s3.send(new ListObjectsV2Command({ Bucket: fx.volume, Delimiter: '-' })))).toBe('NotImplemented 501');
  });

  it('ListObjects v1 pages with markers', async () => {
    const seen: string[] = [];
    let marker: string | undefined;
    do {
      const page = await s3.send(
        new ListObjectsCommand({ Bucket: fx.volume, Prefix: 'many/', Delimiter: '/', MaxKeys: 7, Marker: marker }),
      );
      seen.push(...(page.Contents ?? []).map((c) => c.Key as string), ...(page.CommonPrefixes ?? []).map((p) => p.Prefix as string));
      marker = page.IsTruncated ? page.NextMarker : undefined;
    } while (marker);
    expect(new Set(seen).size).toBe(31);
  });
});

describe('GetObject / HeadObject', () => {
  const Key = 'models/llm/model-00001.safetensors';

  it('HeadObject: size, ETag, Last-Modified, type', async () => {
    const head = await s3.send(new HeadObjectCommand({ Bucket: fx.volume, Key }));
    expect(head.ContentLength).toBe(big.length);
    expect(head.ETag).toBe(`"${sha(big)}"`);
    expect(head.ContentType).toBe('application/octet-stream');
    expect(head.AcceptRanges).toBe('bytes');
    const entry = await fx.source.meta.stat(`/${Key}`);
    expect(head.LastModified?.getTime()).toBe(Math.floor(entry.mtime / 1000) * 1000);
  });

  it('GetObject: the whole file, then ranges of every form', async () => {
    const whole = await s3.send(new GetObjectCommand({ Bucket: fx.volume, Key }));
    expect(sha((await whole.Body?.transformToByteArray()) ?? new Uint8Array())).toBe(sha(big));
    const ranges: Array<[string, number, number]> = [
      ['bytes=0-9', 0, 9],
      [`bytes=${(1 << 20) - 5}-${(1 << 20) + 5}`, (1 << 20) - 5, (1 << 20) + 5],
      ['bytes=3000000-', 3_000_000, big.length - 1],
      ['bytes=-100', big.length - 100, big.length - 1],
      ['bytes=-99999999', 0, big.length - 1],
      [`bytes=10-${big.length * 2}`, 10, big.length - 1],
    ];
    for (const [Range, start, end] of ranges) {
      const part = await s3.send(new GetObjectCommand({ Bucket: fx.volume, Key, Range }));
      const bytes = Buffer.from((await part.Body?.transformToByteArray()) ?? []);
      expect(part.$metadata.httpStatusCode, Range).toBe(206);
      expect(part.ContentRange).toBe(`bytes ${start}-${end}/${big.length}`);
      expect(bytes.equals(big.subarray(start, end + 1)), Range).toBe(true);
    }
    expect(await code(s3.send(new GetObjectCommand({ Bucket: fx.volume, Key, Range: `bytes=${big.length}-` })))).toBe('InvalidRange 416');
  });

  it('conditional requests: 304 and 412', async () => {
    const head = await s3.send(new HeadObjectCommand({ Bucket: fx.volume, Key }));
    const later = new Date((head.LastModified?.getTime() ?? 0) + 60_000);
    const earlier = new Date((head.LastModified?.getTime() ?? 0) - 60_000);
    expect(await code(s3.send(new GetObjectCommand({ Bucket: fx.volume, Key, IfNoneMatch: head.ETag })))).toMatch(/ 304$/);
    expect(await code(s3.send(new GetObjectCommand({ Bucket: fx.volume, Key, IfModifiedSince: later })))).toMatch(/ 304$/);
    expect(await code(s3.send(new GetObjectCommand({ Bucket: fx.volume, Key, IfMatch: '"stale"' })))).toBe('PreconditionFailed 412');
    expect(await code(s3.send(new GetObjectCommand({ Bucket: fx.volume, Key, IfUnmodifiedSince: earlier })))).toBe(
      'PreconditionFailed 412',
    );
    const ok = await s3.send(
      new GetObjectCommand({ Bucket: fx.volume, Key, IfMatch: head.ETag, IfModifiedSince: earlier, Range: 'bytes=0-3' }),
    );
    expect(Buffer.from((await ok.Body?.transformToByteArray()) ?? []).equals(big.subarray(0, 4))).toBe(true);
  });

  it('the ETag changes with the content and only then', async () => {
    const Key = 'models/llm/config.json';
    const before = await s3.send(new HeadObjectCommand({ Bucket: fx.volume, Key }));
    await fx.put('/models/llm', { 'config.json': small });
    const same = await s3.send(new HeadObjectCommand({ Bucket: fx.volume, Key }));
    expect(same.ETag).toBe(before.ETag);
    await fx.put('/models/llm', { 'config.json': Buffer.from('{"changed":true}') });
    const after = await s3.send(new GetObjectCommand({ Bucket: fx.volume, Key }));
    expect(after.ETag).not.toBe(before.ETag);
    expect(await after.Body?.transformToString()).toBe('{"changed":true}');
    await fx.put('/models/llm', { 'config.json': small });
  });

  it('missing keys and directories are NoSuchKey; HEAD of them 404', async () => {
    expect(await code(s3.send(new GetObjectCommand({ Bucket: fx.volume, Key: 'models/none.bin' })))).toBe('NoSuchKey 404');
    expect(await code(s3.send(new GetObjectCommand({ Bucket: fx.volume, Key: 'models/llm' })))).toBe('NoSuchKey 404');
    expect(await code(s3.send(new HeadObjectCommand({ Bucket: fx.volume, Key: 'models/llm/' })))).toBe('NotFound 404');
  });

  it('a presigned URL reads with plain HTTP until it expires', async () => {
    const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket: fx.volume, Key }), { expiresIn: 60 });
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(sha(Buffer.from(await res.arrayBuffer()))).toBe(sha(big));
    const ranged = await fetch(url, { headers: { range: 'bytes=-5' } });
    expect(Buffer.from(await ranged.arrayBuffer()).equals(big.subarray(-5))).toBe(true);
    const tampered = url.replace('model-00001', 'model-00002');
    expect(errorCode(Buffer.from(await (await fetch(tampered)).arrayBuffer()))).toBe('SignatureDoesNotMatch');
    const expired = await getSignedUrl(s3, new GetObjectCommand({ Bucket: fx.volume, Key }), {
      expiresIn: 1,
      signingDate: new Date(Date.now() - 10_000),
    });
    const late = await fetch(expired);
    expect(late.status).toBe(403);
    expect(errorCode(Buffer.from(await late.arrayBuffer()))).toBe('AccessDenied');
  });
});

const run = promisify(execFile);

/** `aws s3 presign` of the aws CLI v1 on PATH, which signs presigned URLs with signature version 2. */
async function awsV1Presign(key: string, expiresIn: number, secret = fx.secret): Promise<string> {
  const env = {
    ...process.env,
    AWS_ACCESS_KEY_ID: ACCESS_KEY,
    AWS_SECRET_ACCESS_KEY: secret,
    AWS_DEFAULT_REGION: 'us-east-1',
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    AWS_EC2_METADATA_DISABLED: 'true',
  };
  const args = ['s3', 'presign', `s3://${fx.volume}/${key}`, '--endpoint-url', fx.endpoint, '--expires-in', String(expiresIn)];
  const url = (await run('aws', args, { env, encoding: 'utf8' })).stdout.trim();
  expect(url, 'this test needs the aws CLI v1 first on PATH (its presign makes SigV2 URLs)').toContain('AWSAccessKeyId=');
  return url;
}

/** GET with curl (the gateway runs in this process: never a synchronous spawn): the status and the body. */
async function curl(url: string): Promise<{ status: number; body: Buffer }> {
  const out = (await run('curl', ['-s', '-w', '\n%{http_code}', url], { encoding: 'buffer', maxBuffer: 64 << 20 })).stdout;
  const cut = out.lastIndexOf(10);
  return { status: Number(out.subarray(cut + 1).toString()), body: out.subarray(0, cut) };
}

describe('signature version 2 presigned URLs (aws CLI v1 `presign`)', () => {
  it('read with curl while valid; a wrong secret, a changed key or a passed Expires are refused with the reason', async () => {
    const shard = await curl(await awsV1Presign('models/llm/model-00001.safetensors', 600));
    expect(shard.status, shard.body.toString().slice(0, 300)).toBe(200);
    expect(sha(shard.body)).toBe(sha(big));
    const odd = await curl(await awsV1Presign('many/space name+plus.bin', 600));
    expect([odd.status, odd.body.toString()]).toEqual([200, 'odd']);

    const wrong = await curl(await awsV1Presign('top.bin', 600, `${fx.secret}x`));
    expect([wrong.status, errorCode(wrong.body)]).toEqual([403, 'SignatureDoesNotMatch']);
    const changed = await curl((await awsV1Presign('top.bin', 600)).replace('top.bin', 'many/f01.bin'));
    expect([changed.status, errorCode(changed.body)]).toEqual([403, 'SignatureDoesNotMatch']);
    const soon = await awsV1Presign('top.bin', 1);
    await new Promise((r) => setTimeout(r, 2100));
    const late = await curl(soon);
    expect([late.status, errorCode(late.body)]).toEqual([403, 'AccessDenied']);
    expect(late.body.toString()).toContain('request has expired');
  });
});

describe('auth and refusals', () => {
  it('a wrong secret is SignatureDoesNotMatch, an unknown key InvalidAccessKeyId, no signature AccessDenied', async () => {
    const wrong = fx.client({ accessKeyId: ACCESS_KEY, secretAccessKey: `${fx.secret}x` });
    expect(await code(wrong.send(new GetObjectCommand({ Bucket: fx.volume, Key: 'top.bin' })))).toBe('SignatureDoesNotMatch 403');
    expect(await code(wrong.send(new ListObjectsV2Command({ Bucket: fx.volume })))).toBe('SignatureDoesNotMatch 403');
    const unknown = fx.client({ accessKeyId: 'nobody', secretAccessKey: fx.secret });
    expect(await code(unknown.send(new ListObjectsV2Command({ Bucket: fx.volume })))).toBe('InvalidAccessKeyId 403');
    const res = await rawRequest(fx.port, `/${fx.volume}/top.bin`);
    expect(res.status).toBe(403);
    expect(errorCode(res.body)).toBe('AccessDenied');
    expect(res.body.toString()).toMatch(/<RequestId>[0-9A-F]{16}<\/RequestId>/);
    expect(res.body.toString()).toContain(`<Resource>/${fx.volume}/top.bin</Resource>`);
  });

  it('writes are AccessDenied, whatever the signature', async () => {
    expect(await code(s3.send(new PutObjectCommand({ Bucket: fx.volume, Key: 'new.bin', Body: 'x' })))).toBe('AccessDenied 403');
    expect(await code(s3.send(new DeleteObjectCommand({ Bucket: fx.volume, Key: 'top.bin' })))).toBe('AccessDenied 403');
    const post = await rawRequest(fx.port, `/${fx.volume}/big.bin?uploads`, { method: 'POST' });
    expect([post.status, errorCode(post.body)]).toEqual([403, 'AccessDenied']);
    expect((await fx.source.meta.tryStat('/new.bin')) === undefined).toBe(true);
  });

  it('unknown sub-resources are NotImplemented', async () => {
    const Bucket = fx.volume;
    expect(await code(s3.send(new GetObjectAclCommand({ Bucket, Key: 'top.bin' })))).toBe('NotImplemented 501');
    expect(await code(s3.send(new GetObjectTaggingCommand({ Bucket, Key: 'top.bin' })))).toBe('NotImplemented 501');
    expect(await code(s3.send(new GetBucketVersioningCommand({ Bucket })))).toBe('NotImplemented 501');
    expect(await code(s3.send(new ListMultipartUploadsCommand({ Bucket })))).toBe('NotImplemented 501');
    expect(await code(s3.send(new GetObjectCommand({ Bucket, Key: 'top.bin', PartNumber: 1 })))).toBe('NotImplemented 501');
  });

  it('/-/metrics needs the bearer token or a signature; /-/healthz is open', async () => {
    expect((await rawRequest(fx.port, '/-/healthz')).status).toBe(200);
    expect((await rawRequest(fx.port, '/-/metrics')).status).toBe(403);
    expect((await rawRequest(fx.port, '/-/metrics', { headers: { authorization: 'Bearer wrong' } })).status).toBe(403);
    const res = await rawRequest(fx.port, '/-/metrics', { headers: { authorization: 'Bearer metrics-token-0123' } });
    expect(res.status).toBe(200);
    const text = res.body.toString();
    expect(text).toMatch(/ferry_gateway_requests_total\{[^}]*operation="GetObject"[^}]*status="206"/);
    expect(text).toMatch(/ferry_gateway_bytes_served_total\{[^}]*\} [1-9]/);
    expect(text).toMatch(/ferry_gateway_tier_bytes_total\{[^}]*tier="store:src"[^}]*\} [1-9]/);
  });
});
