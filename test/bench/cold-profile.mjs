// Where the CPU of a cold start goes, process by process: `ferry get` of a cold model in a mirror
// through 3 fresh cache-node processes (region store empty, so every node fills from the source),
// repeated. Prints each repetition's throughput and CPU seconds per GiB of the reader and of the
// nodes (per GiB filled and served). With --perf <prefix>, each process runs under `perf record`
// (on-CPU samples, kernel included) and its samples are summarised by kind (lib/perf-summary.mjs).
//
//   node test/bench/cold-profile.mjs [--reps 3] [--size-mib 512] [--readers 1] [--perf /tmp/cold] [--call-graph] [--warm]
//
// Builds nothing: run `npm run build` first. Needs redis-server (as the bench) and, for --perf, the
// perf tool (the reader's CPU figure then includes perf's own). --call-graph records stacks too
// (for `perf report -g`). --warm reads the model once, unmeasured, so that the measured read is
// served by warm nodes (the warm path, process by process).
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { connectRedis, Meta, MirrorMeta } from '@ferry/meta';
import { summarisePerf } from './lib/perf-summary.mjs';
import * as bench from './lib/util.mjs';

const { values } = parseArgs({
  options: {
    reps: { type: 'string', default: '3' },
    'size-mib': { type: 'string', default: '512' },
    readers: { type: 'string', default: '1' },
    perf: { type: 'string' },
    'call-graph': { type: 'boolean', default: false },
    warm: { type: 'boolean', default: false },
    work: { type: 'string', default: join(tmpdir(), 'ferry-cold-profile') },
  },
});
const reps = Number(values.reps);
const bytes = Number(values['size-mib']) * bench.MiB;
const readers = Number(values.readers);
const work = bench.freshDir(values.work);
const NODES = 3;
const sumOf = (runs, key) => runs.reduce((sum, run) => sum + run[key], 0);
const perfFlags = ['-q', '-F', '1999', ...(values['call-graph'] ? ['-g'] : [])];

const redis = await bench.startRedis();
const volume = `cold-profile-${Date.now()}`;
const model = join(bench.freshDir(join(work, 'model')), 'model.safetensors');
await bench.writeRandomFile(model, bytes);
const config = bench.writeConfig(
  join(work, 'ferry.yaml'),
  bench.mirrorWithCache({
    work,
    prefix: 'store',
    volume,
    redisUrl: redis.url,
    dbs: [6, 7],
    cache: { replicas: 1, readToken: 'cold-profile', writeToken: 'cold-profile' },
  }),
);
await bench.mustRun(process.execPath, [bench.FERRY_BIN, 'put', model, '/m/model.safetensors', '--config', config]);
const sourceRedis = connectRedis(`${redis.url}/6`);
const mirrorRedis = connectRedis(`${redis.url}/7`);
const source = new Meta({ redis: sourceRedis, volume });
await new MirrorMeta({ redis: mirrorRedis, volume }).apply(await source.log.readChanges('0-0'));

const perfFiles = [];
try {
  for (let rep = 0; rep < reps; rep++) {
    const nodes = await Promise.all(
      Array.from({ length: NODES }, (_, i) =>
        bench.startFerry([
          'cache-node',
          '--region',
          'eu',
          '--dir',
          bench.freshDir(join(work, `node-${rep}-${i}`)),
          '--capacity',
          `${(bytes * 2) / bench.MiB}MiB`,
          '--listen',
          '127.0.0.1:0',
          '--id',
          `node-${i}`,
          '--config',
          config,
        ]),
      ),
    );
    try {
      if (values.warm) {
        // One unmeasured read first: the measured ones find every chunk on the nodes.
        await bench.mustRun(process.execPath, [
          bench.FERRY_BIN,
          'get',
          '/m/model.safetensors',
          join(work, 'out-warm'),
          '--region',
          'eu',
          '--config',
          config,
        ]);
        await bench.mustRun('rm', ['-f', join(work, 'out-warm')]);
      }
      const perfOf = (name) => {
        const file = `${values.perf}-${rep}-${name}.data`;
        perfFiles.push({ name: `rep ${rep} ${name}`, file });
        return file;
      };
      const recorders = values.perf
        ? nodes.map((n, i) =>
            spawn('perf', ['record', ...perfFlags, '-o', perfOf(`node-${i}`), '-p', String(n.child.pid)], { stdio: 'ignore' }),
          )
        : [];
      if (recorders.length) await new Promise((resolve) => setTimeout(resolve, 500));
      await bench.settle();
      const before = nodes.map((n) => bench.cpuSeconds(n.child.pid));
      const started = performance.now();
      const getArgs = (i) => [
        bench.FERRY_BIN,
        'get',
        '/m/model.safetensors',
        join(work, `out-${i}`),
        '--region',
        'eu',
        '--config',
        config,
        '--json',
      ];
      const gets = await Promise.all(
        Array.from({ length: readers }, (_, i) =>
          values.perf
            ? bench.timedRun('perf', ['record', ...perfFlags, '-o', perfOf(`reader-${i}`), '--', process.execPath, ...getArgs(i)])
            : bench.timedRun(process.execPath, [...bench.FERRY_NODE_FLAGS, ...getArgs(i)]),
        ),
      );
      const ms = performance.now() - started;
      const nodeCpu = nodes.reduce((sum, n, i) => sum + bench.cpuSeconds(n.child.pid) - before[i], 0);
      const readerCpu = gets.reduce((sum, g) => sum + g.cpu, 0);
      const direct = gets.reduce((sum, g) => {
        const last = g.stdout
          .trim()
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .at(-1);
        return sum + (JSON.parse(last).tiers.bytes['source:src'] ?? 0);
      }, 0);
      const gib = (bytes * readers) / bench.GiB;
      console.log(
        `rep ${rep}: ${((bytes * readers) / bench.MiB / (ms / 1000)).toFixed(0)} MiB/s; CPU s/GiB: reader(s) ${(readerCpu / gib).toFixed(2)}, ` +
          `nodes ${(nodeCpu / (bytes / bench.GiB)).toFixed(2)} per GiB filled and served, all ${((readerCpu + nodeCpu) / gib).toFixed(2)}; ` +
          `read from the source by the readers themselves ${(direct / bench.MiB).toFixed(0)} MiB; ` +
          `readers' user CPU ${(sumOf(gets, 'user') / gib).toFixed(2)} s/GiB, minor page faults ${(sumOf(gets, 'minorFaults') / gib).toFixed(0)}/GiB`,
      );
      for (const r of recorders) r.kill('SIGINT');
      await Promise.all(recorders.map((r) => new Promise((resolve) => r.once('exit', resolve))));
    } finally {
      // A failed repetition must not leave its nodes running (they hold the caller's stdout).
      await Promise.all(nodes.map((n) => bench.stopChild(n.child)));
    }
    await bench.mustRun('sh', ['-c', `rm -f "${work}"/out-*`]);
  }
} finally {
  await source.close();
  sourceRedis.disconnect();
  mirrorRedis.disconnect();
  await redis.stop();
}
for (const { name, file } of perfFiles) console.log(`\n${name} (${file})\n${summarisePerf(file)}`);
