import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { type ChunkId, chunkKey } from '@ferry/core';
import { Membership } from '@ferry/meta';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCacheNode } from '../support/cache-cluster.js';
import { type FerryResult, runFerry } from '../support/cli.js';
import { createRegions, MiB, putBytes, type Regions } from '../support/regions.js';

/*
 * Daemons that cannot start say why in one line on stderr and exit 1: an address another process
 * holds (named with the flag or config key that sets it), a cache dir another node serves.
 */

/** One `ferry: …` line on stderr naming the problem, exit 1, no stack anywhere. */
/** Every stderr line a human `ferry: …` line: no JSON object, no stack. */
function expectHumanLines(stderr: string): string[] {
  const lines = stderr.split('\n').filter((l) => l !== '');
  for (const line of lines) expect(line, stderr).toMatch(/^ferry: /);
  expect(stderr).not.toMatch(/"level":|"stack"|\bat .+:\d+:\d+\)?$/m);
  return lines;
}

function expectStartRefused(result: FerryResult, includes: string): void {
  const shown = `stderr: ${JSON.stringify(result.stderr)}, stdout: ${JSON.stringify(result.stdout.slice(-1500))}`;
  expect(result.code, shown).toBe(1);
  expect(result.stderr, shown).toMatch(/^ferry: [^\n]+\n$/);
  expect(result.stderr, shown).toContain(includes);
  expect(result.stderr + result.stdout, shown).not.toMatch(/internal error|"stack"|\bat .+:\d+:\d+\)?$/m);
}

/** A TCP listener on a free loopback port, standing for another process that holds it. */
async function holdPort(): Promise<{ address: string; server: Server }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return { address: `127.0.0.1:${port}`, server };
}

describe('daemons that cannot start', () => {
  let regions: Regions;
  let held: { address: string; server: Server };
  const secret = () => randomBytes(12).toString('hex');

  beforeAll(async () => {
    held = await holdPort();
    regions = await createRegions({
      chunkSize: MiB,
      source: {
        cache: { readToken: secret(), writeToken: secret() },
        api: { listen: held.address, readToken: secret(), adminToken: secret() },
      },
      mirrors: { eu: { api: { listen: '127.0.0.1:0', readToken: secret(), adminToken: secret() } } },
    });
  });

  afterAll(async () => {
    held?.server.close();
    await regions?.close();
  });

  it('a busy address names itself, what sets it and that another process holds it', async () => {
    const config = regions.configPath;
    const dir = join(regions.dir, 'busy-node');
    const [replicator, replicatorFlag, node] = await Promise.all([
      runFerry(['replicator', '--region', 'src'], { config }),
      runFerry(['replicator', '--region', 'eu', '--listen', held.address], { config }),
      runFerry(['cache-node', '--region', 'src', '--dir', dir, '--capacity', '64MiB', '--listen', held.address], { config }),
    ]);
    expectStartRefused(replicator, `cannot listen on ${held.address} (set by regions.src.api.listen): another process holds it`);
    expectStartRefused(replicatorFlag, `cannot listen on ${held.address} (set by --listen): another process holds it`);
    expectStartRefused(node, `cannot listen on ${held.address} (set by --listen): another process holds it`);
  });

  it('a second cache node on a running node’s dir refuses in one line; the dir is free again once the node is gone', async () => {
    const dir = join(regions.dir, 'shared');
    const spec = { configPath: regions.configPath, region: 'src', dir, capacity: '64MiB', weight: 1 };
    const first = await startCacheNode({ ...spec, id: 'n1' });
    try {
      const second = await runFerry(
        ['cache-node', '--region', 'src', '--dir', dir, '--capacity', '64MiB', '--listen', '127.0.0.1:0', '--json'],
        { config: regions.configPath },
      );
      expectStartRefused(second, `cache dir ${dir} is in use by cache node n1 (pid ${first.proc.pid}, ${first.url})`);
      const members = await new Membership({ redis: regions.source.redis, volume: regions.volume }).members();
      expect(members.map((m) => [m.id, m.url])).toEqual([['n1', first.url]]);
    } finally {
      // Killed: no stop ran, its lock socket is left in the dir; the next node takes the dir anyway.
      await first.stop('SIGKILL');
    }
    const next = await startCacheNode({ ...spec, id: 'n2' });
    await next.stop('SIGTERM');
    expect(await next.exited).toBe(0);
  });

  it('a cache node that refuses the read token fails a read in one line, unless --best-effort reads around it', async () => {
    const node = await startCacheNode({
      configPath: regions.configPath,
      region: 'src',
      dir: join(regions.dir, 'auth'),
      capacity: '64MiB',
      weight: 1,
      id: 'auth1',
    });
    try {
      const { entries } = await putBytes(regions, { '/models/a/w.bin': randomBytes(2 * MiB + 5) });
      const doc = JSON.parse(await readFile(regions.configPath, 'utf8'));
      doc.regions.src.cache.readToken = 'not-the-read-token';
      doc.regions.src.cache.writeToken = 'not-the-write-token';
      // No api section: the warmup fills the nodes from the command itself.
      delete doc.regions.src.api;
      const wrong = join(regions.dir, 'wrong-token.yaml');
      await writeFile(wrong, JSON.stringify(doc));
      const [strict, lenient, warm] = await Promise.all([
        runFerry(['get', '/models/a/w.bin', join(regions.dir, 'strict.bin')], { config: wrong }),
        runFerry(['get', '/models/a/w.bin', join(regions.dir, 'lenient.bin'), '--best-effort'], { config: wrong }),
        runFerry(['warmup', '/models/a'], { config: wrong }),
      ]);
      expect(warm.code, warm.stderr).toBe(1);
      expect(expectHumanLines(warm.stderr).at(-1)).toBe(
        'ferry: cache node auth1 refused the write token: check regions.src.cache.writeToken (a direct warmup fills nodes with it)',
      );
      expect(strict.code, strict.stderr).toBe(1);
      expect(expectHumanLines(strict.stderr).at(-1)).toMatch(
        /^ferry: cache node auth1: get sha256-\w+: a valid bearer token is required \(the node refused the token: check regions\.src\.cache\.readToken \/ writeToken\); --best-effort reads around the cache$/,
      );
      expect(lenient.code, lenient.stderr).toBe(0);
      // (Nodes of the test before, gone now, are named as unreachable too.)
      expect(expectHumanLines(lenient.stderr).filter((l) => l.includes('token'))).toEqual([
        expect.stringContaining('ferry: warning: cache node refused the token; reading around the cache (node auth1'),
      ]);
      expect((await readFile(join(regions.dir, 'lenient.bin'))).length).toBe(entries[0]?.size);

      // A corrupt chunk in the region's store (and no other copy): human lines, exit 1.
      const chunk = entries[0]?.chunks[0]?.id as ChunkId;
      const file = join(regions.source.root as string, chunkKey(chunk));
      const bytes = await readFile(file);
      bytes[100] = (bytes[100] ?? 0) ^ 0xff;
      await writeFile(file, bytes);
      const corrupt = await runFerry(['get', '/models/a/w.bin', join(regions.dir, 'corrupt.bin'), '--best-effort'], { config: wrong });
      expect(corrupt.code, corrupt.stderr).toBe(1);
      expect(expectHumanLines(corrupt.stderr).at(-1)).toContain(`chunk ${chunk} of /models/a/w.bin: no tier has a good copy`);
    } finally {
      await node.stop();
    }
  });
});
