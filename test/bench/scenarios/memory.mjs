// Scenario 7: peak RSS of the processes that move a large file, which must stay bounded by
// concurrency × chunk size, not by the file size.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import {
  FERRY_BIN,
  freshDir,
  GiB,
  MiB,
  mibps,
  mustRun,
  readRss,
  rssEnv,
  settle,
  timedRun,
  waitFor,
  writeConfig,
  writeRandomFile,
} from '../lib/util.mjs';

export const memory = {
  id: 'memory',
  title: 'Peak RSS while moving one large file; ferry put vs cp + sync',
  async run({ work, redis, size }) {
    const bytes = Math.max(256 * MiB, Math.round(4 * GiB * size));
    const volume = `bench-memory-${Date.now()}`;
    const file = join(freshDir(join(work, 'mem-model')), 'big.safetensors');
    await writeRandomFile(file, bytes);
    const config = writeConfig(join(work, `${volume}.yaml`), {
      volume,
      source: 'src',
      regions: {
        src: { store: `file://${freshDir(join(work, 'mem-src'))}`, redis: `${redis.url}/8` },
        eu: { store: `file://${freshDir(join(work, 'mem-eu'))}`, redis: `${redis.url}/9`, copy: { concurrency: 8 } },
      },
      gateway: { listen: '127.0.0.1:0', anonymous: true },
    });
    const rows = [];
    const putRss = join(work, 'put.rss');
    await settle();
    const put = await timedRun(process.execPath, [FERRY_BIN, 'put', file, '/big.safetensors', '--config', config, '--concurrency', '8'], {
      env: rssEnv(putRss),
    });
    // The same bytes by cp, made durable like the store's fsync of every chunk.
    await settle();
    const cp = await mustRun('sh', ['-c', `cp "${file}" "${join(freshDir(join(work, 'mem-cp')), 'big')}" && sync`]);
    await mustRun('rm', ['-rf', join(work, 'mem-cp')]);
    rows.push({
      metric: `ferry put of ${(bytes / GiB).toFixed(1)} GiB into a file:// store`,
      unit: 'MiB/s',
      ferry: mibps(bytes, put.ms),
      cpu: put.cpu / (bytes / GiB),
      peer: 'cp + sync',
      peerValue: mibps(bytes, cp.ms),
      ratio: cp.ms / put.ms,
    });
    rows.push({
      metric: `ferry put of ${(bytes / GiB).toFixed(1)} GiB (8 × 8 MiB in flight)`,
      unit: 'MiB',
      ferry: readRss(putRss) / MiB,
      peer: null,
      peerValue: null,
      ratio: null,
    });

    const repRss = join(work, 'replicator.rss');
    const child = spawn(process.execPath, [FERRY_BIN, 'replicator', '--region', 'eu', '--config', config], {
      env: rssEnv(repRss),
      stdio: 'ignore',
    });
    const mirror = new Redis(`${redis.url}/9`);
    const source = new Redis(`${redis.url}/8`);
    try {
      const entry = JSON.parse(await source.hget(`ferry:{${volume}}:entries`, '/big.safetensors'));
      const ids = entry.chunks.map((c) => c.id);
      await waitFor(async () => (await mirror.smismember(`ferry:{${volume}}:present`, ...ids)).every((f) => f === 1), 600_000, 'the copy');
    } finally {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
      mirror.disconnect();
      source.disconnect();
    }
    rows.push({
      metric: `replicator copying ${(bytes / GiB).toFixed(1)} GiB (8 copies in flight)`,
      unit: 'MiB',
      ferry: readRss(repRss) / MiB,
      peer: null,
      peerValue: null,
      ratio: null,
    });
    // The gateway serving the file to one S3 client (anonymous here; signing costs no memory).
    const gwRss = join(work, 'gateway.rss');
    const gateway = spawn(process.execPath, [FERRY_BIN, 'gateway', '--region', 'eu', '--config', config, '--json'], {
      env: rssEnv(gwRss),
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    try {
      const address = await new Promise((resolve, reject) => {
        let out = '';
        gateway.once('exit', (code) => reject(new Error(`gateway exited ${code}`)));
        gateway.stdout.setEncoding('utf8').on('data', (t) => {
          out += t;
          const line = out.split('\n').find((l) => l.includes('"event":"started"'));
          if (line) resolve(JSON.parse(line).address);
        });
      });
      const response = await fetch(`${String(address).replace(/\/$/, '')}/${volume}/big.safetensors`);
      if (!response.ok) throw new Error(`gateway GET: ${response.status}`);
      let served = 0;
      for await (const part of response.body) served += part.length;
      if (served !== bytes) throw new Error(`gateway served ${served} of ${bytes} bytes`);
    } finally {
      const exited = new Promise((r) => gateway.once('exit', r));
      gateway.kill('SIGTERM');
      await exited;
    }
    rows.push({
      metric: `gateway serving ${(bytes / GiB).toFixed(1)} GiB to one client`,
      unit: 'MiB',
      ferry: readRss(gwRss) / MiB,
      peer: null,
      peerValue: null,
      ratio: null,
    });
    return {
      rows,
      notes: [
        'Peak resident set size of each process (VmHWM at exit).',
        'The gateway keeps chunks in process memory up to reader.memoryBytes (default 256 MiB); a chunk asked for once holds at most an eighth of it (probation), so one pass over a large file does not fill it.',
      ],
    };
  },
};
