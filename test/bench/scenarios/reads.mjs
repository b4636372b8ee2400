// Scenario 5: sequential read throughput of one large file from each tier (memory, cache node,
// region store, source fallback) vs a plain Node HTTP GET of the same bytes on loopback (the
// limit), and p50/p99 of 64 KiB random reads from a cache node vs the same reads from plain HTTP.
import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { regionCacheTier } from '@ferry/cache';
import { connectRedis, Meta } from '@ferry/meta';
import { RegionReader } from '@ferry/reader';
import { FsStore } from '@ferry/stores';
import { Redis } from 'ioredis';
import { drain, FERRY_BIN, freshDir, GiB, MiB, mustRun, percentile, waitFor, writeConfig, writeRandomFile } from '../lib/util.mjs';

const TOKEN = 'bench-cache-token';

async function timed(fn) {
  const started = performance.now();
  await fn();
  return performance.now() - started;
}

/** Start a process and resolve with its first stdout JSON line that has `event: started`. */
function startProcess(args) {
  const child = spawn(process.execPath, [FERRY_BIN, ...args, '--json'], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.once('exit', (code) => reject(new Error(`${args[0]} exited ${code}`)));
    child.stdout.setEncoding('utf8').on('data', (t) => {
      out += t;
      for (const line of out.split('\n')) if (line.includes('"event":"started"')) resolve({ child, started: JSON.parse(line) });
    });
  });
}

async function stop(child) {
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

/** A plain HTTP server for the baseline: whole file, or a byte range of it. */
async function plainServer(file) {
  const server = createServer((req, res) => {
    const range = /bytes=(\d+)-(\d+)/.exec(req.headers.range ?? '');
    const opts = range ? { start: Number(range[1]), end: Number(range[2]) } : {};
    res.writeHead(range ? 206 : 200);
    createReadStream(file, { highWaterMark: 1 << 20, ...opts }).pipe(res);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: server.address().port };
}

function get(port, path, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => drain(res).then(resolve, reject));
    req.once('error', reject);
    req.end();
  });
}

