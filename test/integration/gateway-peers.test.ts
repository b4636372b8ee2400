import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type GatewayFixture, peerEnv, startGateway, writeRcloneConfig } from '../support/gateway.js';

// The real S3 clients people point at a mirror: the aws CLI and rclone download a model folder
// through the gateway, byte for byte. CI installs them with `apt-get install -y awscli rclone`.

const run = promisify(execFile);
const MiB = 1 << 20;
const MODEL: Record<string, Buffer> = {
  'config.json': Buffer.from('{"model_type":"llama","hidden_size":4096}\n'),
  'tokenizer.json': randomBytes(300_000),
  'model-00001-of-00002.safetensors': randomBytes(24 * MiB + 7),
  'model-00002-of-00002.safetensors': randomBytes(9 * MiB),
  'empty.bin': Buffer.alloc(0),
  'docs/read me+notes.md': Buffer.from('# notes\n'),
};

let fx: GatewayFixture;

/** A peer's binary, or a failure that says how to install it (a missing peer must not pass silently). */
function binary(name: string, candidates: string[], apt: string): string {
  for (const path of candidates) if (existsSync(path)) return path;
  throw new Error(`${name} is not installed (looked at ${candidates.join(', ')}): run \`apt-get install -y ${apt}\``);
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const name of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (name.isFile()) out.push(relative(dir, join(name.parentPath, name.name)));
  }
  return out.sort();
}

async function expectSameModel(dir: string): Promise<void> {
  expect(await filesUnder(dir)).toEqual(Object.keys(MODEL).sort());
  for (const [name, bytes] of Object.entries(MODEL)) {
    expect((await readFile(join(dir, name))).equals(bytes), name).toBe(true);
  }
}

beforeAll(async () => {
  fx = await startGateway({ chunkSize: 4 * MiB });
  await fx.put('/models/llama-tiny', MODEL);
  await fx.put('/models/other', { 'x.bin': Buffer.from('not part of the sync') });
});

afterAll(async () => {
  await fx?.close();
});

it('aws s3 sync downloads the model byte-identical, and a second sync copies nothing', async () => {
  const aws = binary('the aws CLI v2', ['/usr/bin/aws'], 'awscli');
  const home = join(fx.root, 'aws-home');
  const target = join(fx.root, 'aws-out');
  await mkdir(home, { recursive: true });
  // Small parts so the 24 MiB shard is fetched as concurrent ranged GETs, as real shards are.
  await writeFile(join(home, 'aws-config'), '[default]\ns3 =\n  multipart_threshold = 8MB\n  multipart_chunksize = 5MB\n');
  const args = ['s3', 'sync', `s3://${fx.volume}/models/llama-tiny`, target, '--endpoint-url', fx.endpoint, '--no-progress'];
  const first = await run(aws, args, { env: peerEnv(home, fx), timeout: 60_000 });
  expect(first.stdout.match(/^download:/gm)?.length, first.stdout + first.stderr).toBe(Object.keys(MODEL).length);
  await expectSameModel(target);
  const shard = await stat(join(target, 'model-00001-of-00002.safetensors'));
  const entry = await fx.source.meta.stat('/models/llama-tiny/model-00001-of-00002.safetensors');
  expect(Math.floor(shard.mtimeMs / 1000)).toBe(Math.floor(entry.mtime / 1000));
  const second = await run(aws, args, { env: peerEnv(home, fx), timeout: 60_000 });
  expect(second.stdout.trim()).toBe('');
  const ls = await run(aws, ['s3', 'ls', `s3://${fx.volume}/models/`, '--endpoint-url', fx.endpoint], { env: peerEnv(home, fx) });
  expect(ls.stdout).toMatch(/PRE llama-tiny\/\n\s+PRE other\//);
});

it('rclone copy downloads the model byte-identical', async () => {
  const rclone = binary('rclone', ['/usr/bin/rclone', '/usr/local/bin/rclone'], 'rclone');
  const home = join(fx.root, 'rclone-home');
  const target = join(fx.root, 'rclone-out');
  await mkdir(home, { recursive: true });
  const config = join(home, 'rclone.conf');
  await writeRcloneConfig(config, fx);
  const args = ['copy', `gw:${fx.volume}/models/llama-tiny`, target, '--config', config, '--low-level-retries', '1', '--retries', '1'];
  await run(rclone, args, { env: peerEnv(home, fx), timeout: 60_000 });
  await expectSameModel(target);
  const again = await run(rclone, [...args, '-v'], { env: peerEnv(home, fx), timeout: 60_000 });
  expect(again.stderr).toMatch(/There was nothing to transfer/);
  const listed = await run(rclone, ['lsf', '-R', `gw:${fx.volume}/models/llama-tiny`, '--config', config], { env: peerEnv(home, fx) });
  expect(
    listed.stdout
      .split('\n')
      .filter((l) => l && !l.endsWith('/'))
      .sort(),
  ).toEqual(Object.keys(MODEL).sort());
});
