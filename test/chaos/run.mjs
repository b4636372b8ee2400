// `npm run chaos`: a source (s3rver store, redis-server with an append-only file) and a mirror
// (file:// store, its own redis-server), changes at the source throughout, and the faults a
// mirror must survive by itself: the replicator killed with SIGKILL 20 times at random moments,
// the source's Redis restarted, the mirror's Redis flushed (with the mirror's GC on), the source
// store gone for 2 minutes; garbage collection at grace 0 in both regions (a daemon per region),
// and readers in the mirror that open a file, keep it open while changes go on, then read every
// byte: each read is whole and right, or fails cleanly as gone (grace 0 keeps nothing for them).
// Then the mirror must hold exactly the source's entries and every file byte for byte.
// Prints one summary line; exits 0 when the mirror is byte-identical, 1 otherwise.
// Flags: --minutes <n> (the fault window, default 7; about 3 more to converge and check)  --keep
//        --acl: every process on the Redis user of its role, with the rules `ferry redis-acl` prints
//        (the writer, each region's replicator, the mirror's user on the source, the readers)
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chunkKey, parseConfig, silentLogger } from '@ferry/core';
import { connectRedis, Meta } from '@ferry/meta';
import { openReader, openRegion } from '@ferry/region';
import { createStore } from '@ferry/stores';
import { putFiles } from '@ferry/writer';
import { FERRY_BIN, formatMs, redisServer, s3Server, sha256Of, sleep, startReplicator, waitFor } from './lib.mjs';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '7' },
    keep: { type: 'boolean', default: false },
    acl: { type: 'boolean', default: false },
  },
});
const windowMs = Number(values.minutes) * 60_000;
if (!(windowMs >= 60_000)) throw new Error(`--minutes must be at least 1, got ${values.minutes}`);
const OUTAGE_MS = Math.min(120_000, windowMs / 3);
const KILLS = 20;
const KiB = 1024;
const MiB = 2 ** 20;

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const started = Date.now();
const work = mkdtempSync(join(tmpdir(), 'ferry-chaos-'));
const log = join(work, 'replicator.log');
const s3env = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1', AWS_EC2_METADATA_DISABLED: 'true' };
Object.assign(process.env, s3env);

const sourceRedis = await redisServer(join(work, 'redis-src'), { aof: true, acl: values.acl });
const mirrorRedis = await redisServer(join(work, 'redis-eu'), { acl: values.acl });
const s3 = await s3Server(join(work, 's3'), 'src');
const doc = {
  volume: 'chaos',
  chunkSize: 256 * KiB,
  source: 'src',
  regions: {
    src: {
      store: `s3://src/models?endpoint=${encodeURIComponent(s3.endpoint)}&forcePathStyle=1&checksums=when_required&region=us-east-1`,
      redis: `${sourceRedis.url}/0`,
      gc: { every: '5s', grace: '0s' },
    },
    eu: {
      store: `file://${join(work, 'eu-store')}?fsync=0`,
      redis: `${mirrorRedis.url}/0`,
      copy: { concurrency: 8, attempts: 3, reconcileEvery: '10s', backlog: 2000 },
      gc: { every: '5s', grace: '0s' },
    },
  },
  replicator: { leaseTtl: '3s', stopTimeout: '5s' },
};
const config = parseConfig(doc);
const configPath = join(work, 'ferry.json');
writeFileSync(configPath, JSON.stringify(doc, null, 2));

