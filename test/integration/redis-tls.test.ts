import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, type RedisTarget, sha256Hex, silentLogger, UnauthorizedError } from '@ferry/core';
import { duplicateConnection } from '@ferry/meta';
import { openRegion } from '@ferry/region';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOneLineError, expectSuccess, type FerryResult, requireBuiltCli, runFerry, sha256File } from '../support/cli.js';
import { createRegions, fileDigest, MiB, putBytes, type Regions, waitFor, waitForConvergence } from '../support/regions.js';
import { startReplicator } from '../support/replicators.js';
import { freePort } from '../support/servers/free-port.js';
import { type RunningRedisCluster, startRedisCluster } from '../support/servers/redis-cluster.js';
import { command, type RedisProcess, type RedisTestTls, spawnRedis } from '../support/servers/redis-process.js';
import { type RunningSentinel, startRedisSentinel } from '../support/servers/redis-sentinel.js';
import { makeCertificates, type TestCertificates } from '../support/tls.js';

/*
 * A region's Redis over TLS in each of its shapes, with a private CA made by `openssl`: one
 * server (`{ url: "rediss://…", tls }`), a Sentinel-managed pair whose sentinels serve TLS too,
 * and a Cluster whose bus and replication are TLS. None of these servers has a plain port. In
 * each, a model put at the source reaches the mirror through an in-process replicator (its
 * watcher's blocking reads and its BullMQ workers are duplicated connections, so they must keep
 * the TLS options) and is read back from the mirror; and a client without the CA fails in one
 * line that names the Redis and says its certificate is not trusted.
 */

const MODEL = {
  '/models/tls/model-00001-of-00001.safetensors': randomBytes(3 * MiB + 17),
  '/models/tls/config.json': Buffer.from('{"model_type":"llama"}\n'),
};

const NOT_TRUSTED =
  /: TLS: [^\n]*certificate[^\n]* \((SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)\); the region's redis\.tls\.ca must hold the CA that signed the server's certificate$/;

let dir: string;
let certs: TestCertificates;
let tls: RedisTestTls;

