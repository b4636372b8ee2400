import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { InvalidArgumentError, LocalIoError, type Logger, localIoError, regionConfig } from '@ferry/core';
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
  /** The background mount's log file (appended); default: a new file in the temp dir. */
  log?: string;
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
  if (!opts.foreground) return background(out, mountpoint, opts.log);
  if (opts.log !== undefined) throw new InvalidArgumentError('--log is for the background mode; with --foreground the log goes to stdout');
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
  const mounted: Mounted = { mountpoint: service.mountpoint, address: service.address ?? null, addressBusy: service.addressBusy ?? null };
  out.result({ event: 'mounted', region: opts.region, volume: ctx.config.volume, path: shown, ...mounted }, [
    `mounted ${ctx.config.volume}:${shown} of region ${opts.region} on ${service.mountpoint} (read-only)${endpointNote(mounted)}`,
  ]);
  process.send?.({ event: 'mounted', ...mounted });
  // A signal, or the mount went away (fusermount -u by hand): either way the process ends.
  await Promise.race([stopped, service.unmountedOutside]);
  const { outcome, stillOpen } = await service.stop();
  const how =
    outcome.kind === 'detached'
      ? `; it was busy (${outcome.reason}), detached lazily, ${stillOpen} file(s) still open`
      : outcome.kind === 'outside'
        ? ' (it was unmounted from outside)'
        : '';
  out.result({ event: 'unmounted', mountpoint: service.mountpoint, outcome: outcome.kind, stillOpen }, [
    `unmounted ${service.mountpoint}${how}`,
  ]);
  // A background mount's default log file goes with a clean stop; one that went wrong keeps it.
  const ownLog = process.env[OWN_LOG];
  if (ownLog && outcome.kind !== 'detached') rmSync(ownLog, { force: true });
}

/** Names the log file the background parent made for this mount (not one the user gave with --log). */
const OWN_LOG = 'FERRY_MOUNT_OWN_LOG';

/** What a started mount reports (the background parent gets it over IPC). */
interface Mounted {
  mountpoint: string;
  /** Metrics and health URL. */
  address: string | null;
  /** The default address that was busy (`address` is a free port instead). */
  addressBusy: string | null;
}

const endpointNote = (m: Mounted): string =>
  m.addressBusy ? `; metrics and health on ${m.address} (${m.addressBusy} is held by another process)` : '';

/** The arguments without `--log <file>` / `--log=<file>` (the background process gets its log as stdout). */
function withoutLog(args: string[]): string[] {
  const kept: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '--log') i++;
    else if (!arg.startsWith('--log=')) kept.push(arg);
  }
  return kept;
}

/**
 * Run this same command with --foreground in a detached process and wait until it has mounted
 * (or failed: its one-line error becomes ours). Its log goes to `--log` (appended), else to a new
 * file in the temp dir; either is named in the result. A start that fails leaves no file behind:
 * the log is removed once its reason is reported (a `--log` file that was there before keeps it);
 * the temp-dir file is also removed by a clean stop (a busy stop keeps it).
 */
async function background(out: Output, mountpoint: string, logOption: string | undefined): Promise<void> {
  const log = logOption === undefined ? join(tmpdir(), `ferry-mount-${Date.now()}-${process.pid}.log`) : resolve(logOption);
  const existed = existsSync(log);
  const from = existed ? statSync(log).size : 0;
  let fd: number;
  try {
    fd = openSync(log, 'a');
  } catch (err) {
    throw localIoError(err, 'log file', log);
  }
  const [node, script, ...args] = process.argv;
  let child: ChildProcess;
  try {
    child = spawn(node as string, [...process.execArgv, script as string, ...withoutLog(args), '--foreground'], {
      detached: true,
      stdio: ['ignore', fd, fd, 'ipc'],
      env: { ...process.env, ...(logOption === undefined ? { [OWN_LOG]: log } : {}) },
    });
  } finally {
    closeSync(fd); // the child has its own
  }
  const result = await new Promise<{ ok: true; mounted: Mounted } | { ok: false; code: number | null; signal: string | null }>((done) => {
    child.on('message', (m: Partial<Mounted> & { event?: string }) => {
      if (m.event === 'mounted')
        done({
          ok: true,
          mounted: { mountpoint: m.mountpoint ?? mountpoint, address: m.address ?? null, addressBusy: m.addressBusy ?? null },
        });
    });
    child.once('exit', (code, signal) => done({ ok: false, code, signal }));
  });
  if (!result.ok) {
    // The child said why in one line, like any ferry command; say the same here.
    const lines = readFileSync(log).subarray(from).toString('utf8').split('\n');
    const said = lines.filter((line) => line.startsWith('ferry: ')).at(-1);
    const last = lines.filter((line) => line.trim() !== '').at(-1);
    if (!existed) rmSync(log, { force: true });
    const how = result.signal ? `was killed by ${result.signal}` : `exited with code ${result.code}`;
    throw new LocalIoError(
      said
        ? said.slice(7)
        : `mount ${mountpoint} failed: its process ${how} before mounting${last ? `; its last line: ${last.slice(0, 300)}` : ''}`,
    );
  }
  detach(child);
  const { mounted } = result;
  out.result({ event: 'mounted', ...mounted, pid: child.pid ?? null, log }, [
    `mounted on ${mounted.mountpoint} (pid ${child.pid}, log ${log})${endpointNote(mounted)}; stop it with: kill ${child.pid}`,
  ]);
}

function detach(child: ChildProcess): void {
  child.disconnect?.();
  child.unref();
}