// With --acl: each server's aclfile gets the users `ferry redis-acl` prints (their passwords in
// <work>/secrets), and each process a config naming its role's user. `default` stays for the
// run's own checks, flushes and restarts.
const secrets = join(work, 'secrets');
const password = (user) => readFileSync(join(secrets, user), 'utf8').trim();
const asUser = (url, user) => (values.acl ? url.replace('redis://', `redis://${user}:${password(user)}@`) : url);
function configAs(name, users) {
  if (!values.acl) return { path: configPath, config };
  const copy = structuredClone(doc);
  copy.regions.src.redis = asUser(doc.regions.src.redis, users.src);
  copy.regions.eu.redis = asUser(doc.regions.eu.redis, users.eu);
  const path = join(work, `ferry-${name}.json`);
  writeFileSync(path, JSON.stringify(copy, null, 2));
  return { path, config: parseConfig(copy) };
}
if (values.acl) {
  for (const [region, server] of [
    ['src', sourceRedis],
    ['eu', mirrorRedis],
  ]) {
    const printed = spawnSync(process.execPath, [FERRY_BIN, 'redis-acl', '--region', region, '--secrets', secrets, '--config', configPath]);
    if (printed.status !== 0) throw new Error(`ferry redis-acl --region ${region}: ${printed.stderr}`);
    writeFileSync(server.aclfile, printed.stdout);
    await server.cli('acl', 'load');
  }
}
const roles = {
  writer: configAs('writer', { src: 'ferry-src-writer', eu: 'ferry-eu-reader' }),
  euDaemon: configAs('eu-replicator', { src: 'ferry-src-mirror-eu', eu: 'ferry-eu-replicator' }),
  srcDaemon: configAs('src-replicator', { src: 'ferry-src-replicator', eu: 'ferry-eu-reader' }),
  reader: configAs('reader', { src: 'ferry-src-reader', eu: 'ferry-eu-reader' }),
};

// The run's own connections (checks at the end) are `default`; the mutator is the writer.
const writerRedis = connectRedis(roles.writer.config.regions.src.redis, { maxRetriesPerRequest: 2 });
const srcRedis = connectRedis(config.regions.src.redis, { maxRetriesPerRequest: 2 });
const euRedis = connectRedis(config.regions.eu.redis, { maxRetriesPerRequest: 2 });
const meta = new Meta({ redis: writerRedis, volume: 'chaos' });
const srcStore = createStore(config.regions.src.store);
const euStore = createStore(config.regions.eu.store);

// ---------------------------------------------------------------------------------------------
// Changes at the source, whatever is broken at the moment (failures are counted and retried).

const counts = { put: 0, model: 0, overwrite: 0, renameFile: 0, renameDir: 0, deleteFile: 0, deleteDir: 0, failed: 0 };
let mutating = true;
const quiet = silentLogger;
async function put(files) {
  // `ferry put`'s own code: its chunks held against the source's GC until the commit.
  await putFiles({
    store: srcStore,
    meta,
    files,
    chunkSize: config.chunkSize,
    concurrency: 4,
    holdTtlMs: config.writer.holdTtl,
    logger: quiet,
  });
}
const mutator = (async () => {
  let n = 0;
  let lastModel = 0;
  while (mutating) {
    n += 1;
    try {
      if (Date.now() - lastModel > 15_000) {
        lastModel = Date.now();
        await put([{ path: `/models/m${n}.safetensors`, bytes: randomBytes(randomInt(2, 7) * MiB + randomInt(KiB)) }]);
        counts.model += 1;
      }
      const files = (await meta.list('/w', { recursive: true }).catch(() => ({ items: [] }))).items.flatMap((i) =>
        i.kind === 'file' ? [i.entry.path] : [],
      );
      const pick = () => files[randomInt(files.length)];
      const op = files.length < 10 ? 0 : randomInt(10);
      if (op <= 3) {
        await put([{ path: `/w/d${randomInt(5)}/f${n}`, bytes: randomBytes(randomInt(1, 600 * KiB)) }]);
        counts.put += 1;
      } else if (op === 4) {
        await put([{ path: pick(), bytes: randomBytes(randomInt(1, 300 * KiB)) }]);
        counts.overwrite += 1;
      } else if (op === 5) {
        await meta.rename(pick(), `/w/d${randomInt(5)}/moved${n}`);
        counts.renameFile += 1;
      } else if (op === 6) {
        await meta.rename(pick().split('/').slice(0, 3).join('/'), `/w/d${randomInt(5)}x${n}`);
        counts.renameDir += 1;
      } else if (op <= 8) {
        await meta.delete(pick());
        counts.deleteFile += 1;
      } else {
        const dir = pick().split('/').slice(0, 3).join('/');
        if (files.filter((f) => f.startsWith(`${dir}/`)).length < files.length / 2) {
          await meta.delete(dir, { recursive: true });
          counts.deleteDir += 1;
        }
      }
    } catch (err) {
      counts.failed += 1;
      if (String(err?.message).includes('NOPERM')) counts.noperm = (counts.noperm ?? 0) + 1;
      await sleep(250);
    }
    await sleep(randomInt(30, 200));
  }
})();

// ---------------------------------------------------------------------------------------------
// Faults.

