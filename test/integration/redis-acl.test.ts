import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { AccessDeniedError, type ChunkId, chunkKey, loadConfig, sha256Hex, silentLogger } from '@ferry/core';
import { Gateway } from '@ferry/gateway';
import { ackKey, checkRedisAccess, connectRedis, Membership, Meta, MirrorMeta, type RedisRole } from '@ferry/meta';
import { Replicator } from '@ferry/replicator';
import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { runWarmup, startCacheNode } from '../support/cache-cluster.js';
import { detachAll, sh, startMount } from '../support/mounts.js';
import { entryOf, fileDigest, KiB, type Regions, runCli, sleep, waitForConvergence } from '../support/regions.js';
import { testLogger } from '../support/replicators.js';
import { useRegions } from '../support/scope.js';
import type { PrivateRedis } from '../support/servers/private-redis.js';

/*
 * One Redis user per role, with the rules `ferry redis-acl` prints, on two real redis-servers
 * (the source's and the mirror's): the loop works with each process on its own user, and each
 * role is refused (NOPERM, one line, nothing changed) the writes it must not make.
 */

const scope = useRegions();
const GATEWAY_SECRET = randomBytes(20).toString('base64url');

interface Setup {
  regions: Regions;
  src: PrivateRedis;
  eu: PrivateRedis;
  secrets: string;
  /** A config file in which each region's Redis is reached as the given users. */
  configAs(name: string, users: { src: string; eu: string }): Promise<string>;
  /** A client of one region's Redis as a user. */
  clientAs(region: 'src' | 'eu', user: string): Promise<Redis>;
}

async function setUp(): Promise<Setup> {
  const src = await scope.redis();
  const eu = await scope.redis();
  // A put's holds on its chunks end a second after it: the test collects what it removed right away.
  const regions = await scope.regions({
    chunkSize: 64 * KiB,
    sourceRedis: src.url,
    mirrorRedis: eu.url,
    writer: { holdTtl: '1s' },
    mirrors: { eu: { cache: { replicas: 1, readToken: randomBytes(12).toString('hex'), writeToken: randomBytes(12).toString('hex') } } },
  });
  const secrets = join(regions.dir, 'redis-secrets');
  const acl = async (region: string, format: string) => {
    const result = await runCli([
      'redis-acl',
      '--region',
      region,
      '--format',
      format,
      '--secrets',
      secrets,
      '--config',
      regions.configPath,
    ]);
    expect(result.code, result.stderr).toBe(0);
    return result.stdout;
  };
  // The source loads the ACL file form (ACL LOAD of its aclfile), the mirror the ACL SETUSER form.
  const aclFile = join(src.dir, 'users.acl');
  await writeFile(aclFile, await acl('src', 'acl-file'));
  const admin = connectRedis(src.url) as Redis;
  scope.defer(() => admin.disconnect());
  await admin.call('CONFIG', 'SET', 'save', '');
  const euAdmin = connectRedis(eu.url) as Redis;
  scope.defer(() => euAdmin.disconnect());
  for (const line of (await acl('eu', 'commands')).trim().split('\n')) {
    const [, , ...rest] = line.split(' ');
    expect(await euAdmin.call('ACL', 'SETUSER', ...rest)).toBe('OK');
  }
  // The aclfile cannot be named at runtime: its lines go in one by one, as ACL LOAD would read them.
  for (const line of (await readFile(aclFile, 'utf8')).trim().split('\n')) {
    const [, name, ...rules] = line.split(' ');
    expect(await admin.call('ACL', 'SETUSER', name as string, ...rules)).toBe('OK');
  }
  const password = (user: string) => readFile(join(secrets, user), 'utf8').then((t) => t.trim());
  const base = JSON.parse(await readFile(regions.configPath, 'utf8'));
  const withUser = async (url: string, user: string) => {
    const u = new URL(url);
    u.username = user;
    u.password = await password(user);
    return u.toString();
  };
  return {
    regions,
    src,
    eu,
    secrets,
    async configAs(name, users) {
      const doc = structuredClone(base);
      doc.gateway = {
        listen: '127.0.0.1:0',
        region: 'us-east-1',
        accessKeys: [{ accessKeyId: 'ferry-acl', secretAccessKey: GATEWAY_SECRET }],
      };
      doc.regions.src.redis = await withUser(base.regions.src.redis, users.src);
      doc.regions.eu.redis = await withUser(base.regions.eu.redis, users.eu);
      const path = join(regions.dir, `ferry-${name}.yaml`);
      await writeFile(path, JSON.stringify(doc, null, 2));
      return path;
    },
    async clientAs(region, user) {
      const url = await withUser(base.regions[region].redis, user);
      const client = connectRedis(url, { name: `acl-${user}` }) as Redis;
      scope.defer(() => client.disconnect());
      await client.ping();
      return client;
    },
  };
}

