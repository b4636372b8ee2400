import { execFile } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { connect } from 'node:tls';
import { promisify } from 'node:util';
import { CacheNodeClient, metricValue } from '@ferry/cache';
import { parseConfig } from '@ferry/core';
import type { CacheMember } from '@ferry/meta';
import { Replicator } from '@ferry/replicator';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CacheRegions, sha256Of } from '../support/cache-cluster.js';
import { expectOneLineError, expectSuccess, jsonResult, runFerry } from '../support/cli.js';
import { CACHE_CLIENT } from '../support/defaults.js';
import { type GatewayFixture, peerEnv, startGateway, writeRcloneConfig } from '../support/gateway.js';
import { testLogger } from '../support/replicators.js';
import { freePort } from '../support/servers/free-port.js';
import { makeCertificates, type TestCertificates } from '../support/tls.js';

// Every HTTP service over TLS with a private CA made here by `openssl`: the gateway (aws CLI and
// rclone with the CA), HTTPS cache nodes (a replicator warms them, `ferry get` reads through
// them) and the control API; plain HTTP on those ports and a client without the CA both fail.

const run = promisify(execFile);
const MiB = 2 ** 20;

/** A plain-HTTP GET to a port: resolves with the status, or rejects when the server refuses it. */
function plainGet(port: number, path = '/'): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, timeout: 5_000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** The fingerprint of the certificate a TLS port presents now. */
function presented(port: number, ca: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
      resolve(socket.getPeerX509Certificate()?.fingerprint256 ?? '');
      socket.end();
    });
    socket.on('error', reject);
  });
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(relative(dir, join(e.parentPath, e.name)));
  }
  return out.sort();
}

describe('the gateway over TLS', () => {
  const MODEL: Record<string, Buffer> = {
    'config.json': Buffer.from('{"model_type":"llama"}\n'),
    'model-00001-of-00001.safetensors': randomBytes(13 * MiB + 5),
    'tokenizer.json': randomBytes(200_000),
  };
  let fx: GatewayFixture;
  let certs: TestCertificates;
  let home: string;

  beforeAll(async () => {
    const dir = join(tmpdir(), `ferry-tls-${randomBytes(4).toString('hex')}`);
    certs = await makeCertificates(dir);
    fx = await startGateway({ chunkSize: 4 * MiB, tls: { cert: certs.cert, key: certs.key } });
    home = join(fx.root, 'home');
    await mkdir(home, { recursive: true });
    await writeFile(join(home, 'aws-config'), '[default]\ns3 =\n  multipart_threshold = 8MB\n  multipart_chunksize = 5MB\n');
    await fx.put('/models/tls', MODEL);
  });
  afterAll(async () => {
    await fx?.close();
  });

  it('serves https only: aws s3 sync with --ca-bundle is byte-identical; without the CA it fails with one line', async () => {
    expect(fx.endpoint.startsWith('https://')).toBe(true);
    const target = join(fx.root, 'aws-out');
    const args = ['s3', 'sync', `s3://${fx.volume}/models/tls`, target, '--endpoint-url', fx.endpoint, '--no-progress'];
    await run('/usr/bin/aws', [...args, '--ca-bundle', certs.ca], { env: peerEnv(home, fx), timeout: 60_000 });
    expect(await filesUnder(target)).toEqual(Object.keys(MODEL).sort());
    for (const [name, bytes] of Object.entries(MODEL)) expect((await readFile(join(target, name))).equals(bytes), name).toBe(true);

    const refused = await run('/usr/bin/aws', [...args.slice(0, 3), join(fx.root, 'aws-no-ca'), ...args.slice(4)], {
      env: peerEnv(home, fx),
      timeout: 60_000,
    }).then(
      () => undefined,
      (err: { stderr: string }) => err.stderr.trim(),
    );
    expect(refused).toBeDefined();
    expect(refused?.split('\n')).toHaveLength(1);
    expect(refused).toMatch(/SSL validation failed.*certificate verify failed/);
  });

  it('rclone with --ca-cert copies byte-identical', async () => {
    const config = join(home, 'rclone.conf');
    await writeRcloneConfig(config, fx);
    const target = join(fx.root, 'rclone-out');
    const args = ['copy', `gw:${fx.volume}/models/tls`, target, '--config', config, '--retries', '1', '--low-level-retries', '1'];
    await run('rclone', [...args, '--ca-cert', certs.ca], { env: peerEnv(home, fx), timeout: 60_000 });
    for (const [name, bytes] of Object.entries(MODEL)) expect((await readFile(join(target, name))).equals(bytes), name).toBe(true);
  });

  it('refuses plain HTTP on its port, and presents a renewed certificate after SIGHUP', async () => {
    await expect(plainGet(fx.port, '/-/healthz')).rejects.toThrow(/socket hang up|ECONNRESET|Parse Error/);
    const ca = await readFile(certs.ca);
    const before = await presented(fx.port, ca);
    expect(before).toBe(new X509Certificate(await readFile(certs.cert)).fingerprint256);
    await copyFile(certs.renewed.cert, certs.cert);
    await copyFile(certs.renewed.key, certs.key);
    process.kill(process.pid, 'SIGHUP');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await presented(fx.port, ca)).toBe(new X509Certificate(await readFile(certs.renewed.cert)).fingerprint256);
  });
});

