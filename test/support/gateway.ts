import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { type Entry, type FerryConfig, type Logger, parseConfig, silentLogger } from '@ferry/core';
import { Gateway } from '@ferry/gateway';
import { connectRedis, Meta, MirrorMeta } from '@ferry/meta';
import { FsStore } from '@ferry/stores';
import { planPut, putFiles } from '@ferry/writer';
import type { Redis } from 'ioredis';
import { inject } from 'vitest';
import { uniqueName } from './random.js';

/*
 * A volume with a source region (and optionally a mirror) on the run's redis-server and fresh
 * file:// stores, served by a real Gateway on a loopback port, plus S3 clients pointed at it.
 */

// Volumes are random, so gateway test files can share these databases.
const SOURCE_DB = 8;
const MIRROR_DB = 9;

export const ACCESS_KEY = 'gateway-test-key';

export interface GatewayFixture {
  volume: string;
  root: string;
  config: FerryConfig;
  secret: string;
  gateway: Gateway;
  endpoint: string;
  port: number;
  source: { store: FsStore; meta: Meta; redis: Redis };
  /** Present when started with `mirror: true`: the gateway reads this region. */
  mirror?: { store: FsStore; meta: Meta; mirror: MirrorMeta; redis: Redis };
  /** An SDK client with the gateway's key (or the given credentials). */
  client(credentials?: { accessKeyId: string; secretAccessKey: string }): S3Client;
  /** Write `files` (relative name → bytes) under volume directory `dir` in one commit. */
  put(dir: string, files: Record<string, Buffer>): Promise<Entry[]>;
  /** Apply the source's change log to the mirror (what the replicator's watcher does). */
  syncMirror(): Promise<void>;
  close(): Promise<void>;
}

export interface FixtureOptions {
  anonymous?: boolean;
  chunkSize?: number;
  mirror?: boolean;
  metricsToken?: string;
  memoryBytes?: number;
  logger?: Logger;
  /** Serve HTTPS with these PEM files. */
  tls?: { cert: string; key: string };
  /** `gateway.limits` (timeouts, streams, bytes in flight). */
  limits?: Record<string, unknown>;
}

