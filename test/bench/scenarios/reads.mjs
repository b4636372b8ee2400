// Scenario 5: reads of one large file. Baselines: a plain static-file server in its own process
// (large buffers), read by `curl` and by the keep-alive client Ferry's reads use (undici), for
// sequential reads and random 64 KiB ranges. Ferry: sequential MiB/s per tier (memory, cache node,
// region store, source fallback) through the reader in this process, a warm cache node read raw
// by the same client as the plain server, 64 KiB random ranges from a cache node, and `ferry get`
// processes from a warm cache node against `curl -o` from the plain server. CPU seconds per GiB
// next to each Ferry figure.
import { join } from 'node:path';
import { regionCacheTier } from '@ferry/cache';
import { connectRedis, Meta } from '@ferry/meta';
import { RegionReader } from '@ferry/reader';
import { FsStore } from '@ferry/stores';
import { Redis } from 'ioredis';
import { Agent, request } from 'undici';
import {
  cpuSeconds,
  drain,
  FERRY_BIN,
  freshDir,
  GiB,
  MiB,
  mibps,
  mustRun,
  ownCpuSeconds,
  percentile,
  settle,
  startFerry,
  startStaticServer,
  stopChild,
  timedRun,
  waitFor,
  writeConfig,
  writeRandomFile,
} from '../lib/util.mjs';

/** Chunks read ahead by the readers here: the config schema's default `reader.prefetch`. */
const PREFETCH = 4;

const TOKEN = 'bench-cache-token';
const RANDOM_READS = 400;

/** Wall ms and CPU seconds of this process (all its threads) over `fn`. */
async function measured(fn) {
  const cpu = process.cpuUsage();
  const started = performance.now();
  await fn();
  return { ms: performance.now() - started, cpu: ownCpuSeconds(cpu) };
}

/** GET with the keep-alive client; the body is drained. */
async function fetchDrain(agent, url, headers = {}) {
  const res = await request(url, { dispatcher: agent, headers });
  if (res.statusCode >= 300) throw new Error(`GET ${url}: HTTP ${res.statusCode}`);
  let n = 0;
  for await (const part of res.body) n += part.length;
  return n;
}

/** `requests` (url + headers) `inFlight` at a time, in order. */
async function windowed(agent, requests, inFlight) {
  let next = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < requests.length) {
        const r = requests[next++];
        await fetchDrain(agent, r.url, r.headers);
      }
    }),
  );
}

/** p50 and p99 (ms) of random 64 KiB ranges, one at a time on one keep-alive connection pool. */
async function randomLatencies(agent, pick) {
  const times = [];
  for (let i = 0; i < RANDOM_READS; i++) {
    const { url, headers } = pick();
    const started = performance.now();
    await fetchDrain(agent, url, headers);
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 50), p99: percentile(times, 99) };
}

/** The same random ranges through one curl process (`--next` per URL, one connection reused). */
async function curlLatencies(url, size) {
  const args = ['-s'];
  for (let i = 0; i < RANDOM_READS; i++) {
    const at = Math.floor(Math.random() * (size - 65536));
    if (i > 0) args.push('--next');
    args.push('-o', '/dev/null', '-w', '%{time_total}\n', '-r', `${at}-${at + 65535}`, url);
  }
  const { stdout } = await mustRun('curl', args);
  const times = stdout
    .trim()
    .split('\n')
    .map((t) => Number(t) * 1000)
    .sort((a, b) => a - b);
  return { p50: percentile(times, 50), p99: percentile(times, 99) };
}

async function prepareMirror({ work, redis, bytes }) {
  const volume = `bench-reads-${Date.now()}`;
  const dir = freshDir(join(work, 'reads-model'));
  const file = join(dir, 'model.safetensors');
  await writeRandomFile(file, bytes);
  const src = freshDir(join(work, 'reads-src'));
  const eu = freshDir(join(work, 'reads-eu'));
  const config = writeConfig(join(work, `${volume}.yaml`), {
    volume,
    source: 'src',
    regions: {
      src: { store: `file://${src}`, redis: `${redis.url}/10` },
      eu: {
        store: `file://${eu}`,
        redis: `${redis.url}/11`,
        cache: { replicas: 1, readToken: TOKEN, writeToken: TOKEN, connectTimeoutMs: 500 },
      },
    },
  });
  await mustRun(process.execPath, [FERRY_BIN, 'put', file, '/m/model.safetensors', '--config', config]);
  // Mirror it fully, so the region store tier has every chunk.
  const replicator = await startFerry(['replicator', '--region', 'eu', '--config', config]);
  const mirrorRedis = connectRedis(`${redis.url}/11`);
  const meta = new Meta({ redis: mirrorRedis, volume });
  await waitFor(async () => (await meta.tryStat('/m/model.safetensors')) !== undefined, 60_000, 'the mirror to list the file');
  const entry = await meta.stat('/m/model.safetensors');
  const raw = new Redis(`${redis.url}/11`);
  await waitFor(
    async () => (await raw.smismember(`ferry:{${volume}}:present`, ...entry.chunks.map((c) => c.id))).every((f) => f === 1),
    600_000,
    'the copy',
  );
  raw.disconnect();
  await stopChild(replicator.child);
  return { volume, dir, file, src, eu, config, meta, mirrorRedis, entry };
}

