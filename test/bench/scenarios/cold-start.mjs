// Scenario 6: N reader processes (`ferry get`) start on one cold model in a mirror at once, with M
// cache-node processes in the region (the mirror knows the files but holds none of their bytes,
// nor do the nodes). Naive readers would pull N × size from the source; the peer for throughput is
// N `curl` processes reading the same bytes from a plain static server.
import { join } from 'node:path';
import { connectRedis, Meta, MirrorMeta } from '@ferry/meta';
import {
  cpuSeconds,
  FERRY_BIN,
  freshDir,
  GiB,
  MiB,
  mibps,
  mustRun,
  settle,
  startFerry,
  startStaticServer,
  stopChild,
  timedRun,
  writeConfig,
  writeRandomFile,
} from '../lib/util.mjs';

const TOKEN = 'bench-cold-token';
const NODES = 3;

/** Bytes a cache node read from upstream (its metrics), which in a cold mirror is the source. */
async function upstreamBytes(url) {
  const res = await fetch(`${String(url).replace(/\/$/, '')}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
  const text = await res.text();
  const line = text.split('\n').find((l) => /^ferry_cache_upstream_bytes_total(\{| )/.test(l));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : Number.NaN;
}

async function startNodes(work, config, bytes, round) {
  return Promise.all(
    Array.from({ length: NODES }, (_, i) =>
      startFerry([
        'cache-node',
        '--region',
        'eu',
        '--dir',
        freshDir(join(work, `cold-node-${round}-${i}`)),
        '--capacity',
        `${Math.ceil((bytes * 2) / MiB)}MiB`,
        '--listen',
        '127.0.0.1:0',
        '--id',
        `bench-node-${i}`,
        '--config',
        config,
      ]),
    ),
  );
}

export const coldStart = {
  id: 'cold-start',
  title: `Cold start: N reader processes, ${NODES} cache-node processes, one cold model in a mirror`,
  async run({ work, redis, size }) {
    const bytes = Math.max(32 * MiB, Math.round(256 * MiB * size));
    const volume = `bench-cold-${Date.now()}`;
    const modelDir = freshDir(join(work, 'cold-model'));
    const model = join(modelDir, 'model.safetensors');
    await writeRandomFile(model, bytes);
    const src = freshDir(join(work, 'cold-src'));
    const config = writeConfig(join(work, `${volume}.yaml`), {
      volume,
      source: 'src',
      regions: {
        src: { store: `file://${src}`, redis: `${redis.url}/6` },
        eu: {
          store: `file://${freshDir(join(work, 'cold-eu'))}`,
          redis: `${redis.url}/7`,
          cache: { replicas: 1, readToken: TOKEN, writeToken: TOKEN },
        },
      },
    });
    await mustRun(process.execPath, [FERRY_BIN, 'put', model, '/m/model.safetensors', '--config', config]);
    const sourceRedis = connectRedis(`${redis.url}/6`);
    const mirrorRedis = connectRedis(`${redis.url}/7`);
    const source = new Meta({ redis: sourceRedis, volume });
    await new MirrorMeta({ redis: mirrorRedis, volume }).apply(await source.readChanges('0-0'));
    const plain = await startStaticServer(modelDir);
    const rows = [];
    try {
      for (const readers of [1, 4, 16]) {
        const nodes = await startNodes(work, config, bytes, readers);
        try {
          await settle();
          const nodeCpu = nodes.map((n) => cpuSeconds(n.child.pid));
          const started = performance.now();
          const gets = await Promise.all(
            Array.from({ length: readers }, (_, i) =>
              timedRun(process.execPath, [
                FERRY_BIN,
                'get',
                '/m/model.safetensors',
                join(work, `cold-out-${readers}-${i}.bin`),
                '--region',
                'eu',
                '--config',
                config,
                '--json',
              ]),
            ),
          );
          const ms = performance.now() - started;
          const cpu = gets.reduce((sum, g) => sum + g.cpu, 0) + nodes.reduce((sum, n, i) => sum + cpuSeconds(n.child.pid) - nodeCpu[i], 0);
          const fromSourceDirect = gets.reduce(
            (sum, g) => sum + (JSON.parse(g.stdout.trim().split('\n').at(-1)).tiers.bytes['source:src'] ?? 0),
            0,
          );
          const fromUpstream = (await Promise.all(nodes.map((n) => upstreamBytes(n.started.url)))).reduce((a, b) => a + b, 0);
          const egress = fromSourceDirect + fromUpstream;
          rows.push({
            metric: `${readers} reader(s): bytes from the source`,
            unit: 'GiB',
            ferry: egress / GiB,
            peer: 'naive (N × size)',
            peerValue: (readers * bytes) / GiB,
            ratio: (readers * bytes) / egress,
          });
          rows.push({
            metric: `${readers} reader(s): egress / model size`,
            unit: '×',
            ferry: egress / bytes,
            peer: 'goal',
            peerValue: 1.05,
            ratio: 1.05 / (egress / bytes),
          });
          await mustRun('sh', ['-c', `rm -f "${work}"/cold-out-*.bin`]);
          await settle();
          const curlStarted = performance.now();
          await Promise.all(
            Array.from({ length: readers }, (_, i) =>
              mustRun('curl', ['-s', '-o', join(work, `cold-curl-${i}.bin`), `${plain.url}/model.safetensors`]),
            ),
          );
          const curlMs = performance.now() - curlStarted;
          await mustRun('sh', ['-c', `rm -f "${work}"/cold-curl-*.bin`]);
          rows.push({
            metric: `${readers} reader(s): aggregate throughput`,
            unit: 'MiB/s',
            ferry: mibps(readers * bytes, ms),
            cpu: cpu / ((readers * bytes) / GiB),
            peer: `${readers} × curl from the plain server`,
            peerValue: mibps(readers * bytes, curlMs),
            ratio: curlMs / ms,
          });
        } finally {
          await Promise.all(nodes.map((n) => stopChild(n.child)));
        }
      }
    } finally {
      await plain.stop();
      await source.close();
      sourceRedis.disconnect();
      mirrorRedis.disconnect();
    }
    return {
      rows,
      notes: [
        `One ${(bytes / MiB).toFixed(0)} MiB file; each reader is its own \`ferry get\` process (start-up, every chunk and the whole file verified, written to disk); ${NODES} cache-node processes, fresh for each N, replicas 1. Egress = what the nodes read through (region store empty: all from the source) + what readers read from the source themselves.`,
      ],
    };
  },
};
