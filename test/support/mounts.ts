import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { FERRY_BIN } from './cli.js';

/*
 * `ferry mount` as it runs for a user: the built CLI in a process of its own (the FUSE server
 * must not share an event loop with a test that reads through it), in the foreground with --json
 * so the test sees its events. Every mountpoint a test made is detached in afterAll, even when
 * the test failed half way.
 */

export interface RunningMount {
  mountpoint: string;
  proc: ChildProcess;
  /** Metrics and health address. */
  address: string;
  /** Everything the process printed so far (JSON events and pino log lines). */
  output(): string;
  /** JSON lines printed so far. */
  events(): Array<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM (or the signal given); resolves with the exit and what it printed. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const made = new Set<string>();

/** Run a shell command (coreutils, python3) against the mount; never throws. */
export function sh(
  command: string,
  options: { cwd?: string; timeoutMs?: number } = {},
): { code: number | null; stdout: string; stderr: string } {
  const result = spawnSync('sh', ['-c', command], { cwd: options.cwd, encoding: 'utf8', timeout: options.timeoutMs ?? 60_000 });
  return { code: result.status, stdout: result.stdout ?? '', stderr: result.stderr ?? '' };
}

/** True when the kernel lists a mount at `path`. */
export async function isMounted(path: string): Promise<boolean> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  return text.split('\n').some((line) => line.split(' ')[4] === path);
}

/** Detach whatever a test left mounted at `path` (lazily: a failed test may still hold files open). */
export function detach(path: string): void {
  for (let i = 0; i < 4; i++) {
    const listed = spawnSync('sh', ['-c', `grep -q " ${path} " /proc/self/mountinfo`]).status === 0;
    if (!listed) return;
    if (spawnSync('fusermount', ['-u', '-z', path]).status !== 0) spawnSync('umount', ['-l', path]);
  }
}

/** Detach every mountpoint made by startMount in this file. */
export function detachAll(): void {
  for (const path of made) detach(path);
  made.clear();
}

/** `ferry mount --foreground --json <mountpoint> …`; resolves once it reports `mounted`. */
export async function startMount(options: {
  config: string;
  region: string;
  mountpoint: string;
  args?: string[];
  env?: Record<string, string>;
  /** `--listen` (default 127.0.0.1:0, a free port); null: none given, so mount.listen or its default applies. */
  listen?: string | null;
}): Promise<RunningMount> {
  // A stale mount left there answers ENOTCONN: the directory is there, under it.
  await mkdir(options.mountpoint, { recursive: true }).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOTCONN') throw err;
  });
  made.add(options.mountpoint);
  const args = [FERRY_BIN, 'mount', options.mountpoint, '--foreground', '--json', '--region', options.region];
  const listen = options.listen === undefined ? '127.0.0.1:0' : options.listen;
  args.push('--config', options.config, ...(listen === null ? [] : ['--listen', listen]), ...(options.args ?? []));
  const proc = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, FERRY_LOG_LEVEL: 'info', NODE_OPTIONS: '', ...options.env },
  });
  let text = '';
  proc.stderr?.on('data', (d: Buffer) => {
    text += d.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const events = (): Array<Record<string, unknown>> =>
    text
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`ferry mount did not mount within 30 s: ${text}`)), 30_000);
    createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      text += `${line}\n`;
      const event = line.startsWith('{') ? (JSON.parse(line) as { event?: string; address?: string }) : {};
      if (event.event === 'mounted') {
        clearTimeout(timer);
        resolve(event.address ?? '');
      }
    });
    void exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`ferry mount exited with ${code} before mounting: ${text}`));
    });
  });
  return {
    mountpoint: options.mountpoint,
    proc,
    address,
    output: () => text,
    events,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
  };
}

/** A fresh mountpoint under `dir`. */
export function mountpointIn(dir: string, name = 'mnt'): string {
  return join(dir, name);
}
