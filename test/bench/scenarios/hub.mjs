// Scenario: Hugging Face clients through `ferry hub`. One repo of about 1 GiB (two safetensors
// shards and small config files) put at the source, mirrored to eu and warmed onto eu's cache
// node; then, from eu, `snapshot_download` (the real huggingface_hub client, 8 workers, a fresh
// cache) through `ferry hub`, against `ferry get` of the same folder from the same warm node
// (the goal: at least 0.8 ×) and against `curl` of the same files from a plain static server.
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  cpuSeconds,
  FERRY_BIN,
  freshDir,
  GiB,
  MiB,
  mibps,
  mirrorWithCache,
  mustRun,
  ROOT,
  settle,
  startFerry,
  startReplicator,
  startStaticServer,
  stopChild,
  timedRun,
  writeConfig,
  writeRandomFile,
} from '../lib/util.mjs';

const TOKEN = 'bench-cache-token';
const HUB_TOKEN = 'bench-hub-token-0123456789';

/** The venv of the real client (test/support/hf-venv.sh), or undefined when it cannot be made. */
function clientPython() {
  try {
    const venv = execFileSync('bash', [join(ROOT, 'test/support/hf-venv.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .trim()
      .split('\n')
      .at(-1);
    return join(venv, 'bin', 'python');
  } catch {
    return undefined;
  }
}

function bytesUnder(dir) {
  let n = 0;
  for (const name of readdirSync(dir, { recursive: true })) {
    const s = statSync(join(dir, name));
    if (s.isFile()) n += s.size;
  }
  return n;
}

export const hub = {
  id: 'hub',
  title: 'Hugging Face clients: snapshot_download through ferry hub vs ferry get and curl, from a warm cache node',
  available: () => clientPython() !== undefined,
  unavailableReason: 'no huggingface_hub client: run bash test/support/hf-venv.sh',
  async run({ work, redis, size }) {
    const python = clientPython();
    const shard = Math.max(16 * MiB, Math.round((GiB * size) / 2));
    const model = freshDir(join(work, 'hub-model'));
    await writeRandomFile(join(model, 'model-00001-of-00002.safetensors'), shard);
    await writeRandomFile(join(model, 'model-00002-of-00002.safetensors'), shard);
    await writeRandomFile(join(model, 'tokenizer.json'), 2 * MiB);
    execFileSync('sh', ['-c', `printf '{"model_type":"llama"}\\n' > ${join(model, 'config.json')}`]);
    const bytes = bytesUnder(model);
    const volume = `bench-hub-${Date.now()}`;
    const config = writeConfig(join(work, `${volume}.yaml`), {
      ...mirrorWithCache({
        work,
        prefix: 'hub',
        volume,
        redisUrl: redis.url,
        dbs: [14, 15],
        cache: { replicas: 1, readToken: TOKEN, writeToken: TOKEN, connectTimeoutMs: 500 },
      }),
      hub: { readToken: HUB_TOKEN },
    });
    const ferry = (args) => mustRun(process.execPath, [FERRY_BIN, ...args, '--config', config]);
    await ferry(['put', model, '/hf/acme/bench-llm']);
    const replicator = await startReplicator(config);
    const node = await startFerry([
      'cache-node',
      '--region',
      'eu',
      '--dir',
      freshDir(join(work, 'hub-node')),
      '--capacity',
      `${Math.ceil((bytes * 2) / MiB)}MiB`,
      '--listen',
      '127.0.0.1:0',
      '--config',
      config,
    ]);
    const hubProcess = await startFerry(['hub', '--region', 'eu', '--listen', '127.0.0.1:0', '--config', config]);
    const plain = await startStaticServer(model);
    const rows = [];
    try {
      await ferry(['warmup', '/hf/acme/bench-llm', '--region', 'eu', '--wait']);
      const endpoint = hubProcess.started.address;
      const home = freshDir(join(work, 'hub-home'));
      const env = {
        PATH: process.env.PATH,
        HOME: home,
        HF_HOME: join(home, 'hf'),
        HF_ENDPOINT: endpoint,
        HF_TOKEN: HUB_TOKEN,
        HF_HUB_DISABLE_TELEMETRY: '1',
        HF_HUB_DISABLE_UPDATE_CHECK: '1',
        HF_HUB_DISABLE_XET: '1',
        HF_HUB_DISABLE_PROGRESS_BARS: '1',
      };
      const script = `from huggingface_hub import snapshot_download\nsnapshot_download("acme/bench-llm", local_dir="${join(work, 'hub-out')}")`;
      // One download first, untimed: the hub's and the client's start-up and the region's listing.
      await mustRun(python, ['-c', script.replace('hub-out', 'hub-first')], { env });
      freshDir(join(work, 'hub-out'));
      await settle();
      const hubCpu = cpuSeconds(hubProcess.child.pid);
      const nodeCpu = cpuSeconds(node.child.pid);
      const download = await timedRun(python, ['-c', script], { env });
      const serving = { hub: cpuSeconds(hubProcess.child.pid) - hubCpu, node: cpuSeconds(node.child.pid) - nodeCpu };
      await settle();
      const get = await timedRun(process.execPath, [
        FERRY_BIN,
        'get',
        '/hf/acme/bench-llm',
        freshDir(join(work, 'hub-get')),
        '--region',
        'eu',
        '--config',
        config,
      ]);
      await settle();
      const names = readdirSync(model);
      const curlOut = freshDir(join(work, 'hub-curl'));
      const curl = await mustRun('curl', ['-s', '-Z', ...names.flatMap((n) => ['-o', join(curlOut, n), `${plain.url}/${n}`])]);
      // The client's own ceiling: huggingface_hub's downloader (http_get, the same worker count)
      // fetching the same files from the plain server, no Hub API and no Ferry in the way.
      const ceilingOut = freshDir(join(work, 'hub-ceiling'));
      const ceilingScript = [
        'from concurrent.futures import ThreadPoolExecutor',
        'from huggingface_hub.file_download import http_get',
        `names = ${JSON.stringify(names)}`,
        'def one(n):',
        `    with open("${ceilingOut}/" + n, "wb") as f: http_get("${plain.url}/" + n, f)`,
        'list(ThreadPoolExecutor(8).map(one, names))',
      ].join('\n');
      await settle();
      const ceiling = await timedRun(python, ['-c', ceilingScript], { env });
      const gib = bytes / GiB;
      rows.push({
        metric: 'snapshot_download through ferry hub (warm cache node)',
        unit: 'MiB/s',
        ferry: mibps(bytes, download.ms),
        cpu: download.cpu / gib,
        peer: 'ferry get (same warm node, to disk)',
        peerValue: mibps(bytes, get.ms),
        ratio: get.ms / download.ms,
      });
      rows.push({
        metric: 'snapshot_download through ferry hub (warm cache node)',
        unit: 'MiB/s',
        ferry: mibps(bytes, download.ms),
        peer: "plain server, huggingface_hub's http_get (8 threads): the client's ceiling",
        peerValue: mibps(bytes, ceiling.ms),
        ratio: ceiling.ms / download.ms,
      });
      rows.push({
        metric: 'snapshot_download through ferry hub (warm cache node)',
        unit: 'MiB/s',
        ferry: mibps(bytes, download.ms),
        peer: 'plain server, curl -Z (parallel) to files',
        peerValue: mibps(bytes, curl.ms),
        ratio: curl.ms / download.ms,
      });
      return {
        rows,
        notes: [
          `One repo of ${(bytes / GiB).toFixed(2)} GiB (two shards of ${(shard / MiB).toFixed(0)} MiB, a 2 MiB tokenizer, a config), 8 MiB chunks, mirrored to eu and warmed onto one cache node. Each tool is a process timed from start to exit (python with huggingface_hub's 8 download workers; ferry get; curl).`,
          `CPU s/GiB of snapshot_download counts the client only; serving it took the hub process ${(serving.hub / gib).toFixed(2)} and the cache node ${(serving.node / gib).toFixed(2)} CPU s/GiB (every chunk verified in the hub). The client's downloader alone spent ${(ceiling.cpu / gib).toFixed(2)} CPU s/GiB against the plain server: on a small machine the Python client, not the hub, sets the pace.`,
        ],
      };
    } finally {
      await plain.stop();
      await stopChild(hubProcess.child);
      await stopChild(node.child);
      await replicator.stop();
    }
  },
};