export const reads = {
  id: 'reads',
  title: 'Reads: sequential throughput per tier vs a plain HTTP GET; random 64 KiB reads from a cache node',
  async run({ work, redis, size }) {
    const bytes = Math.max(64 * MiB, Math.round(GiB * size));
    const volume = `bench-reads-${Date.now()}`;
    const file = join(freshDir(join(work, 'reads-model')), 'model.safetensors');
    await writeRandomFile(file, bytes);
    const src = freshDir(join(work, 'reads-src'));
    const eu = freshDir(join(work, 'reads-eu'));
    const doc = {
      volume,
      source: 'src',
      regions: {
        src: { store: `file://${src}`, redis: `${redis.url}/10` },
        eu: { store: `file://${eu}`, redis: `${redis.url}/11`, cache: { replicas: 1, token: TOKEN, connectTimeoutMs: 500 } },
      },
    };
    const configPath = writeConfig(join(work, `${volume}.yaml`), doc);
    await mustRun(process.execPath, [FERRY_BIN, 'put', file, '/m/model.safetensors', '--config', configPath]);

    // Mirror it fully, so the region store tier has every chunk.
    const replicator = await startProcess(['replicator', '--region', 'eu', '--config', configPath]);
    const mirrorRedis = connectRedis(`${redis.url}/11`);
    const sourceRedis = connectRedis(`${redis.url}/10`);
    const meta = new Meta({ redis: mirrorRedis, volume });
    try {
      await waitFor(async () => (await meta.tryStat('/m/model.safetensors')) !== undefined, 60_000, 'the mirror to list the file');
      const entry = await meta.stat('/m/model.safetensors');
      const raw = new Redis(`${redis.url}/11`);
      await waitFor(
        async () => (await raw.smismember(`ferry:{${volume}}:present`, ...entry.chunks.map((c) => c.id))).every((f) => f === 1),
        600_000,
        'the copy',
      );
      raw.disconnect();
      await stop(replicator.child);

      const mib = (ms) => bytes / MiB / (ms / 1000);
      const plain = await plainServer(file);
      const rows = [];
      const baselineMs = await timed(() => get(plain.port, '/'));
      const tierRow = (metric, ms) => ({
        metric,
        unit: 'MiB/s',
        ferry: mib(ms),
        peer: 'plain Node HTTP GET (loopback)',
        peerValue: mib(baselineMs),
        ratio: mib(ms) / mib(baselineMs),
      });

      const storeReader = new RegionReader({ meta, region: 'eu', store: new FsStore({ root: eu }), memoryBytes: 0 });
      rows.push(tierRow('region store (file://)', await timed(() => drain(storeReader.stream(entry)))));

      const fallback = new RegionReader({
        meta,
        region: 'eu',
        store: new FsStore({ root: freshDir(join(work, 'reads-empty')) }),
        source: { name: 'src', store: new FsStore({ root: src }) },
        memoryBytes: 0,
      });
      rows.push(tierRow('source fallback (region store empty)', await timed(() => drain(fallback.stream(entry)))));

      const memory = new RegionReader({ meta, region: 'eu', store: new FsStore({ root: eu }), memoryBytes: bytes + 64 * MiB });
      await drain(memory.stream(entry));
      rows.push(tierRow('process memory (second read)', await timed(() => drain(memory.stream(entry)))));

      const node = await startProcess([
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
        configPath,
      ]);
      try {
        await mustRun(process.execPath, [FERRY_BIN, 'warmup', '/m/model.safetensors', '--region', 'eu', '--wait', '--config', configPath]);
        const cache = regionCacheTier({ redis: mirrorRedis, volume, token: TOKEN, replicas: 1, connectTimeoutMs: 500 });
        try {
          const cached = new RegionReader({ meta, region: 'eu', store: new FsStore({ root: eu }), cache: cache.tier, memoryBytes: 0 });
          await cache.view.ready();
          rows.push(tierRow('cache node (warm)', await timed(() => drain(cached.stream(entry)))));
          if ((cached.chunks.stats.bytes['store:eu'] ?? 0) > 0) rows.at(-1).metric += ' (some chunks came from the store)';
        } finally {
          await cache.close();
        }
        // Random 64 KiB reads: ranged GETs of chunk files on the node vs of the plain file.
        const url = new URL(node.started.url);
        const nodeLat = [];
        const plainLat = [];
        for (let i = 0; i < 300; i++) {
          const chunk = entry.chunks[Math.floor(Math.random() * entry.chunks.length)];
          const offset = Math.floor(Math.random() * Math.max(1, chunk.size - 65536));
          const range = `bytes=${offset}-${offset + 65535}`;
          nodeLat.push(await timed(() => get(Number(url.port), `/chunks/${chunk.id}`, { range, authorization: `Bearer ${TOKEN}` })));
          const at = Math.floor(Math.random() * (bytes - 65536));
          plainLat.push(await timed(() => get(plain.port, '/', { range: `bytes=${at}-${at + 65535}` })));
        }
        nodeLat.sort((a, b) => a - b);
        plainLat.sort((a, b) => a - b);
        for (const p of [50, 99]) {
          const f = percentile(nodeLat, p);
          const b = percentile(plainLat, p);
          rows.push({
            metric: `64 KiB random read from a cache node, p${p}`,
            unit: 'ms',
            ferry: f,
            peer: 'plain Node HTTP ranged GET',
            peerValue: b,
            ratio: b / f,
          });
        }
      } finally {
        await stop(node.child);
        plain.server.close();
      }
      return {
        rows,
        notes: [
          `One ${(bytes / GiB).toFixed(2)} GiB file of 8 MiB chunks, read in this process; every chunk sha256-verified (the plain GET verifies nothing). The cache node verifies chunks it serves too.`,
        ],
      };
    } finally {
      await meta.close();
      mirrorRedis.disconnect();
      sourceRedis.disconnect();
    }
  },
};
