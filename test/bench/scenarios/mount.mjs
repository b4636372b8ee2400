// Scenario: a model server loading through `ferry mount` from warm cache nodes. Time to the first
// tensor (safetensors header + one 64 MiB tensor, as safe_open reads it) through the mount vs
// `ferry get` of the whole model, and sequential throughput through the mount vs `ferry cat`.
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { FERRY_BIN, freshDir, GiB, has, MiB, mirrorWithCache, mustRun, run, waitFor, writeConfig } from '../lib/util.mjs';

const TOKEN = 'bench-mount-token';
const TENSOR = 64 * MiB;

/** A safetensors file of `count` F32 tensors of 64 MiB each (random bytes). */
async function writeSafetensors(path, count) {
  const header = {};
  for (let i = 0; i < count; i++) {
    header[`layers.${i}.weight`] = { dtype: 'F32', shape: [TENSOR / 4], data_offsets: [i * TENSOR, (i + 1) * TENSOR] };
  }
  const json = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  const handle = await open(path, 'w');
  try {
    await handle.write(Buffer.concat([length, json]));
    const { randomBytes } = await import('node:crypto');
    for (let left = count * TENSOR; left > 0; left -= 4 * MiB) await handle.write(randomBytes(4 * MiB));
  } finally {
    await handle.close();
  }
  return 8 + json.length + count * TENSOR;
}

/** Start `ferry <args> --json`; resolves when it prints the event named `until`. */
function startFerry(args, until) {
  const child = spawn(process.execPath, [FERRY_BIN, ...args, '--json'], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.once('exit', (code) => reject(new Error(`ferry ${args[0]} exited ${code}: ${out.slice(-500)}`)));
    child.stdout.setEncoding('utf8').on('data', (t) => {
      out += t;
      for (const line of out.split('\n')) if (line.includes(`"event":"${until}"`)) resolve({ child, event: JSON.parse(line) });
    });
  });
}

async function stop(child) {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

/** Header + first tensor, read as safetensors' loader does: 8 bytes, the header, then the tensor's range. */
async function firstTensor(path) {
  const handle = await open(path, 'r');
  try {
    const head = Buffer.alloc(8);
    await handle.read(head, 0, 8, 0);
    const n = Number(head.readBigUInt64LE());
    const json = Buffer.alloc(n);
    await handle.read(json, 0, n, 8);
    const [start, end] = JSON.parse(json.toString())['layers.0.weight'].data_offsets;
    const tensor = Buffer.alloc(end - start);
    for (let done = 0; done < tensor.length; ) {
      const { bytesRead } = await handle.read(tensor, done, tensor.length - done, 8 + n + start + done);
      if (bytesRead === 0) throw new Error('short tensor');
      done += bytesRead;
    }
  } finally {
    await handle.close();
  }
}

export const mountScenario = {
  id: 'mount',
  title: 'ferry mount: time to the first tensor vs ferry get of the model; sequential reads vs ferry cat (warm cache nodes)',
  available: () => has('fusermount'),
  unavailableReason: 'fusermount is not installed (apt-get install -y libfuse2 fuse)',
  async run({ work, redis, size }) {
    const tensors = Math.max(2, Math.round((GiB * size) / TENSOR));
    const volume = `bench-mount-${Date.now()}`;
    const local = join(freshDir(join(work, 'mount-model')), 'model.safetensors');
    const bytes = await writeSafetensors(local, tensors);
    const doc = mirrorWithCache({
      work,
      prefix: 'mount',
      volume,
      redisUrl: redis.url,
      dbs: [12, 13],
      cache: { replicas: 1, readToken: TOKEN, writeToken: TOKEN, connectTimeoutMs: 500 },
    });
    const config = writeConfig(join(work, `${volume}.yaml`), doc);
    const path = '/m/model/model.safetensors';
    await mustRun(process.execPath, [FERRY_BIN, 'put', local, path, '--config', config]);
    const replicator = await startFerry(['replicator', '--region', 'eu', '--config', config], 'started');
    const node = await startFerry(
      [
        'cache-node',
        '--region',
        'eu',
        '--dir',
        freshDir(join(work, 'mount-node')),
        '--capacity',
        `${Math.ceil((bytes * 2) / MiB)}MiB`,
      ].concat(['--listen', '127.0.0.1:0', '--config', config]),
      'started',
    ).catch(async (err) => {
      await stop(replicator.child);
      throw err;
    });
    const children = [replicator.child, node.child];
    const mnt = join(work, 'mnt');
    mkdirSync(mnt, { recursive: true });
    try {
      const raw = new Redis(`${redis.url}/13`);
      await waitFor(async () => (await raw.hexists(`ferry:{${volume}}:entries`, path)) === 1, 60_000, 'the mirror to list the model');
      raw.disconnect();
      await mustRun(process.execPath, [FERRY_BIN, 'warmup', path, '--region', 'eu', '--wait', '--config', config]);
      await stop(replicator.child);
      const mount = async () =>
        startFerry(['mount', mnt, '--foreground', '--region', 'eu', '--listen', 'off', '--path', '/m', '--config', config], 'mounted');
      const seconds = async (fn) => {
        const started = performance.now();
        await fn();
        return (performance.now() - started) / 1000;
      };
      const file = join(mnt, 'model/model.safetensors');

      // Each mount measurement starts a fresh mount process: nothing in its memory, nothing in the page cache.
      let m = await mount();
      const firstTensorS = await seconds(() => firstTensor(file));
      await stop(m.child);
      const out = freshDir(join(work, 'mount-get'));
      const getS = await seconds(() =>
        mustRun(process.execPath, [FERRY_BIN, 'get', '/m/model', out, '--region', 'eu', '--config', config]),
      );

      // The download's 1 GiB is still being written back: let it land before the next measurement.
      await run('sync', []);
      m = await mount();
      // Read by dd, as a model server's loader reads (native code, 1 MiB reads): a Node stream here
      // would add its own CPU to the mount's side only, on a machine whose two cores the mount, its
      // hash threads and the cache node already share.
      const mountSeqS = await seconds(() => mustRun('dd', [`if=${file}`, 'of=/dev/null', 'bs=1M']));
      await stop(m.child);
      const cat = await run('sh', ['-c', `node '${FERRY_BIN}' cat '${path}' --region eu --config '${config}' > /dev/null`]);
      if (cat.code !== 0) throw new Error(`ferry cat failed: ${cat.stderr}`);
      const mib = (s) => bytes / MiB / s;
      return {
        rows: [
          {
            metric: `first tensor (header + 64 MiB) of a ${(bytes / GiB).toFixed(2)} GiB model`,
            unit: 's',
            ferry: firstTensorS,
            peer: 'ferry get of the whole model',
            peerValue: getS,
            ratio: getS / firstTensorS,
          },
          {
            metric: 'sequential read through the mount',
            unit: 'MiB/s',
            ferry: mib(mountSeqS),
            peer: 'ferry cat (goal ≥ 0.7×)',
            peerValue: mib(cat.ms / 1000),
            ratio: mib(mountSeqS) / mib(cat.ms / 1000),
          },
        ],
        notes: [
          `One safetensors file of ${tensors} × 64 MiB tensors in 8 MiB chunks, warm on one cache node; every chunk sha256-verified on every path. Each mount figure is a fresh mount process (cold memory, cold page cache).`,
          'Ratio > 1 means the mount did better: the first tensor is ready that many times sooner than a full download would be.',
        ],
      };
    } finally {
      for (const child of children) await stop(child);
      await run('fusermount', ['-u', '-z', mnt]);
    }
  },
};