beforeAll(async () => {
  requireBuiltCli();
  dir = await mkdtemp(join(tmpdir(), 'ferry-redis-tls-'));
  certs = await makeCertificates(join(dir, 'certs'));
  tls = { ca: certs.ca, cert: certs.cert, key: certs.key };
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Put MODEL at the source, let the mirror's replicator copy it, and read it back from the mirror's metadata and store. */
async function putMirrorRead(regions: Regions): Promise<void> {
  // What the watcher and the copy workers run on: a second connection, TLS like the first.
  const dup = duplicateConnection(regions.source.redis, 'redis-tls-dup');
  try {
    expect(await dup.ping()).toBe('PONG');
  } finally {
    dup.disconnect();
  }
  const replicator = await startReplicator(regions, 'eu');
  try {
    await putBytes(regions, MODEL);
    await waitForConvergence(regions, 'eu', 30_000);
    for (const [path, bytes] of Object.entries(MODEL)) expect(await fileDigest(regions.mirror('eu'), path), path).toBe(sha256Hex(bytes));
  } finally {
    await replicator.stop();
  }
}

/** What `region.ready()` throws for the source region of `regions` with its `redis` replaced by `redis`. */
async function readyError(regions: Regions, redis: RedisTarget | Record<string, unknown>): Promise<Error> {
  const doc = JSON.parse(await readFile(regions.configPath, 'utf8'));
  doc.regions.src.redis = redis;
  const region = openRegion({ config: parseConfig(doc), region: 'src', role: 'client', logger: silentLogger });
  try {
    return await region.ready().then(
      () => {
        throw new Error('ready() succeeded without the CA');
      },
      (err: Error) => err,
    );
  } finally {
    await region.close();
  }
}

/** The config of `regions` with the source's `redis` replaced, written beside it; returns its path. */
async function configWith(regions: Regions, name: string, redis: unknown): Promise<string> {
  const doc = JSON.parse(await readFile(regions.configPath, 'utf8'));
  doc.regions.src.redis = redis;
  const path = join(regions.dir, `${name}.yaml`);
  await writeFile(path, JSON.stringify(doc, null, 2));
  return path;
}

describe('one server over TLS', () => {
  let server: RedisProcess;
  let mutual: RedisProcess;
  let regions: Regions;
  let url: (db: number) => string;

  beforeAll(async () => {
    const noPersistence = ['--save', '', '--appendonly', 'no'];
    [server, mutual] = await Promise.all([
      freePort().then((port) => spawnRedis(dir, port, noPersistence, { tls })),
      freePort().then((port) => spawnRedis(dir, port, noPersistence, { tls: { ...tls, authClients: true } })),
    ]);
    url = (db) => `rediss://127.0.0.1:${server.port}/${db}`;
    regions = await createRegions({
      chunkSize: MiB,
      source: { redis: { url: url(0), tls: { ca: certs.ca } } },
      mirrors: { eu: { redis: { url: url(1), tls: { ca: certs.ca } } } },
    });
  });

  afterAll(async () => {
    await regions?.close();
    await Promise.allSettled([server?.stop(), mutual?.stop()]);
  });

  it('mirrors a model and reads it back, also with `ferry get` from the mirror', async () => {
    await putMirrorRead(regions);
    const out = join(regions.dir, 'out');
    const get = await runFerry(['get', '/models/tls', out, '--region', 'eu', '--json', '--config', regions.configPath]);
    expectSuccess(get);
    for (const [path, bytes] of Object.entries(MODEL)) {
      expect(await sha256File(join(out, path.slice('/models/tls/'.length))), path).toBe(sha256Hex(bytes));
    }
  });

  it('a client without the CA, or with another CA, fails in one line saying the certificate is not trusted', async () => {
    const other = await makeCertificates(join(dir, 'other-certs'));
    const [noCa, otherCa] = (await Promise.all([
      configWith(regions, 'no-ca', url(0)).then((config) => runFerry(['ls', '/', '--config', config])),
      configWith(regions, 'other-ca', { url: url(0), tls: { ca: other.ca } }).then((config) => runFerry(['ls', '/', '--config', config])),
    ])) as [FerryResult, FerryResult];
    for (const result of [noCa, otherCa]) {
      const line = expectOneLineError(result, 1, `ferry: Redis at rediss://127.0.0.1:${server.port}/0: TLS: `);
      expect(line).toMatch(NOT_TRUSTED);
    }
  });

  it('a CA file that cannot be read is one config error naming the key and the file', async () => {
    const missing = join(dir, 'nope', 'ca.pem');
    const config = await configWith(regions, 'missing-ca', { url: url(0), tls: { ca: missing } });
    const result = await runFerry(['ls', '/', '--config', config]);
    expectOneLineError(result, 2, `ferry: regions.src.redis.tls.ca: cannot read the CA bundle ${missing}: no such file or directory`);
  });

  it('a server that requires client certificates takes `cert` and `key`, and says when they are missing', async () => {
    const at = `rediss://127.0.0.1:${mutual.port}/0`;
    const [withCert, without] = (await Promise.all([
      configWith(regions, 'mutual', { url: at, tls: { ca: certs.ca, cert: certs.cert, key: certs.key } }).then((config) =>
        runFerry(['ls', '/', '--config', config]),
      ),
      configWith(regions, 'mutual-no-cert', { url: at, tls: { ca: certs.ca } }).then((config) => runFerry(['ls', '/', '--config', config])),
    ])) as [FerryResult, FerryResult];
    expectSuccess(withCert);
    expectOneLineError(
      without,
      1,
      `ferry: Redis at ${at}: TLS: tlsv13 alert certificate required (ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED); the server refused this client's certificate (the region's redis.tls.cert and key)`,
    );
  });
});

describe('Sentinel over TLS: sentinels and servers', () => {
  let sentinel: RunningSentinel;
  let regions: Regions;

  beforeAll(async () => {
    sentinel = await startRedisSentinel({ tls });
    regions = await createRegions({
      chunkSize: MiB,
      // A put waits for the replica (WAIT, the default minReplicas 1): replication is TLS too.
      source: { redis: sentinel.target(0) },
      mirrors: { eu: { redis: sentinel.target(1) } },
    });
  });

  afterAll(async () => {
    await regions?.close();
    await sentinel?.stop();
  });

  it('mirrors a model and reads it back', async () => {
    expect(regions.source.config.redis).toMatchObject({ tls: { ca: certs.ca } });
    await putMirrorRead(regions);
  });

  it('a client without the CA fails in one line naming the sentinels', async () => {
    const err = await readyError(regions, { ...sentinel.target(0), tls: {} });
    expect(err).toBeInstanceOf(UnauthorizedError);
    expect(err.message).toMatch(/^Redis at sentinels 127\.0\.0\.1:\d+,127\.0\.0\.1:\d+,127\.0\.0\.1:\d+ \(master mymaster, db 0\): TLS: /);
    expect(err.message).toMatch(NOT_TRUSTED);
  });
});

describe('Cluster over TLS: clients, cluster bus and replication', () => {
  let src: RunningRedisCluster;
  let eu: RunningRedisCluster;
  let regions: Regions;

  beforeAll(async () => {
    // The source's masters have a replica each (a put waits for it); the mirror's have none.
    [src, eu] = await Promise.all([startRedisCluster({ replicas: 1, tls }), startRedisCluster({ tls })]);
    regions = await createRegions({ chunkSize: MiB, source: { redis: src.target }, mirrors: { eu: { redis: eu.target } } });
    const master = Number((await src.nodeOf(regions.source.meta.keys.log)).split(':')[1]);
    await waitFor(
      async () => /slave0:[^\n]*state=online/.test(String(await command(master, ['INFO', 'replication'], undefined, tls))),
      20_000,
      'the replica of the volume’s master online',
      { everyMs: 100, tolerateErrors: true },
    );
  });

  afterAll(async () => {
    await regions?.close();
    await Promise.allSettled([src?.stop(), eu?.stop()]);
  });

  it('mirrors a model and reads it back', async () => {
    expect(regions.source.config.redis).toMatchObject({ minReplicas: 1, tls: { ca: certs.ca } });
    await putMirrorRead(regions);
  });

  it('a client without the CA fails in one line naming the nodes', async () => {
    const err = await readyError(regions, { ...src.target, tls: {} });
    expect(err).toBeInstanceOf(UnauthorizedError);
    expect(err.message).toMatch(/^Redis at cluster 127\.0\.0\.1:\d+(,127\.0\.0\.1:\d+){5}: TLS: /);
    expect(err.message).toMatch(NOT_TRUSTED);
  });
});
