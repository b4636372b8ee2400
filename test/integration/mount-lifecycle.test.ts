import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOneLineError, runFerry } from '../support/cli.js';
import { detach, detachAll, isMounted, sh, startMount } from '../support/mounts.js';
import { createRegions, MiB, putBytes, type Regions, waitFor } from '../support/regions.js';

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

  it('in the background: returns once mounted, and the mount serves until it gets SIGTERM', async () => {
    const mountpoint = join(regions.dir, 'bg');
    await mkdir(mountpoint, { recursive: true });
    try {
      const result = await runFerry(['mount', mountpoint, '--json', '--region', 'src', '--listen', 'off', '--path', '/models'], {
        config: regions.configPath,
      });
      expect(result.code, result.stderr).toBe(0);
      const mounted = JSON.parse(result.stdout.trim().split('\n').at(-1) as string) as { pid: number; log: string };
      expect(sh(`cat '${join(mountpoint, 'm/config.json')}'`).stdout).toBe('{}');
      process.kill(mounted.pid, 'SIGTERM');
      await waitFor(async () => !(await isMounted(mountpoint)), 10_000, 'the background mount to unmount');
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