/** A command the server must refuse with NOPERM. */
async function refused(what: string, run: () => Promise<unknown>): Promise<void> {
  // NOPERM for a command, or the scripting engine's refusal of a command inside a script.
  await expect(run(), what).rejects.toThrow(/NOPERM|can't run this command/);
}

describe('one Redis user per role', () => {
  it('put → mirror → warm → read (get, ls, mount, gateway) → rm → gc → verify --repair, every process on the user of its role', async () => {
    const s = await setUp();
    const { regions } = s;
    const writer = await s.configAs('writer', { src: 'ferry-src-writer', eu: 'ferry-eu-reader' });
    const reader = await s.configAs('reader', { src: 'ferry-src-reader', eu: 'ferry-eu-reader' });
    const euDaemon = await s.configAs('eu-replicator', { src: 'ferry-src-mirror-eu', eu: 'ferry-eu-replicator' });

    const local = join(regions.dir, 'model');
    const keep = randomBytes(300 * KiB);
    const drop = randomBytes(200 * KiB);
    await writeFile(`${local}-keep.bin`, keep);
    await writeFile(`${local}-drop.bin`, drop);
    for (const [file, path] of [
      [`${local}-keep.bin`, '/m/keep.bin'],
      [`${local}-drop.bin`, '/m/drop.bin'],
    ]) {
      const put = await runCli(['put', file as string, path as string, '--config', writer]);
      expect(put.code, put.stderr).toBe(0);
    }

    // The mirror's replicator: its own region's user, and the mirror user on the source.
    const replicator = new Replicator({ config: loadConfig(euDaemon, {}), region: 'eu', logger: testLogger('eu'), listen: false });
    scope.defer(() => replicator.stop());
    await replicator.start();
    await waitForConvergence(regions, 'eu', 30_000);
    expect(await regions.source.redis.get(ackKey(regions.volume, 'eu'))).toMatch(/^\d+-\d+$/);

    const out = join(regions.dir, 'out.bin');
    const get = await runCli(['get', '--region', 'eu', '/m/keep.bin', out, '--config', reader]);
    expect(get.code, get.stderr).toBe(0);
    expect((await readFile(out)).equals(keep)).toBe(true);
    const ls = await runCli(['ls', '-R', '/', '--region', 'eu', '--config', reader]);
    expect(ls.stdout).toContain('/m/keep.bin');
    // A cache node of the mirror on its own user, and a warmup (a reader's) that puts the file on it.
    const cacheNode = await startCacheNode({
      configPath: await s.configAs('cache-node', { src: 'ferry-src-reader', eu: 'ferry-eu-cache-node' }),
      region: 'eu',
      dir: join(regions.dir, 'node-1'),
      id: 'node-1',
      weight: 1,
      capacity: '64MiB',
    });
    scope.defer(() => cacheNode.stop());
    const warmup = await runWarmup(reader, '/m/keep.bin', ['--region', 'eu', '--wait']);
    expect(warmup.result.code, warmup.result.stderr).toBe(0);
    expect(warmup.summary).toMatchObject({ ready: true, failed: 0 });
    // The mount and the gateway of the mirror, on its reader user.
    const mount = await startMount({ config: reader, region: 'eu', mountpoint: join(regions.dir, 'mnt') });
    scope.defer(async () => {
      await mount.stop();
      detachAll();
    });
    expect(sh(`sha256sum '${join(mount.mountpoint, 'm/keep.bin')}'`).stdout.split(' ')[0]).toBe(sha256Hex(keep));
    const gateway = new Gateway({ config: loadConfig(reader, {}), region: 'eu', logger: silentLogger, graceMs: 1000 });
    scope.defer(() => gateway.stop());
    await gateway.start();
    const s3 = new S3Client({
      endpoint: gateway.address as string,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'ferry-acl', secretAccessKey: GATEWAY_SECRET },
    });
    scope.defer(() => s3.destroy());
    const object = await s3.send(new GetObjectCommand({ Bucket: regions.volume, Key: 'm/keep.bin' }));
    expect(Buffer.from((await object.Body?.transformToByteArray()) ?? []).equals(keep)).toBe(true);

    // A reader cannot remove a file: one line, and the file is still there.
    const rmAsReader = await runCli(['rm', '/m/keep.bin', '--config', reader]);
    expect(rmAsReader.code).not.toBe(0);
    expect(rmAsReader.stderr.trim().split('\n')).toHaveLength(1);
    expect(rmAsReader.stderr).toMatch(/refused a command of this process's user: NOPERM.*ferry redis-acl/);
    expect(await fileDigest(regions.source, '/m/keep.bin')).toBeDefined();

    const rm = await runCli(['rm', '/m/drop.bin', '--config', writer]);
    expect(rm.code, rm.stderr).toBe(0);
    await waitForConvergence(regions, 'eu', 30_000);
    await sleep(1_200);
    const gcSource = await runCli(['gc', '--region', 'src', '--grace', '0s', '--json', '--config', writer]);
    expect(gcSource.code, gcSource.stderr).toBe(0);
    expect(JSON.parse(gcSource.stdout.trim().split('\n').at(-1) as string).reclaimed.chunks, gcSource.stdout).toBe(4);
    const gcMirror = await runCli(['gc', '--region', 'eu', '--grace', '0s', '--json', '--config', euDaemon]);
    expect(gcMirror.code, gcMirror.stderr).toBe(0);
    expect(JSON.parse(gcMirror.stdout.trim().split('\n').at(-1) as string).reclaimed.chunks).toBe(4);

    // A chunk lost in the mirror: verify names it, --repair copies it back from the source.
    const lost = (await entryOf(regions.mirror('eu'), '/m/keep.bin'))?.chunks[0]?.id as ChunkId;
    const mirrorStore = regions.mirror('eu').store;
    await mirrorStore.delete(chunkKey(lost));
    const verify = await runCli(['verify', '--region', 'eu', '--repair', '--config', euDaemon]);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    expect((await mirrorStore.head(chunkKey(lost))).size).toBeGreaterThan(0);
  });

  it('refuses each role the writes it must not make, and changes nothing', async () => {
    const s = await setUp();
    const { regions } = s;
    const volume = regions.volume;
    await regions.source.meta.commit([{ path: '/a.bin', size: 0, mtime: 1, chunkSize: 64 * KiB, chunks: [] }]);
    const keys = regions.source.meta.keys;
    const entriesBefore = await regions.source.redis.hlen(keys.entries);
    const logBefore = await regions.source.redis.xlen(keys.log);

    // A reader of the source: reads, and no write of any kind.
    const reader = await s.clientAs('src', 'ferry-src-reader');
    expect(await reader.hget(keys.entries, '/a.bin')).toContain('a.bin');
    await refused('reader HDEL of an entry', () => reader.hdel(keys.entries, '/a.bin'));
    await refused('reader HSET of an entry', () => reader.hset(keys.entries, '/a.bin', '{}'));
    await refused('reader XTRIM of the log', () => reader.xtrim(keys.log, 'MAXLEN', 0));
    await refused('reader EVAL of a write', () => reader.eval("return redis.call('DEL', KEYS[1])", 1, keys.entries));
    await refused('reader EVAL_RO of a write', () => reader.call('EVAL_RO', "return redis.call('DEL', KEYS[1])", 1, keys.entries));
    // Through Ferry's own API: one line naming what to do about it.
    const readerMeta = new Meta({ redis: reader, volume });
    const denied = await readerMeta.delete('/a.bin').catch((err: unknown) => err);
    expect(denied).toBeInstanceOf(AccessDeniedError);
    expect(String((denied as Error).message)).not.toContain('\n');
    // What a reader does need: listings (a read-only script) and a backfill request in a mirror.
    expect((await readerMeta.list('/')).items.map((i) => (i.kind === 'file' ? i.entry.path : i.path))).toEqual(['/a.bin']);
    const euReader = await s.clientAs('eu', 'ferry-eu-reader');
    const euMirror = new MirrorMeta({ redis: euReader, volume });
    await euMirror.chunks.requestBackfill([{ chunk: `sha256-${'a'.repeat(64)}`, size: 1, first: true }]);
    await refused('reader write beside the backfill list', () => euReader.set(`${euMirror.keys.backfill}x`, '1'));
    await refused('reader write to the mirror cursor', () => euReader.set(euMirror.keys.cursor, '0-0'));

    // A mirror's replicator on the source: its own ack, nothing else.
    const mirror = await s.clientAs('src', 'ferry-src-mirror-eu');
    const mirrorMeta = new Meta({ redis: mirror, volume });
    expect(await mirrorMeta.log.setAck('eu', '1-0')).toBe('1-0');
    await refused('mirror writing another mirror ack', () => mirror.set(ackKey(volume, 'us'), '9-0'));
    await refused('mirror HSET of a source entry', () => mirror.hset(keys.entries, '/b.bin', '{}'));
    await refused('mirror XADD to the log', () => mirror.xadd(keys.log, '*', 'x', '1'));
    await refused('mirror DEL of the epoch', () => mirror.del(keys.epoch));
    await refused('mirror commit script', () => mirrorMeta.commit([{ path: '/c.bin', size: 0, mtime: 1, chunkSize: 1024, chunks: [] }]));
    // Its history check still works without writing the epoch.
    expect((await mirrorMeta.log.history()).epoch).not.toBe('');

    // A cache node: its membership, nothing of the namespace.
    const node = await s.clientAs('src', 'ferry-src-cache-node');
    const members = new Membership({ redis: node, volume });
    await members.heartbeat('n1', { url: 'http://127.0.0.1:1', weight: 1, capacity: 1, used: 0 });
    expect((await members.members()).map((m) => m.id)).toEqual(['n1']);
    await refused('cache node HDEL of an entry', () => node.hdel(keys.entries, '/a.bin'));
    await refused('cache node DEL of the refs', () => node.del(keys.refs));
    await refused('cache node write to the queues', () => node.set(`{ferry:${volume}}:copy:x`, '1'));

    // No command run as a user of a role, nor any role's user, is an administrator.
    for (const user of [reader, mirror, node]) {
      await refused('FLUSHDB', () => user.flushdb());
      await refused('CONFIG SET', () => user.config('SET', 'maxmemory', '1'));
      await refused('ACL SETUSER', () => user.call('ACL', 'SETUSER', 'x', 'on'));
    }
    const writer = await s.clientAs('src', 'ferry-src-writer');
    await refused('writer FLUSHALL', () => writer.flushall());
    await refused('writer KEYS', () => writer.keys('*'));
    await refused('writer key outside the volume', () => writer.set('other:key', '1'));

    // The check each process makes at start: what its role needs, and whether it may do more.
    const check = (redis: Redis, role: RedisRole, mirror?: string) =>
      checkRedisAccess(redis, { volume, role, ...(mirror ? { mirror } : {}) });
    expect(await check(reader, 'reader')).toMatchObject({ user: 'ferry-src-reader', broader: false });
    expect(await check(mirror, 'mirror', 'eu')).toMatchObject({ user: 'ferry-src-mirror-eu', broader: false });
    expect(await check(node, 'cache-node')).toMatchObject({ user: 'ferry-src-cache-node', broader: false });
    expect(await check(writer, 'writer')).toMatchObject({ user: 'ferry-src-writer', broader: false });
    expect((await check(regions.source.redis as Redis, 'reader')).summary).toMatch(
      /^Redis user default .* may write every key .*more than a reader needs/,
    );
    const tooWeak = await check(reader, 'writer').catch((err: unknown) => err);
    expect(tooWeak).toBeInstanceOf(AccessDeniedError);
    expect((tooWeak as Error).message).toMatch(
      /^Redis user ferry-src-reader at .* cannot do what a writer needs: writing keys of volume .*NOPERM.*ferry redis-acl/,
    );

    expect(await regions.source.redis.hlen(keys.entries)).toBe(entriesBefore);
    expect(await regions.source.redis.xlen(keys.log)).toBe(logBefore);
  });
});
