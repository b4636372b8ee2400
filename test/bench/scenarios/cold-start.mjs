// Scenario 6: N reader processes (`ferry get`) start on one cold model in a mirror at once, with M
// cache-node processes in the region (the mirror knows the files but holds none of their bytes,
// nor do the nodes). Naive readers would pull N × size from the source; the peer for throughput is
// N `curl` processes reading the same bytes from a plain static server.
import { join } from 'node:path';
import { connectRedis, Meta, MirrorMeta } from '@ferry/meta';
import {
  cpuSeconds,
  FERRY_BIN,
  FERRY_NODE_FLAGS,
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

/** `--readers 1,16`: the reader counts to run (default 1, 4, 16). */
function readerCounts(flag) {
  if (flag === undefined) return [1, 4, 16];
  const counts = String(flag).split(',').map(Number);
  if (counts.some((n) => !Number.isSafeInteger(n) || n < 1)) throw new Error(`--readers must be positive integers, got ${flag}`);
  return counts;
}

export const coldStart = {
  id: 'cold-start',
  title: `Cold start: N reader processes, ${NODES} cache-node processes, one cold model in a mirror`,
  async run({ work, redis, size, flags }) {
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
    await new MirrorMeta({ redis: mirrorRedis, volume }).apply(await source.log.readChanges('0-0'));
    const plain = await startStaticServer(modelDir);
    const rows = [];
    const split = [];
    try {
      for (const readers of readerCounts(flags?.readers)) {
        const nodes = await startNodes(work, config, bytes, readers);
        try {
          await settle();
          const nodeCpu = nodes.map((n) => cpuSeconds(n.child.pid));
          const started = performance.now();
          const gets = await Promise.all(
            Array.from({ length: readers }, (_, i) =>
              timedRun(process.execPath, [
                ...FERRY_NODE_FLAGS,
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
          const readerCpu = gets.reduce((sum, g) => sum + g.cpu, 0);
          const nodesCpu = nodes.reduce((sum, n, i) => sum + cpuSeconds(n.child.pid) - nodeCpu[i], 0);
          const cpu = readerCpu + nodesCpu;
          const gib = (readers * bytes) / GiB;
          split.push(
            `${readers} reader(s): CPU s/GiB of what the readers got: readers ${(readerCpu / gib).toFixed(2)}, cache nodes ${(nodesCpu / gib).toFixed(2)} (the nodes filled ${(bytes / GiB).toFixed(2)} GiB once: ${(nodesCpu / (bytes / GiB)).toFixed(2)} s per GiB filled and served)`,
          );
          const fromSourceDirect = gets.reduce(
            (sum, g) => sum + (JSON.parse(g.stdout.trim().split('\n').at(-1)).tiers.bytes['source:src'] ?? 0),
            0,
          );
          const fromUpstream = (await Promise.all(nodes.map((n) => upstreamBytes(n.started.url)))).reduce((a, b) => a + b, 0);
          const egress = fromSourceDirect + fromUpstream;
          // Which of the two it was: fills by the nodes (a chunk filled twice when membership
          // changed under a reader) or reads around the cache (a node that did not answer).
          split.push(
            `${readers} reader(s): from the source, ${(fromUpstream / bytes).toFixed(2)} × the model through the nodes' fills and ${(fromSourceDirect / bytes).toFixed(2)} × read by the readers themselves`,
          );
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
        ...split,
        `One ${(bytes / MiB).toFixed(0)} MiB file; each reader is its own \`ferry get\` process (start-up, every chunk verified, written to disk; a file of native chunks is not hashed again as a whole); ${NODES} cache-node processes, fresh for each N, replicas 1. Egress = what the nodes read through (region store empty: all from the source) + what readers read from the source themselves.`,
      ],
    };
  },
};
