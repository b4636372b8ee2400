import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { formatBytes, parseConfig, sha256OfStream } from '@ferry/core';
import { Replicator } from '@ferry/replicator';
import { startRedis } from '@ferry/runtime';
import { Context } from '../context.js';
import { createLogger } from '../logger.js';
import type { Output } from '../output.js';
import { writeSyntheticModel } from '../synthetic-model.js';
import { getCommand, putCommand } from './files.js';
import { lsCommand } from './namespace.js';
import { statusCommand } from './replication.js';

async function sha256File(path: string): Promise<string> {
  return (await sha256OfStream(createReadStream(path))).sha256;
}

/** Poll until `check` is true; returns the time it became true. */
async function waitFor(check: () => Promise<boolean>, timeoutMs = 120_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('demo: timed out waiting for the mirror');
    await new Promise((r) => setTimeout(r, 20));
  }
  return Date.now();
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
  // Errors only: the demo's private Redis persists nothing on purpose, and the daemon would warn of it.
  const logger = createLogger({ name: 'ferry-demo', kind: 'demo', json: out.json });
  const config = parseConfig({
    volume: 'demo',
    chunkSize: '8MiB',
    source: 'src',
    regions: {
      src: { store: `file://${join(dir, 'stores', 'src')}`, redis: `${redisUrl}/0` },
      eu: { store: `file://${join(dir, 'stores', 'eu')}`, redis: `${redisUrl}/1`, copy: { concurrency: 8 } },
    },
  });
  const ctx = new Context({ config, logger });
  const replicator = new Replicator({ config, region: 'eu', logger, listen: false });
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

    say('\n4. start the replicator of mirror region "eu" (another store, another Redis database)');
    await replicator.start();
    const eu = await ctx.region('eu');
    const started = Date.now();
    const visible = await waitFor(async () => (await eu.meta.tryStat('/models/demo-llm/config.json')) !== undefined);
    say(`  the model's ${model.files.length} files are listed in eu after ${visible - started} ms (metadata first)`);
    const complete = await waitFor(async () => (await replicator.status()).chunks?.missing === 0);
    const copied = (await replicator.metrics.bytesCopied.get()).values[0]?.value ?? 0;
    say(`  all chunks copied to eu and verified after ${complete - started} ms (${formatBytes(copied)} copied)`);
    out.event({ event: 'mirror', region: 'eu', visibleMs: visible - started, completeMs: complete - started, bytesCopied: copied });
    await statusCommand(ctx, out, '/models/demo-llm', {});

    say('\n5. a change at the source shows up in the mirror');
    const source = await ctx.source();
    const moved = Date.now();
    await source.meta.rename('/models/demo-llm/config.json', '/models/demo-llm/config.old.json');
    const renamed = await waitFor(async () => (await eu.meta.tryStat('/models/demo-llm/config.old.json')) !== undefined);
    say(`  mv at the source, seen in eu ${renamed - moved} ms later`);
    await source.meta.rename('/models/demo-llm/config.old.json', '/models/demo-llm/config.json');

    say('\n6. read it back from the mirror and compare with the originals');
    const restored = join(dir, 'restored');
    await rm(restored, { recursive: true, force: true });
    await waitFor(async () => (await eu.meta.tryStat('/models/demo-llm/config.json')) !== undefined);
    await getCommand(ctx, out, '/models/demo-llm', restored, { concurrency: 8, region: 'eu' });
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
    await replicator.stop();
    await ctx.close();
    await embedded?.stop();
  }
}
