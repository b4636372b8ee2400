import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { expectSuccess, type FerryProcess, runFerry, spawnFerry, writeFerryConfig, writeRandomFile } from '../support/cli.js';
import { uniqueName } from '../support/random.js';
import { freePort } from '../support/servers/free-port.js';

// 64 clients read a 1 GiB file through one gateway process at once: the gateway's global cap on
// streams and bytes in flight holds its peak RSS under the cap plus a fixed overhead, the requests
// beyond the cap are answered SlowDown, and both the SDK and the aws CLI retry them to success.

const MiB = 2 ** 20;
const FILE_BYTES = 1024 * MiB;
const CLIENTS = 64;
const AWS_CLIS = 4;
const LIMITS = { maxStreams: 16, maxBytesInFlight: 512 * MiB };
const MEMORY_BYTES = 64 * MiB;
/** The process itself (Node, fastify, SDKs, Redis client) and what the allocator keeps around. */
const OVERHEAD = 256 * MiB;
const ACCESS_KEY = 'rss-reader';
const SECRET = randomBytes(20).toString('base64url');
const METRICS_TOKEN = randomBytes(12).toString('hex');

let dir: string;
let configPath: string;
let volume: string;
let sha256: string;
let endpoint: string;
let gateway: FerryProcess;

async function hashOf(stream: Readable | NodeJS.ReadableStream): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const part of stream as AsyncIterable<Buffer>) {
    hash.update(part);
    bytes += part.length;
  }
  return { sha256: hash.digest('hex'), bytes };
}

function sdkRead(): Promise<{ sha256: string; bytes: number }> {
  const client = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET },
    // SlowDown is a throttling error: the SDK backs off and tries again.
    maxAttempts: 100,
  });
  return client
    .send(new GetObjectCommand({ Bucket: volume, Key: 'models/big.bin' }))
    .then((res) => hashOf(res.Body as Readable))
    .finally(() => client.destroy());
}

function awsRead(): Promise<{ sha256: string; bytes: number }> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(env)) if (name.startsWith('AWS_')) delete env[name];
  const child = spawn('/usr/bin/aws', ['s3', 'cp', `s3://${volume}/models/big.bin`, '-', '--endpoint-url', endpoint, '--no-progress'], {
    env: {
      ...env,
      HOME: dir,
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_ACCESS_KEY_ID: ACCESS_KEY,
      AWS_SECRET_ACCESS_KEY: SECRET,
      AWS_DEFAULT_REGION: 'us-east-1',
      AWS_CONFIG_FILE: join(dir, 'aws-config'),
      AWS_SHARED_CREDENTIALS_FILE: join(dir, 'no-aws-credentials'),
      // The CLI's own retry of throttling errors (SlowDown), with room for a crowded gateway.
      AWS_RETRY_MODE: 'standard',
      AWS_MAX_ATTEMPTS: '100',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
  return hashOf(child.stdout).then(async (got) => {
    const code = await exited;
    if (code !== 0) throw new Error(`aws s3 cp exited ${code}: ${stderr}`);
    return got;
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-rss-gw-'));
  volume = uniqueName('rss');
  const port = await freePort();
  endpoint = `http://127.0.0.1:${port}`;
  configPath = await writeFerryConfig(dir, {
    volume,
    source: 'src',
    chunkSize: '8MiB',
    regions: { src: { store: `file://${dir}/src?fsync=0`, redis: `${inject('redisUrl')}/12` } },
    reader: { memoryBytes: MEMORY_BYTES, prefetch: 4 },
    gateway: {
      listen: `127.0.0.1:${port}`,
      accessKeys: [{ accessKeyId: ACCESS_KEY, secretAccessKey: SECRET }],
      limits: LIMITS,
    },
  });
  // One GetObject per download, like the SDK clients: each is a stream the gateway admits or
  // answers SlowDown, and the CLI's retries (not its part scheduler) must carry it through.
  await writeFile(join(dir, 'aws-config'), '[default]\ns3 =\n  multipart_threshold = 4GB\n');
  sha256 = await writeRandomFile(join(dir, 'big.bin'), FILE_BYTES);
  expectSuccess(await runFerry(['put', join(dir, 'big.bin'), '/models/big.bin'], { config: configPath, timeoutMs: 300_000 }));
  await rm(join(dir, 'big.bin'));
  gateway = spawnFerry(['gateway', '--region', 'src', '--json'], {
    config: configPath,
    measureRss: true,
    timeoutMs: 1_200_000,
    env: { FERRY_GATEWAY_METRICS_TOKEN: METRICS_TOKEN, FERRY_LOG_LEVEL: 'warn' },
  });
  await new Promise<void>((resolve, reject) => {
    gateway.onLine((line) => {
      if (line.includes('"started"')) resolve();
    });
    gateway.result.then((r) => reject(new Error(`gateway exited: ${r.stderr}`)), reject);
  });
}, 600_000);

afterAll(async () => {
  if (gateway && gateway.child.exitCode === null) gateway.child.kill('SIGKILL');
  if (dir) await rm(dir, { recursive: true, force: true });
});

it(`${CLIENTS} clients read a 1 GiB file at once: every copy is right, some were told SlowDown, and peak RSS stays under the cap plus overhead`, async () => {
  const reads = Array.from({ length: CLIENTS }, (_, i) => (i < AWS_CLIS ? awsRead() : sdkRead()));
  const results = await Promise.all(reads);
  for (const [i, r] of results.entries()) expect(r, `client ${i}`).toEqual({ sha256, bytes: FILE_BYTES });

  const metrics = await (await fetch(`${endpoint}/-/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text();
  const slowDowns = Number(
    /ferry_gateway_requests_total\{[^}]*operation="GetObject"[^}]*status="503"[^}]*\} (\d+)/.exec(metrics)?.[1] ?? 0,
  );
  expect(slowDowns, 'requests beyond the cap are answered SlowDown').toBeGreaterThan(0);

  gateway.child.kill('SIGTERM');
  const done = await gateway.result;
  const peak = done.maxRssBytes ?? Number.POSITIVE_INFINITY;
  const cap = LIMITS.maxBytesInFlight + MEMORY_BYTES;
  // Figures go to a file only when asked (integration tests print none).
  const figures = process.env.FERRY_TEST_FIGURES;
  if (figures) {
    const line = { test: 'security-rss', clients: CLIENTS, fileBytes: FILE_BYTES, peakRss: peak, cap, overhead: OVERHEAD, slowDowns };
    await appendFile(figures, `${JSON.stringify(line)}\n`);
  }
  expect(
    peak,
    `peak RSS ${(peak / MiB).toFixed(0)} MiB; cap ${cap / MiB} MiB (bytes in flight + reader memory) + overhead ${OVERHEAD / MiB} MiB; ${slowDowns} SlowDown answers`,
  ).toBeLessThan(cap + OVERHEAD);
}, 1_500_000);