describe('HTTPS cache nodes and control API', () => {
  let r: CacheRegions;
  let certs: TestCertificates;
  let replicator: Replicator;
  let node: CacheMember;
  let apiPort: number;
  const adminToken = `a-${randomBytes(8).toString('hex')}`;
  let file: { path: string; sha256: string; size: number };

  beforeAll(async () => {
    const redisUrl = inject('redisUrl');
    apiPort = await freePort();
    const dir = join(tmpdir(), `ferry-tls-nodes-${randomBytes(4).toString('hex')}`);
    certs = await makeCertificates(dir);
    const tls = { cert: certs.cert, key: certs.key, ca: certs.ca };
    r = await CacheRegions.create(redisUrl, {
      chunkSize: MiB,
      replicas: 1,
      roles: true,
      tls,
      api: { listen: `127.0.0.1:${apiPort}`, readToken: `r-${adminToken}`, adminToken, tls },
    });
    const [model] = await r.putModel('/models/tls', 1, 3 * MiB + 10);
    file = { path: model?.entry.path as string, sha256: model?.sha256 as string, size: model?.entry.size as number };
    // A node id with dots (the default `hostname()-port` on most cloud hosts) names warm jobs too.
    await r.startNodes([{ id: 'gpu-1.eu-west.internal', weight: 1, capacity: '256MiB' }]);
    node = (await r.members())[0] as CacheMember;
    replicator = new Replicator({
      config: parseConfig(JSON.parse(await readFile(r.configPath, 'utf8'))),
      region: 'eu',
      logger: testLogger('eu'),
      watcher: { leaseTtlMs: 1500 },
      // The model's chunks are in the region's store already: fill at once.
      warm: { copyWaitMs: 0, recheckMs: 200 },
    });
    await replicator.start();
  });
  afterAll(async () => {
    await replicator?.stop();
    await r?.close();
  });

  it('nodes advertise https://; plain HTTP on a node or the control API port is refused', async () => {
    expect(node.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(replicator.address).toBe(`https://127.0.0.1:${apiPort}`);
    await expect(plainGet(Number(new URL(node.url).port), '/healthz')).rejects.toThrow(/socket hang up|ECONNRESET|Parse Error/);
    await expect(plainGet(apiPort, '/healthz')).rejects.toThrow(/socket hang up|ECONNRESET|Parse Error/);
  });

  it('ferry warmup goes through the HTTPS control API; the warm workers fill the HTTPS node; ferry get reads through it', async () => {
    const warmed = await runFerry(['warmup', '/models/tls', '--region', 'eu', '--wait', '--json', '--config', r.configPath], {
      timeoutMs: 60_000,
    });
    expect(warmed.code, warmed.stderr).toBe(0);
    expect(jsonResult(warmed)).toMatchObject({ via: 'api', complete: true });

    const out = join(r.root, 'got.bin');
    const got = await runFerry(['get', '--region', 'eu', file.path, out, '--config', r.configPath], { timeoutMs: 60_000 });
    expectSuccess(got);
    expect((await sha256Of(createReadStream(out))).sha256).toBe(file.sha256);
    const writer = new CacheNodeClient({ token: r.writeToken, ca: await readFile(certs.ca), ...CACHE_CLIENT });
    try {
      const text = await writer.metrics(node);
      // Every byte of the file came from the node (warmed, so all hits).
      expect(metricValue(text, 'ferry_cache_bytes_served_total')).toBeGreaterThanOrEqual(file.size);
      expect(metricValue(text, 'ferry_cache_hits_total')).toBeGreaterThanOrEqual(4);
    } finally {
      await writer.close();
    }
  });

  it('a client without the CA fails with one clear line', async () => {
    const doc = JSON.parse(await readFile(r.configPath, 'utf8'));
    delete doc.regions.eu.api.tls.ca;
    const noCa = join(r.root, 'no-ca.json');
    await writeFile(noCa, JSON.stringify(doc));
    const refused = await runFerry(['warmup', '/models/tls', '--region', 'eu', '--config', noCa], { timeoutMs: 60_000 });
    expectOneLineError(
      refused,
      1,
      /replicator API at https:\/\/127\.0\.0\.1:\d+\/warmup: TLS: .*certificate.* \(check regions\.eu\.api\.tls\.ca\)/,
    );
  });
});