export const reads = {
  id: 'reads',
  title: 'Reads: a plain static server (curl, undici) vs each tier, a warm cache node, 64 KiB random reads, ferry get',
  async run({ work, redis, size }) {
    const bytes = Math.max(64 * MiB, Math.round(GiB * size));
    const m = await prepareMirror({ work, redis, bytes });
    const { meta, entry } = m;
    const agent = new Agent({ connections: 16, keepAliveTimeout: 30_000 });
    const plain = await startStaticServer(m.dir);
    const plainUrl = `${plain.url}/model.safetensors`;
    const rows = [];
    const gib = bytes / GiB;
    try {
      // Baselines first: the plain server read whole by curl and by the keep-alive client, and
      // in the cache-node pattern (8 MiB ranges, 4 in flight).
      const curlWhole = await mustRun('curl', ['-s', '-o', '/dev/null', plainUrl]);
      const plainCpu = cpuSeconds(plain.pid);
      const undiciWhole = await measured(() => fetchDrain(agent, plainUrl));
      const plainServerCpu = (cpuSeconds(plain.pid) - plainCpu) / gib;
      const ranges = entry.chunks.map((c, i) => ({
        url: plainUrl,
        headers: { range: `bytes=${i * entry.chunkSize}-${i * entry.chunkSize + c.size - 1}` },
      }));
      const undiciRanges = await measured(() => windowed(agent, ranges, 4));
      const plainPeer = 'plain server, undici keep-alive';
      const tierRow = (metric, r) => ({
        metric,
        unit: 'MiB/s',
        ferry: mibps(bytes, r.ms),
        cpu: r.cpu / gib,
        peer: plainPeer,
        peerValue: mibps(bytes, undiciWhole.ms),
        ratio: undiciWhole.ms / r.ms,
      });
      rows.push({
        metric: 'plain server: curl vs undici (whole file)',
        unit: 'MiB/s',
        ferry: mibps(bytes, undiciWhole.ms),
        peer: 'plain server, curl',
        peerValue: mibps(bytes, curlWhole.ms),
        ratio: curlWhole.ms / undiciWhole.ms,
      });

      const storeReader = new RegionReader({ meta, region: 'eu', store: new FsStore({ root: m.eu }), memoryBytes: 0, prefetch: PREFETCH });
      rows.push(tierRow('reader: region store (file://)', await measured(() => drain(storeReader.stream(entry)))));
      const fallback = new RegionReader({
        meta,
        region: 'eu',
        store: new FsStore({ root: freshDir(join(work, 'reads-empty')) }),
        source: { name: 'src', store: new FsStore({ root: m.src }) },
        memoryBytes: 0,
        prefetch: PREFETCH,
      });
      rows.push(tierRow('reader: source fallback (region store empty)', await measured(() => drain(fallback.stream(entry)))));
      const memory = new RegionReader({
        meta,
        region: 'eu',
        store: new FsStore({ root: m.eu }),
        memoryBytes: bytes + 64 * MiB,
        prefetch: PREFETCH,
      });
      // The memory cache keeps a chunk once it is asked for a second time (a one-pass read only
      // cycles its probation share), so the file is read twice before memory serves it.
      await drain(memory.stream(entry));
      await drain(memory.stream(entry));
      rows.push(tierRow('reader: process memory (third read)', await measured(() => drain(memory.stream(entry)))));

      const node = await startFerry([
        'cache-node',
        '--region',
        'eu',
        '--dir',
        freshDir(join(work, 'reads-node')),
        '--capacity',
        `${Math.ceil((bytes * 2) / MiB)}MiB`,
        '--listen',
        '127.0.0.1:0',
        '--config',
        m.config,
      ]);
      try {
        await mustRun(process.execPath, [FERRY_BIN, 'warmup', '/m/model.safetensors', '--region', 'eu', '--wait', '--config', m.config]);
        const nodeUrl = String(node.started.url).replace(/\/$/, '');
        const auth = { authorization: `Bearer ${TOKEN}` };
        // The node read raw by the same client, in the same pattern as the plain server's ranges.
        const nodeCpu = cpuSeconds(node.child.pid);
        const raw = await measured(() =>
          windowed(
            agent,
            entry.chunks.map((c) => ({ url: `${nodeUrl}/chunks/${c.id}`, headers: auth })),
            4,
          ),
        );
        rows.push({
          metric: 'warm cache node, raw chunks (4 in flight)',
          unit: 'MiB/s',
          ferry: mibps(bytes, raw.ms),
          cpu: (cpuSeconds(node.child.pid) - nodeCpu) / gib,
          peer: 'plain server, undici, 8 MiB ranges (4 in flight)',
          peerValue: mibps(bytes, undiciRanges.ms),
          ratio: undiciRanges.ms / raw.ms,
        });

        const cache = regionCacheTier({ redis: m.mirrorRedis, volume: m.volume, token: TOKEN, replicas: 1, connectTimeoutMs: 500 });
        try {
          const cached = new RegionReader({
            meta,
            region: 'eu',
            store: new FsStore({ root: m.eu }),
            cache: cache.tier,
            memoryBytes: 0,
            prefetch: PREFETCH,
          });
          await cache.view.ready();
          const before = cpuSeconds(node.child.pid);
          const r = await measured(() => drain(cached.stream(entry)));
          rows.push(
            tierRow('reader: warm cache node, every chunk verified', { ms: r.ms, cpu: r.cpu + cpuSeconds(node.child.pid) - before }),
          );
          if ((cached.chunks.stats.bytes['store:eu'] ?? 0) > 0) rows.at(-1).metric += ' (some chunks came from the store)';
        } finally {
          await cache.close();
        }

        // Random 64 KiB ranges: the node (a range inside a chunk) and the plain server (a range of
        // the file), one at a time, the same client; and curl against the plain server.
        const nodeLat = await randomLatencies(agent, () => {
          const chunk = entry.chunks[Math.floor(Math.random() * entry.chunks.length)];
          const at = Math.floor(Math.random() * Math.max(1, chunk.size - 65536));
          return { url: `${nodeUrl}/chunks/${chunk.id}`, headers: { ...auth, range: `bytes=${at}-${at + 65535}` } };
        });
        const plainLat = await randomLatencies(agent, () => {
          const at = Math.floor(Math.random() * (bytes - 65536));
          return { url: plainUrl, headers: { range: `bytes=${at}-${at + 65535}` } };
        });
        const curlLat = await curlLatencies(plainUrl, bytes);
        for (const p of ['p50', 'p99']) {
          rows.push({
            metric: `64 KiB random read from a cache node, ${p}`,
            unit: 'ms',
            ferry: nodeLat[p],
            peer: plainPeer,
            peerValue: plainLat[p],
            ratio: plainLat[p] / nodeLat[p],
          });
          rows.push({
            metric: `64 KiB random read from a cache node, ${p}`,
            unit: 'ms',
            ferry: nodeLat[p],
            peer: 'plain server, curl (one process, --next)',
            peerValue: curlLat[p],
            ratio: curlLat[p] / nodeLat[p],
          });
        }

        // `ferry get` (a process: start-up, every chunk and the whole file verified, written to
        // disk) from the warm node against `curl -o` of the same bytes from the plain server.
        const out = join(work, 'reads-get.bin');
        await settle();
        const before = cpuSeconds(node.child.pid);
        const get = await timedRun(process.execPath, [
          FERRY_BIN,
          'get',
          '/m/model.safetensors',
          out,
          '--region',
          'eu',
          '--config',
          m.config,
        ]);
        const getNodeCpu = cpuSeconds(node.child.pid) - before;
        await settle();
        const curl = await mustRun('curl', ['-s', '-o', join(work, 'reads-curl.bin'), plainUrl]);
        rows.push({
          metric: 'ferry get from a warm cache node (process, verified, to disk)',
          unit: 'MiB/s',
          ferry: mibps(bytes, get.ms),
          cpu: (get.cpu + getNodeCpu) / gib,
          peer: 'plain server, curl -o file',
          peerValue: mibps(bytes, curl.ms),
          ratio: curl.ms / get.ms,
        });
      } finally {
        await stopChild(node.child);
      }
      return {
        rows,
        notes: [
          `One ${gib.toFixed(2)} GiB file of 8 MiB chunks. Reader rows run in this process; every chunk is sha256-verified (the plain server verifies nothing). CPU s/GiB counts this process's threads and, for cache-node rows, the node process.`,
          `The plain server is a separate Node process (lib/static-server.mjs: positional reads, 4 MiB stream buffers), read by curl and by undici (the client of the cache tier); it used ${plainServerCpu.toFixed(2)} CPU s/GiB serving the whole file to undici (the client ${(undiciWhole.cpu / gib).toFixed(2)}).`,
        ],
      };
    } finally {
      await plain.stop();
      await agent.close();
      await meta.close();
      m.mirrorRedis.disconnect();
    }
  },
};
