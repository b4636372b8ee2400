import { type ChildProcess, spawn } from 'node:child_process';
import { openSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalIoError, type Logger, regionConfig } from '@ferry/core';
import { MountService } from '@ferry/mount';
import { stopSignal } from '@ferry/runtime';
import type { Context } from '../context.js';
import type { Output } from '../output.js';

export interface MountCommandOptions {
  region: string;
  path?: string;
  foreground: boolean;
  force: boolean;
  allowOther: boolean;
  directIo: boolean;
  listen?: string;
}

/**
 * Serve the volume of a region (or the directory `--path`) as a read-only file system on
 * `mountpoint` until SIGTERM/SIGINT, then unmount. Without --foreground the mount runs in a
 * process of its own (logs in a file) and this command returns once it is mounted.
 */
export async function mountCommand(
  ctx: Context,
  out: Output,
  mountpoint: string,
  opts: MountCommandOptions,
  logger: Logger,
): Promise<void> {
  regionConfig(ctx.config, opts.region);
  if (!opts.foreground) return background(out, mountpoint);
  const metricsToken = process.env.FERRY_MOUNT_METRICS_TOKEN;
  const service = new MountService({
    config: ctx.config,
    region: opts.region,
    mountpoint,
    logger,
    force: opts.force,
    allowOther: opts.allowOther,
    directIo: opts.directIo,
    processMetrics: true,
    ...(opts.path ? { path: opts.path } : {}),
    ...(opts.listen ? { listen: opts.listen === 'off' ? false : opts.listen } : {}),
    ...(metricsToken ? { metricsToken } : {}),
  });
  const stopped = stopSignal(logger);
  try {
    await service.start();
  } catch (err) {
    await service.stop();
    throw err;
  }
  const shown = opts.path ?? '/';
  out.result(
    {
      event: 'mounted',
      region: opts.region,
      volume: ctx.config.volume,
      path: shown,
      mountpoint: service.mountpoint,
      address: service.address ?? null,
    },
    [`mounted ${ctx.config.volume}:${shown} of region ${opts.region} on ${service.mountpoint} (read-only)`],
  );
  process.send?.({ event: 'mounted', mountpoint: service.mountpoint });
  await stopped;
  const { outcome, stillOpen } = await service.stop();
  const busy = outcome.kind === 'detached' ? `; it was busy (${outcome.reason}), detached lazily, ${stillOpen} file(s) still open` : '';
  out.result({ event: 'unmounted', mountpoint: service.mountpoint, outcome: outcome.kind, stillOpen }, [
    `unmounted ${service.mountpoint}${busy}`,
  ]);
}

/**
 * Run this same command with --foreground in a detached process and wait until it has mounted
 * (or failed: its one-line error becomes ours). Its logs go to a file named in the result.
 */
async function background(out: Output, mountpoint: string): Promise<void> {
  const log = join(tmpdir(), `ferry-mount-${Date.now()}-${process.pid}.log`);
  const fd = openSync(log, 'a');
  const [node, script, ...args] = process.argv;
  const child = spawn(node as string, [...process.execArgv, script as string, ...args, '--foreground'], {
    detached: true,
    stdio: ['ignore', fd, fd, 'ipc'],
  });
  const result = await new Promise<{ ok: true; mountpoint: string } | { ok: false; code: number | null }>((resolve) => {
    child.on('message', (m: { event?: string; mountpoint?: string }) => {
      if (m.event === 'mounted') resolve({ ok: true, mountpoint: m.mountpoint ?? mountpoint });
    });
    child.once('exit', (code) => resolve({ ok: false, code }));
  });
  if (!result.ok) {
    // The child said why in one line, like any ferry command; say the same here.
    const said = readFileSync(log, 'utf8')
      .split('\n')
      .filter((line) => line.startsWith('ferry: '))
      .at(-1);
    throw new LocalIoError(`${said ? said.slice(7) : `mount ${mountpoint} failed (exit ${result.code})`} (log: ${log})`);
  }
  detach(child);
  out.result({ event: 'mounted', mountpoint: result.mountpoint, pid: child.pid ?? null, log }, [
    `mounted on ${result.mountpoint} (pid ${child.pid}, log ${log}); stop it with: kill ${child.pid}`,
  ]);
}

function detach(child: ChildProcess): void {
  child.disconnect?.();
  child.unref();
}
