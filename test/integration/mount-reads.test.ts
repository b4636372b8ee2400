import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { type FileHandle, open } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { type ChunkId, chunkKey, type Entry } from '@ferry/core';
import type { Replicator } from '@ferry/replicator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detachAll, type RunningMount, sh, startMount } from '../support/mounts.js';
import { createRegions, entryOf, MiB, putBytes, type Regions, sleep, waitFor, waitForConvergence } from '../support/regions.js';
import { startReplicator } from '../support/replicators.js';

/*
 * What a read through `ferry mount` promises: an open file keeps the version it opened while the
 * source replaces it; a mirror without the bytes reads through the source and queues the chunks
 * for copying (backfill); a chunk no tier has is EIO with one log line naming it.
 */

const SIZE = 6 * MiB;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function readAt(handle: FileHandle, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(buffer, done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return buffer.subarray(0, done);
}

/** Replace `path` at the source with `bytes` and wait until the mirror shows the new version. */
async function replaceAtSource(regions: Regions, path: string, bytes: Buffer): Promise<Entry> {
  const { version } = await putBytes(regions, { [path]: bytes });
  await waitFor(
    async () => (await entryOf(regions.mirror('eu'), path))?.version === version,
    15_000,
    'the mirror to apply the new version',
  );
  // Past the mount's attribute cache (1 s), so a new open sees the new version.
  await sleep(1200);
  return (await entryOf(regions.mirror('eu'), path)) as Entry;
}

describe('an open file keeps its version', () => {
  let regions: Regions;
  let replicator: Replicator;
  const mounts: RunningMount[] = [];

  beforeAll(async () => {
    regions = await createRegions({ chunkSize: MiB });
    replicator = await startReplicator(regions, 'eu');
  });

  afterAll(async () => {
    await Promise.allSettled(mounts.map((m) => m.stop()));
    detachAll();
    await replicator?.stop();
    await regions?.close();
  });

  /** Version 1 of `path` at the source, in the mirror, and a mount of the mirror: the file's path there. */
  async function mountedVersion1(path: string, v1: Buffer, name: string, args: string[] = []): Promise<string> {
    await putBytes(regions, { [path]: v1 });
    await waitForConvergence(regions, 'eu', 30_000);
    const mount = await startMount({ config: regions.configPath, region: 'eu', mountpoint: join(regions.dir, name), args });
    mounts.push(mount);
    return join(mount.mountpoint, path);
  }

  it('the open handle reads the old bytes to the end, a new open reads the new bytes', async () => {
    const path = '/models/a/model-00001-of-00001.safetensors';
    const [v1, v2] = [randomBytes(SIZE), randomBytes(SIZE)];
    const file = await mountedVersion1(path, v1, 'mnt-cached');
    const old = await open(file, 'r');
    try {
      const head = await readAt(old, 0, MiB);
      await replaceAtSource(regions, path, v2);
      // The old handle goes on reading after the replacement: still version 1, to the end.
      const rest = await readAt(old, MiB, SIZE);
      expect(sha(Buffer.concat([head, rest]))).toBe(sha(v1));
      // A new open (the old one still open) reads version 2.
      const fresh = await open(file, 'r');
      try {
        expect(sha(await readAt(fresh, 0, SIZE + 1))).toBe(sha(v2));
      } finally {
        await fresh.close();
      }
    } finally {
      await old.close();
    }
    expect(sh(`sha256sum '${file}'`).stdout.split(' ')[0]).toBe(sha(v2));
  });

  for (const mode of ['cached', 'direct-io'] as const) {
    it(`${mode}: the two versions stay apart even when both are read at once`, async () => {
      const path = `/models/${mode}/model.safetensors`;
      const [v1, v2] = [randomBytes(SIZE), randomBytes(SIZE)];
      const file = await mountedVersion1(path, v1, `mnt-${mode}-both`, mode === 'direct-io' ? ['--direct-io'] : []);
      const old = await open(file, 'r');
      try {
        const head = await readAt(old, 0, MiB);
        await replaceAtSource(regions, path, v2);
        const fresh = await open(file, 'r');
        try {
          // The new version is read whole first (its pages cached, in the default mode), then the
          // old handle reads on and reads it all again, then the new one again.
          expect(sha(await readAt(fresh, 0, SIZE + 1))).toBe(sha(v2));
          expect(sha(Buffer.concat([head, await readAt(old, MiB, SIZE)]))).toBe(sha(v1));
          expect(sha(await readAt(old, 0, SIZE + 1))).toBe(sha(v1));
          expect(sha(await readAt(fresh, 0, SIZE + 1))).toBe(sha(v2));
          // Each version is its own inode: what tools see tells them apart too.
          const [oldStat, freshStat] = await Promise.all([old.stat(), fresh.stat()]);
          expect(oldStat.ino).not.toBe(freshStat.ino);
        } finally {
          await fresh.close();
        }
      } finally {
        await old.close();
      }
    });
  }

  it('two versions memory-mapped at once (MAP_SHARED, as safetensors maps) each read their own bytes', async () => {
    const path = '/models/mapped/model.safetensors';
    const [v1, v2] = [randomBytes(SIZE), randomBytes(SIZE)];
    const file = await mountedVersion1(path, v1, 'mnt-mapped');
    const script = [
      'import hashlib, mmap, sys',
      "f = open(sys.argv[1], 'rb')",
      'old = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)',
      'head = old[: 1 << 20]',
      "print('mapped', flush=True)",
      'sys.stdin.readline()',
      "g = open(sys.argv[1], 'rb')",
      'new = mmap.mmap(g.fileno(), 0, access=mmap.ACCESS_READ)',
      'sha = lambda b: hashlib.sha256(b).hexdigest()',
      'print(sha(new[:]), sha(old[:]), sha(new[:]), flush=True)',
    ].join('\n');
    const python = spawn('python3', ['-c', script, file], { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines = createInterface({ input: python.stdout })[Symbol.asyncIterator]();
    try {
      expect((await lines.next()).value).toBe('mapped');
      await replaceAtSource(regions, path, v2);
      python.stdin.write('go\n');
      expect(String((await lines.next()).value).split(' ')).toEqual([sha(v2), sha(v1), sha(v2)]);
    } finally {
      python.kill();
    }
  });
});

describe('a mirror whose store lacks the data', () => {
  let regions: Regions;
  let mount: RunningMount;
  const token = randomBytes(8).toString('hex');
  const model = { path: '/models/cold/model.safetensors', bytes: randomBytes(5 * MiB + 321) };
  const broken = { path: '/models/cold/broken.bin', bytes: randomBytes(3 * MiB) };

  beforeAll(async () => {
    regions = await createRegions({ chunkSize: MiB });
    await putBytes(regions, { [model.path]: model.bytes, [broken.path]: broken.bytes });
    // Metadata only: the mirror knows the files, its store holds none of their bytes.
    const mirror = regions.mirror('eu');
    await mirror.mirror.apply(await regions.source.meta.log.readChanges('0-0'));
    mount = await startMount({
      config: regions.configPath,
      region: 'eu',
      mountpoint: join(regions.dir, 'mnt'),
      env: { FERRY_MOUNT_METRICS_TOKEN: token },
    });
  });

  afterAll(async () => {
    await mount?.stop();
    detachAll();
    await regions?.close();
  });

  it('reads through the source and queues the chunks it read for copying (backfill)', async () => {
    const mirror = regions.mirror('eu');
    const entry = (await entryOf(mirror, model.path)) as Entry;
    const ids = entry.chunks.map((c) => c.id);
    expect(await mirror.mirror.missing(ids)).toEqual(ids);
    const result = sh(`sha256sum '${join(mount.mountpoint, model.path)}'`);
    expect(result.stdout.split(' ')[0]).toBe(sha(model.bytes));

    const metrics = await fetch(`${mount.address}/metrics`, { headers: { authorization: `Bearer ${token}` } });
    const text = await metrics.text();
    const fromSource = Number(/ferry_mount_tier_bytes_total\{tier="source:src"[^}]*\} (\d+)/.exec(text)?.[1]);
    expect(fromSource).toBe(model.bytes.length);
    expect((await fetch(`${mount.address}/metrics`)).status).toBe(401);

    // Every chunk read from the source is asked for in the region's backfill list (the one key a
    // reader may write). The mount asks beside the read, not before answering it: the last request
    // may land just after the read returns.
    const asked = async () =>
      new Set((await mirror.redis.lrange(mirror.meta.keys.backfill, 0, -1)).map((r) => (JSON.parse(r) as { chunk: string }).chunk));
    await waitFor(
      async () => {
        const requested = await asked();
        return ids.every((id) => requested.has(id));
      },
      10_000,
      'a backfill request for every chunk read',
    );
    // The mirror's replicator queues them and copies: the chunks land in its store.
    const replicator = await startReplicator(regions, 'eu');
    try {
      await waitFor(async () => (await mirror.mirror.missing(ids)).length === 0, 30_000, 'the backfilled chunks in the mirror');
      for (const id of ids) expect((await mirror.store.head(chunkKey(id))).size).toBeGreaterThan(0);
    } finally {
      await replicator.stop();
    }
  });

  it('a chunk no tier has is EIO, with one log line naming it', async () => {
    const entry = (await entryOf(regions.source, broken.path)) as Entry;
    const lost = entry.chunks[1]?.id as ChunkId;
    await regions.source.store.delete(chunkKey(lost));
    // The replicator of the test before may have copied it into the mirror by now: gone there too.
    await regions.mirror('eu').store.delete(chunkKey(lost));
    const file = join(mount.mountpoint, broken.path);
    for (let i = 0; i < 2; i++) {
      const result = sh(`cat '${file}' > /dev/null`);
      expect(result.code).not.toBe(0);
      expect(result.stderr).toContain('Input/output error');
    }
    // The first chunk still reads.
    expect(sh(`head -c 1000 '${file}' | wc -c`).stdout.trim()).toBe('1000');
    const logged = () =>
      mount
        .output()
        .split('\n')
        .filter((line) => line.includes('chunk unreadable'));
    await waitFor(() => logged().length > 0, 5000, 'the log line of the unreadable chunk');
    await sleep(300);
    const lines = logged();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(lost);
    expect(lines[0]).toContain(broken.path);
  });
});