let daemon = startReplicator({ region: 'eu', configPath: roles.euDaemon.path, log, env: s3env });
// The source's daemon: its garbage collection (the source has no watcher).
const sourceLog = join(work, 'replicator-src.log');
const sourceDaemon = startReplicator({ region: 'src', configPath: roles.srcDaemon.path, log: sourceLog, env: s3env });

// Readers in the mirror: open a file, hold it 0-3 s while the source changes, then read it all.
const reads = { whole: 0, gone: 0, bad: [] };
const euRegion = openRegion({ config: roles.reader.config, region: 'eu', role: 'client', logger: quiet, clientName: 'chaos-reader' });
const reader = openReader(euRegion, { memoryBytes: 0, cache: false });
const reading = (async () => {
  while (mutating) {
    try {
      const listed = await euRegion.meta.list('/', { recursive: true });
      const files = listed.items.filter((i) => i.kind === 'file');
      if (files.length === 0) {
        await sleep(500);
        continue;
      }
      const entry = await reader.stat(files[randomInt(files.length)].entry.path);
      await sleep(randomInt(0, 3_000));
      const hash = createHash('sha256');
      for (let at = 0; at < entry.size; at += 4 * MiB) hash.update(await reader.read(entry, at, Math.min(4 * MiB, entry.size - at)));
      if (entry.sha256 && hash.digest('hex') !== entry.sha256) reads.bad.push(`${entry.path}: wrong bytes`);
      else reads.whole += 1;
    } catch (err) {
      if (err.code === 'NOT_FOUND' || err.code === 'UNAVAILABLE' || err.code === 'TRANSIENT') reads.gone += 1;
      else reads.bad.push(`${err.code ?? 'error'}: ${err.message}`);
    }
  }
})();
let kills = 0;
const killer = (async () => {
  const times = Array.from({ length: KILLS }, () => randomInt(5_000, windowMs - 5_000)).sort((a, b) => a - b);
  for (const at of times) {
    await sleep(Math.max(0, started + at - Date.now()));
    await daemon.kill9();
    kills += 1;
    daemon = startReplicator({ region: 'eu', configPath: roles.euDaemon.path, log, env: s3env });
  }
})();
const faults = [];
const scheduled = async (at, what, fn) => {
  await sleep(Math.max(0, started + at - Date.now()));
  const t = Date.now();
  await fn();
  faults.push(`${what} at ${formatMs(t - started)}`);
};
const faulting = Promise.all([
  scheduled(windowMs * 0.2, 'source Redis restart', async () => {
    await sourceRedis.stop();
    await sleep(2_000);
    await sourceRedis.start();
  }),
  scheduled(windowMs * 0.35, 'mirror Redis flush', () => mirrorRedis.cli('flushall')),
  scheduled(windowMs * 0.45, `${formatMs(OUTAGE_MS)} source store outage`, async () => {
    await s3.stop();
    await sleep(OUTAGE_MS);
    await s3.start();
  }),
]);
await Promise.all([killer, faulting, sleep(windowMs)]);
mutating = false;
await mutator;
await reading;
const lastChange = Date.now();

// ---------------------------------------------------------------------------------------------
// Convergence and the byte-for-byte check.

const keys = meta.keys;
async function differences() {
  const [se, de, sr, dr, sp, dp, info, cursor] = await Promise.all([
    srcRedis.hgetall(keys.entries),
    euRedis.hgetall(keys.entries),
    srcRedis.hgetall(keys.refs),
    euRedis.hgetall(keys.refs),
    srcRedis.zrange(keys.paths, 0, -1),
    euRedis.zrange(keys.paths, 0, -1),
    meta.log.logBounds(),
    euRedis.get(keys.cursor),
  ]);
  const problems = [];
  if (cursor !== (info.last ?? null)) problems.push(`cursor ${cursor} != ${info.last}`);
  for (const [path, json] of Object.entries(se)) if (de[path] !== json) problems.push(`${de[path] ? 'differs' : 'missing'} ${path}`);
  for (const path of Object.keys(de)) if (se[path] === undefined) problems.push(`extra ${path}`);
  if (sp.join('\n') !== dp.join('\n')) problems.push('path index differs');
  for (const id of new Set([...Object.keys(sr), ...Object.keys(dr)])) if (sr[id] !== dr[id]) problems.push(`refs ${id}`);
  const ids = Object.keys(dr);
  for (let i = 0; i < ids.length; i += 1000) {
    const flags = await euRedis.smismember(keys.present, ...ids.slice(i, i + 1000));
    const missing = flags.filter((f) => f === 0).length;
    if (missing > 0) problems.push(`${missing} chunks not present`);
  }
  return problems;
}

