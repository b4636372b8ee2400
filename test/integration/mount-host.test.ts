import { readdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { MOUNT_LISTEN_DEFAULT } from '@ferry/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOneLineError, runFerry } from '../support/cli.js';
import { detach, detachAll, isMounted, sh, startMount } from '../support/mounts.js';
import { createRegions, putBytes, type Regions, waitFor } from '../support/regions.js';
import { freePort } from '../support/servers/free-port.js';

/*
 * Mounts sharing a host: the default metrics address gives way to a free port when another
 * process holds it (and says so); an address someone chose fails in one line naming it and its
 * setting; a background mount that fails to start leaves no log file behind.
 */

/** Hold `host:port` like another process would; resolves false when something else holds it already. */
function hold(address: string): Promise<{ server: Server; held: boolean }> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  const server = createServer();
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => (err.code === 'EADDRINUSE' ? resolve({ server, held: false }) : reject(err)));
    server.listen(port, host, () => resolve({ server, held: true }));
  });
}

describe('ferry mount: two on one host', () => {
  let regions: Regions;

  beforeAll(async () => {
    regions = await createRegions();
    await putBytes(regions, { '/models/m/config.json': Buffer.from('{}') });
  });

  afterAll(async () => {
    detachAll();
    await regions?.close();
  });

  it('the default metrics address, busy, gives way to a free port, named in the log and the output', async () => {
    const { server, held } = await hold(MOUNT_LISTEN_DEFAULT);
    try {
      const mount = await startMount({ config: regions.configPath, region: 'src', mountpoint: join(regions.dir, 'second'), listen: null });
      const mounted = mount.events().find((e) => e.event === 'mounted') as { address: string; addressBusy: string };
      expect(mounted.addressBusy).toBe(MOUNT_LISTEN_DEFAULT);
      expect(mounted.address).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(mounted.address).not.toBe(`http://${MOUNT_LISTEN_DEFAULT}`);
      const health = await fetch(`${mounted.address}/healthz`);
      expect(health.status).toBe(200);
      expect(await health.json()).toMatchObject({ ok: true, detail: { mounted: true } });
      const said = mount
        .output()
        .split('\n')
        .filter((line) => line.includes('is held by another process'));
      expect(said).toHaveLength(1);
      expect(said[0]).toContain(mounted.address);
      expect(await mount.stop()).toEqual({ code: 0, signal: null });
    } finally {
      if (held) server.close();
    }
  });

  it('an address given by --listen or mount.listen that is busy fails in one line naming it and the setting', async () => {
    const address = `127.0.0.1:${await freePort()}`;
    const { server, held } = await hold(address);
    expect(held).toBe(true);
    const mountpoint = join(regions.dir, 'taken');
    sh(`mkdir -p '${mountpoint}'`);
    try {
      const byFlag = await runFerry(['mount', mountpoint, '--foreground', '--region', 'src', '--listen', address], {
        config: regions.configPath,
      });
      const line = expectOneLineError(byFlag, 1, `cannot serve metrics and health on ${address} (set by --listen)`);
      expect(line).toContain('another process holds it');

      const doc = JSON.parse(await readFile(regions.configPath, 'utf8')) as Record<string, unknown>;
      const config = join(regions.dir, 'ferry-listen.yaml');
      await writeFile(config, JSON.stringify({ ...doc, mount: { listen: address } }));
      const byConfig = await runFerry(['mount', mountpoint, '--foreground', '--region', 'src'], { config });
      expectOneLineError(byConfig, 1, `cannot serve metrics and health on ${address} (set by mount.listen): another process holds it`);
      expect(await isMounted(mountpoint)).toBe(false);
    } finally {
      server.close();
    }
  });

  it('a background mount that fails to start says why and leaves no log file; a running one logs where --log says', async () => {
    const tmp = join(regions.dir, 'tmp');
    sh(`mkdir -p '${tmp}'`);
    const mountpoint = join(regions.dir, 'bg');
    sh(`mkdir -p '${mountpoint}'`);
    const env = { TMPDIR: tmp };
    const failed = await runFerry(['mount', mountpoint, '--region', 'src', '--listen', 'off', '--path', '/models/none'], {
      config: regions.configPath,
      env,
    });
    const line = expectOneLineError(failed, 1, '--path /models/none: no such directory');
    expect(line).not.toContain('log');
    expect(await readdir(tmp)).toEqual([]);

    // A --log file it made is removed too.
    const log = join(regions.dir, 'mount.log');
    const failedWithLog = await runFerry(['mount', mountpoint, '--region', 'src', '--listen', 'off', '--path', '/none', '--log', log], {
      config: regions.configPath,
      env,
    });
    expectOneLineError(failedWithLog, 1, '--path /none: no such directory');
    expect(sh(`ls '${log}'`).code).not.toBe(0);

    const started = await runFerry(['mount', mountpoint, '--json', '--region', 'src', '--listen', 'off', '--log', log], {
      config: regions.configPath,
      env,
    });
    expect(started.code, started.stderr).toBe(0);
    const mounted = JSON.parse(started.stdout.trim().split('\n').at(-1) as string) as { pid: number; log: string };
    try {
      expect(mounted.log).toBe(log);
      expect(sh(`cat '${join(mountpoint, 'models/m/config.json')}'`).stdout).toBe('{}');
      expect(await readFile(log, 'utf8')).toContain('"msg":"mounted"');
      expect(await readdir(tmp)).toEqual([]);
    } finally {
      process.kill(mounted.pid, 'SIGTERM');
      await waitFor(async () => !(await isMounted(mountpoint)), 10_000, 'the background mount to unmount');
      detach(mountpoint);
    }
  });
});