export async function startGateway(options: FixtureOptions = {}): Promise<GatewayFixture> {
  const volume = uniqueName('gw');
  const root = await mkdtemp(join(tmpdir(), 'ferry-gateway-'));
  const redisUrl = inject('redisUrl');
  const secret = randomBytes(20).toString('base64url');
  const config = parseConfig({
    volume,
    chunkSize: options.chunkSize ?? 1 << 20,
    source: 'src',
    regions: {
      src: { store: `file://${root}/src`, redis: `${redisUrl}/${SOURCE_DB}` },
      eu: { store: `file://${root}/eu`, redis: `${redisUrl}/${MIRROR_DB}` },
    },
    gateway: {
      listen: '127.0.0.1:0',
      anonymous: options.anonymous ?? false,
      accessKeys: [{ accessKeyId: ACCESS_KEY, secretAccessKey: secret }],
      region: 'us-east-1',
      ...(options.tls ? { tls: options.tls } : {}),
      ...(options.limits ? { limits: options.limits } : {}),
    },
    reader: { memoryBytes: options.memoryBytes ?? 64 << 20, prefetch: 4 },
  });
  const sourceRedis = connectRedis(`${redisUrl}/${SOURCE_DB}`);
  const source = {
    store: new FsStore({ root: `${root}/src`, fsync: false }),
    meta: new Meta({ redis: sourceRedis, volume }),
    redis: sourceRedis,
  };
  let mirror: GatewayFixture['mirror'];
  if (options.mirror) {
    const redis = connectRedis(`${redisUrl}/${MIRROR_DB}`);
    mirror = {
      store: new FsStore({ root: `${root}/eu`, fsync: false }),
      meta: new Meta({ redis, volume }),
      mirror: new MirrorMeta({ redis, volume }),
      redis,
    };
  }
  const gateway = new Gateway({
    config,
    region: options.mirror ? 'eu' : 'src',
    logger: options.logger ?? silentLogger,
    ...(options.metricsToken ? { metricsToken: options.metricsToken } : {}),
    graceMs: 1000,
  });
  await gateway.start();
  const port = Number(new URL(gateway.address ?? '').port);
  const endpoint = `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const clients: S3Client[] = [];
  let staged = 0;

  return {
    volume,
    root,
    config,
    secret,
    gateway,
    endpoint,
    port,
    source,
    ...(mirror ? { mirror } : {}),
    client(credentials = { accessKeyId: ACCESS_KEY, secretAccessKey: secret }) {
      const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials, maxAttempts: 1 });
      clients.push(client);
      return client;
    },
    async put(dir, files) {
      const local = join(root, 'staging', String(staged++));
      for (const [name, bytes] of Object.entries(files)) {
        await mkdir(dirname(join(local, name)), { recursive: true });
        await writeFile(join(local, name), bytes);
      }
      const plan = await planPut(local, dir);
      const summary = await putFiles({
        store: source.store,
        meta: source.meta,
        files: plan.files,
        chunkSize: config.chunkSize,
        concurrency: 4,
        holdTtlMs: config.writer.holdTtl,
        logger: silentLogger,
      });
      return summary.entries;
    },
    async syncMirror() {
      if (!mirror) throw new Error('started without a mirror');
      await mirror.mirror.apply(await source.meta.log.readChanges('0-0', { count: 10_000 }));
    },
    async close() {
      for (const c of clients) c.destroy();
      await gateway.stop();
      sourceRedis.disconnect();
      mirror?.redis.disconnect();
      await rm(root, { recursive: true, force: true });
    },
  };
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** A request with the path sent exactly as given (fetch and the SDK would normalise "..", "%2e"). */
export function rawRequest(
  port: number,
  path: string,
  options: { method?: string; headers?: Record<string, string> } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers: options.headers ?? {} }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (b: Buffer) => parts.push(b));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** The `<Code>` of an S3 XML error body. */
export function errorCode(body: Buffer | string): string | undefined {
  return /<Code>([^<]*)<\/Code>/.exec(body.toString())?.[1];
}

/** An rclone config at `path` with one remote, `gw`, for the fixture's gateway (path-style S3). */
export async function writeRcloneConfig(path: string, fx: Pick<GatewayFixture, 'endpoint' | 'secret'>): Promise<string> {
  const lines = [
    '[gw]',
    'type = s3',
    'provider = Other',
    `endpoint = ${fx.endpoint}`,
    'force_path_style = true',
    `access_key_id = ${ACCESS_KEY}`,
    `secret_access_key = ${fx.secret}`,
    'region = us-east-1',
    '',
  ];
  await writeFile(path, lines.join('\n'));
  return path;
}

/**
 * The environment of a peer tool (aws CLI, rclone) run against the fixture's gateway: our keys
 * only, its config files under `home`, no instance-metadata probing, and none of the machine's
 * AWS_*, RCLONE_* or SSL_* settings (no CA bundle override).
 */
export function peerEnv(home: string, fx: Pick<GatewayFixture, 'secret'>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(env)) {
    if (name.startsWith('AWS_') || name.startsWith('RCLONE_') || name.startsWith('SSL_')) delete env[name];
  }
  return {
    ...env,
    HOME: home,
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_ACCESS_KEY_ID: ACCESS_KEY,
    AWS_SECRET_ACCESS_KEY: fx.secret,
    AWS_DEFAULT_REGION: 'us-east-1',
    AWS_CONFIG_FILE: join(home, 'aws-config'),
    AWS_SHARED_CREDENTIALS_FILE: join(home, 'aws-credentials'),
    AWS_PAGER: '',
  };
}
