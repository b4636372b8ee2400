import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOneLineError, runFerry } from '../support/cli.js';
import { detach, detachAll, isMounted, type RunningMount, sh, startMount } from '../support/mounts.js';
import { createRegions, MiB, putBytes, type Regions, sleep, waitFor } from '../support/regions.js';
import { freePort } from '../support/servers/free-port.js';

/** The test's config file with `extra` sections added. */
async function configWith(regions: Regions, name: string, extra: Record<string, unknown>): Promise<string> {
  const doc = JSON.parse(await readFile(regions.configPath, 'utf8')) as Record<string, unknown>;
  const path = join(regions.dir, name);
  await writeFile(path, JSON.stringify({ ...doc, ...extra }));
  return path;
}

/** The mount's exit, or 'running' if it has not exited within `ms`. */
function exitWithin(mount: RunningMount, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null } | 'running'> {
  return Promise.race([mount.exited, sleep(ms).then(() => 'running' as const)]);
}

/*
 * The life of a mount: SIGTERM/SIGINT unmount it (a busy mount is reported and detached lazily),
 * a stale mount left by a killed process is refused with a clear message and cleared by --force,
 * the background mode returns once mounted, and bad input is one line.
 */

describe('ferry mount: start and stop', () => {
  let regions: Regions;

  beforeAll(async () => {
    regions = await createRegions({ chunkSize: MiB });
    await putBytes(regions, { '/models/m/config.json': Buffer.from('{}'), '/models/m/w.bin': randomBytes(2 * MiB) });
  });

  afterAll(async () => {
    detachAll();
    await regions?.close();
  });

  it('SIGTERM unmounts an idle mount; SIGINT a busy one, reported and detached lazily', async () => {
    const idle = await startMount({ config: regions.configPath, region: 'src', mountpoint: join(regions.dir, 'idle') });
    expect(await isMounted(idle.mountpoint)).toBe(true);
    expect(await idle.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    expect(await isMounted(idle.mountpoint)).toBe(false);
    expect(idle.events().find((e) => e.event === 'unmounted')).toMatchObject({ outcome: 'unmounted', stillOpen: 0 });

    const busy = await startMount({ config: regions.configPath, region: 'src', mountpoint: join(regions.dir, 'busy') });
    // A process whose working directory is inside keeps the mount busy.
    const holder = spawn('sleep', ['30'], { cwd: join(busy.mountpoint, 'models/m'), stdio: 'ignore' });
    try {
      await waitFor(() => holder.pid !== undefined, 5000, 'the holder to start');
      expect(await busy.stop('SIGINT')).toEqual({ code: 0, signal: null });
      expect(busy.events().find((e) => e.event === 'unmounted')).toMatchObject({ outcome: 'detached' });
      expect(busy.output()).toContain('mount busy: detached lazily');
      expect(await isMounted(busy.mountpoint)).toBe(false);
    } finally {
      holder.kill('SIGKILL');
    }
  });

  it('a busy mount exits as soon as its last open file is closed after the lazy detach, not at stopTimeout', async () => {
    const config = await configWith(regions, 'ferry-stop20.yaml', { mount: { stopTimeout: '20s' } });
    const mount = await startMount({ config, region: 'src', mountpoint: join(regions.dir, 'drain') });
    const file = await open(join(mount.mountpoint, 'models/m/w.bin'), 'r');
    let closedAt = 0;
    try {
      expect((await file.read(Buffer.alloc(4096), 0, 4096, 0)).bytesRead).toBe(4096);
      mount.proc.kill('SIGTERM');
      await waitFor(() => mount.output().includes('mount busy: detached lazily'), 10_000, 'the lazy detach');
      await sleep(1000);
      expect(mount.proc.exitCode).toBeNull();
    } finally {
      await file.close();
      closedAt = Date.now();
    }
    const exit = await exitWithin(mount, 25_000);
    const afterClose = Date.now() - closedAt;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(afterClose, `exited ${afterClose} ms after the close`).toBeLessThan(2000);
    expect(mount.events().find((e) => e.event === 'unmounted')).toMatchObject({ outcome: 'detached', stillOpen: 0 });
    expect(await isMounted(mount.mountpoint)).toBe(false);
  }, 60_000);

  it('a file another process holds open: the busy mount exits right after that process closes it', async () => {
    const config = await configWith(regions, 'ferry-stop15.yaml', { mount: { stopTimeout: '15s' } });
    const mount = await startMount({ config, region: 'src', mountpoint: join(regions.dir, 'held') });
    // A shell holds the file on fd 3 for 2.6 s, as a person's `exec 3<file` would.
    const holder = spawn('sh', ['-c', `exec 3<'${join(mount.mountpoint, 'models/m/w.bin')}'; head -c 100 <&3 >/dev/null; sleep 2.6`], {
      stdio: 'ignore',
    });
    const closed = new Promise<number>((resolve) => holder.once('exit', () => resolve(Date.now())));
    await sleep(500);
    mount.proc.kill('SIGTERM');
    const closedAt = await closed;
    const exit = await exitWithin(mount, 20_000);
    const afterClose = Date.now() - closedAt;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(afterClose, `exited ${afterClose} ms after the close`).toBeLessThan(2000);
    expect(mount.events().find((e) => e.event === 'unmounted')).toMatchObject({ outcome: 'detached', stillOpen: 0 });
  }, 60_000);

  it('unmounted from outside (fusermount -u): the process exits, and its address is free for the next mount', async () => {
    const mountpoint = join(regions.dir, 'outside');
    const listen = `127.0.0.1:${await freePort()}`;
    const first = await startMount({ config: regions.configPath, region: 'src', mountpoint, listen });
    try {
      expect(sh(`fusermount -u '${mountpoint}'`).code).toBe(0);
      expect(await exitWithin(first, 5000)).toEqual({ code: 0, signal: null });
    } finally {
      first.proc.kill('SIGKILL');
    }
    const said = first
      .output()
      .split('\n')
      .filter((line) => line.includes('unmounted from outside'));
    expect(said).toHaveLength(1);
    expect(first.events().find((e) => e.event === 'unmounted')).toMatchObject({ outcome: 'outside', stillOpen: 0 });
    expect(first.output()).not.toContain('unmount failed');

    const second = await startMount({ config: regions.configPath, region: 'src', mountpoint, listen });
    expect(second.address).toBe(`http://${listen}`);
    expect(sh(`cat '${join(mountpoint, 'models/m/config.json')}'`).stdout).toBe('{}');
    expect(await second.stop()).toEqual({ code: 0, signal: null });
  });

  it('a stale mount is refused with a clear message; --force clears it', async () => {
    const mountpoint = join(regions.dir, 'stale');
    const first = await startMount({ config: regions.configPath, region: 'src', mountpoint });
    await first.stop('SIGKILL');
    expect(sh(`ls '${mountpoint}'`).stderr).toContain('Transport endpoint is not connected');

    const refused = await runFerry(['mount', mountpoint, '--foreground', '--region', 'src', '--listen', 'off'], {
      config: regions.configPath,
    });
    const line = expectOneLineError(refused, 1, 'stale FUSE mount');
    expect(line).toContain('--force');

    const forced = await startMount({ config: regions.configPath, region: 'src', mountpoint, args: ['--force'] });
    expect(forced.output()).toContain('detached what was mounted here');
    expect(sh(`cat '${join(mountpoint, 'models/m/config.json')}'`).stdout).toBe('{}');
    expect(await forced.stop()).toEqual({ code: 0, signal: null });
    expect(await isMounted(mountpoint)).toBe(false);
  });

  it('in the background: returns once mounted, serves until it gets SIGTERM, then removes its log file', async () => {
    const mountpoint = join(regions.dir, 'bg');
    await mkdir(mountpoint, { recursive: true });
    try {
      const result = await runFerry(['mount', mountpoint, '--json', '--region', 'src', '--listen', 'off', '--path', '/models'], {
        config: regions.configPath,
      });
      expect(result.code, result.stderr).toBe(0);
      const mounted = JSON.parse(result.stdout.trim().split('\n').at(-1) as string) as { pid: number; log: string };
      expect(sh(`cat '${join(mountpoint, 'm/config.json')}'`).stdout).toBe('{}');
      expect(existsSync(mounted.log)).toBe(true);
      process.kill(mounted.pid, 'SIGTERM');
      await waitFor(async () => !(await isMounted(mountpoint)), 10_000, 'the background mount to unmount');
      // The log file it made in the temp dir goes with a clean stop.
      await waitFor(() => !existsSync(mounted.log), 10_000, 'the background mount to remove its log');
    } finally {
      detach(mountpoint);
    }
  });

  it('bad input is one line and no mount', async () => {
    const mountpoint = join(regions.dir, 'bad');
    await mkdir(mountpoint, { recursive: true });
    const args = ['mount', mountpoint, '--foreground', '--listen', 'off'];
    expectOneLineError(await runFerry([...args, '--region', 'nowhere'], { config: regions.configPath }), 2, 'unknown region "nowhere"');
    expectOneLineError(
      await runFerry([...args, '--region', 'src', '--path', '/models/none'], { config: regions.configPath }),
      1,
      '--path /models/none: no such directory',
    );
    expectOneLineError(
      await runFerry(['mount', join(regions.dir, 'absent'), '--foreground', '--region', 'src'], { config: regions.configPath }),
      1,
      'no such file or directory',
    );
    expect(await isMounted(mountpoint)).toBe(false);
  });
});
