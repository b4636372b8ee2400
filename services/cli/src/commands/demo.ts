import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { formatBytes, parseConfig } from '@ferry/core';
import { Context } from '../context.js';
import { startRedis } from '../embedded-redis.js';
import { createLogger } from '../logger.js';
import type { Output } from '../output.js';
import { writeSyntheticModel } from '../synthetic-model.js';
import { getCommand, putCommand } from './files.js';
import { lsCommand } from './namespace.js';

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const part of createReadStream(path)) hash.update(part as Buffer);
  return hash.digest('hex');
}

/**
 * The main job on the embedded default: a private redis-server and local-disk stores under
 * `--dir`, a synthetic model folder put into the source region, listed, read back and verified.
 * `FERRY_DEMO_REDIS=redis://…` uses an existing Redis instead of starting one.
 */
export async function demoCommand(out: Output, opts: { dir: string }): Promise<void> {
  const dir = resolve(opts.dir);
  const say = (text: string) => out.line(text);
  const embedded = process.env.FERRY_DEMO_REDIS ? undefined : await startRedis();
  const redisUrl = process.env.FERRY_DEMO_REDIS ?? (embedded?.url as string);
  say(`ferry demo in ${dir}`);
  say(`  redis: ${embedded ? `private redis-server on ${redisUrl}` : redisUrl}`);
  const logger = createLogger({ name: 'ferry-demo', level: process.env.FERRY_LOG_LEVEL ?? 'warn' });
  const config = parseConfig({
    volume: 'demo',
    chunkSize: '8MiB',
    source: 'src',
    regions: { src: { store: `file://${join(dir, 'stores', 'src')}`, redis: `${redisUrl}/0` } },
  });
  const ctx = new Context({ config, logger });
  try {
    // The private redis-server starts empty each run, so the stores start empty too.
    await rm(join(dir, 'stores'), { recursive: true, force: true });
    const model = await writeSyntheticModel(join(dir, 'model'), { shards: 4, shardBytes: 32 << 20 });
    say(`  model: ${model.files.length} files, ${formatBytes(model.bytes)} in ${model.dir}`);

    say('\n1. put the model into the source region (chunked, hashed, one atomic commit)');
    await putCommand(ctx, out, model.dir, '/models/demo-llm', { concurrency: 8 });

    say('\n2. put it again: every chunk is already there, nothing is uploaded');
    await putCommand(ctx, out, model.dir, '/models/demo-llm', { concurrency: 8 });

    say('\n3. list it');
    await lsCommand(ctx, out, '/models/demo-llm', { recursive: false });

    say('\n4. read it back and compare with the originals');
    const restored = join(dir, 'restored');
    await rm(restored, { recursive: true, force: true });
    await getCommand(ctx, out, '/models/demo-llm', restored, { concurrency: 8 });
    let same = 0;
    for (const file of model.files) {
      const [a, b] = await Promise.all([sha256File(join(model.dir, file.name)), sha256File(join(restored, file.name))]);
      if (a !== b) throw new Error(`demo: ${file.name} differs after the round trip`);
      same += 1;
    }
    say(`  ${same}/${model.files.length} files byte-identical (sha256)`);
    out.event({ event: 'demo', verified: same, files: model.files.length });
    say(`\ndone. Stores are under ${dir}/stores; the private redis-server has been stopped.`);
  } finally {
    await ctx.close();
    await embedded?.stop();
  }
}