let last = [];
let converged = false;
try {
  await waitFor(
    async () => {
      last = await differences().catch((err) => [String(err.message)]);
      return last.length === 0;
    },
    180_000,
    'the mirror to converge',
    500,
  );
  converged = true;
} catch {
  // reported below
}
const convergedMs = Date.now() - lastChange;

let files = 0;
let bytes = 0;
const bad = [];
if (converged) {
  for (const json of Object.values(await srcRedis.hgetall(keys.entries))) {
    const entry = JSON.parse(json);
    const read = async (store) => {
      const parts = [];
      for (const c of entry.chunks) parts.push((await store.get(chunkKey(c.id))).body);
      return sha256Of(
        (async function* () {
          for (const p of parts) yield* p;
        })(),
      );
    };
    const [fromSource, fromMirror] = [await read(srcStore), await read(euStore)];
    if (fromSource !== fromMirror || (entry.sha256 && entry.sha256 !== fromMirror)) bad.push(entry.path);
    files += 1;
    bytes += entry.size;
  }
}
await daemon.terminate();
await sourceDaemon.terminate();
await euRegion.close();
const text = readFileSync(log, 'utf8');
const sourceText = readFileSync(sourceLog, 'utf8');
const passes = (t) => t.split('\n').filter((l) => l.includes('"msg":"garbage collection"')).length;
const reclaimed = async (redis) => Number((await redis.hget(keys.gcInfo, 'reclaimed-bytes').catch(() => 0)) ?? 0);
const gcLine = `gc: ${passes(sourceText)} passes in src, ${passes(text)} in eu, ${((await reclaimed(srcRedis)) / MiB).toFixed(1)} + ${((await reclaimed(euRedis)) / MiB).toFixed(1)} MiB reclaimed; `;
const readLine = `readers: ${reads.whole} whole reads, ${reads.gone} of deleted files gone, ${reads.bad.length} bad${reads.bad.length ? ` (${reads.bad.slice(0, 3).join('; ')})` : ''}; `;
const logged = (msg) => text.split('\n').filter((l) => l.includes(`"msg":"${msg}`)).length;
// With --acl, a permission a role lacks shows as NOPERM in a daemon's log: that fails the run too.
const refusals = `${text}\n${sourceText}`.split('NOPERM').length - 1 + (counts.noperm ?? 0);
const pass = converged && bad.length === 0 && reads.bad.length === 0 && refusals === 0;
const mutations = Object.entries(counts)
  .filter(([k]) => k !== 'failed' && k !== 'noperm')
  .reduce((a, [, v]) => a + v, 0);
console.log(
  `chaos ${pass ? 'PASS' : 'FAIL'} in ${formatMs(Date.now() - started)}: ${kills} kill -9, ${faults.join(', ')}; ` +
    `${mutations} changes at the source (${counts.failed} refused while it was down); ` +
    (values.acl ? `every process on its role's Redis user, ${refusals} NOPERM refusals; ` : '') +
    (converged
      ? `converged ${formatMs(convergedMs)} after the last change; ${files} files, ${(bytes / MiB).toFixed(0)} MiB ${bad.length === 0 ? 'byte-identical' : `with ${bad.length} differing (${bad.slice(0, 3).join(', ')})`}; `
      : `not converged after ${formatMs(convergedMs)}: ${last.slice(0, 5).join('; ')}; `) +
    gcLine +
    readLine +
    `${logged('full resync')} resyncs, ${logged('a write was refused')} fenced writes, ${logged('stop deadline passed')} cut-off stops (log: ${values.keep || !pass ? log : 'removed'})`,
);
srcRedis.disconnect();
writerRedis.disconnect();
euRedis.disconnect();
await Promise.allSettled([sourceRedis.stop(), mirrorRedis.stop(), s3.stop(), srcStore.close?.(), euStore.close?.()]);
if (pass && !values.keep) rmSync(work, { recursive: true, force: true });
process.exit(pass ? 0 : 1);
