import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detach, isMounted } from '../support/mounts.js';
import { waitFor } from '../support/regions.js';

/*
 * The FUSE binding itself, through a fixture that serves one file straight through it: a reply
 * made with an argument of the wrong type (what a bug in the request handler sends) answers the
 * kernel EIO at once, so the reading process fails instead of hanging, and the reply throws; a
 * mount whose handler cannot be used leaves nothing mounted.
 */

const FIXTURE = fileURLToPath(new URL('../support/fuse-fixture.mjs', import.meta.url));

interface Fixture {
  proc: ChildProcess;
  events: Array<Record<string, unknown>>;
  exited: Promise<number | null>;
}

/** Fixture processes started; any still running at the end (a test that failed half way) are killed. */
const started: ChildProcess[] = [];

async function serve(mountpoint: string, fault: string): Promise<Fixture> {
  await mkdir(mountpoint, { recursive: true });
  const proc = spawn(process.execPath, [FIXTURE, mountpoint, fault], { stdio: ['ignore', 'pipe', 'pipe'] });
  started.push(proc);
  const events: Array<Record<string, unknown>> = [];
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the fixture did not start: ${stderr}`)), 15_000);
    createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      const event = JSON.parse(line) as Record<string, unknown>;
      events.push(event);
      if (event.event === 'mounted' || event.event === 'mountFailed') {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      if (!events.some((e) => e.event === 'mounted' || e.event === 'mountFailed'))
        reject(new Error(`the fixture exited with ${code}: ${stderr}`));
    });
  });
  return { proc, events, exited };
}

/** A command against the mount, killed (SIGKILL: a process waiting on FUSE ignores the rest) if it hangs. */
function timed(command: string): { code: number | null; stderr: string; ms: number } {
  const started = Date.now();
  const r = spawnSync('sh', ['-c', command], { encoding: 'utf8', timeout: 10_000, killSignal: 'SIGKILL' });
  return { code: r.status, stderr: r.stderr ?? '', ms: Date.now() - started };
}

describe('the FUSE binding', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-fuse-'));
  });

  afterAll(async () => {
    for (const proc of started) if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    if (dir) {
      for (const name of ['none', 'data-not-array', 'data-not-buffer', 'dir', 'entry', 'attr', 'open', 'err', 'bad-handler'])
        detach(join(dir, name));
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('serves the fixture when every reply is right', async () => {
    const mountpoint = join(dir, 'none');
    const fixture = await serve(mountpoint, 'none');
    try {
      const r = spawnSync('sh', ['-c', `ls '${mountpoint}' && wc -c < '${mountpoint}/f'`], { encoding: 'utf8', timeout: 10_000 });
      expect(r.stdout.split('\n').map((l) => l.trim())).toEqual(['f', '4096', '']);
    } finally {
      spawnSync('fusermount', ['-u', mountpoint]);
    }
    expect(await fixture.exited).toBe(0);
    expect(fixture.events.filter((e) => e.event !== 'mounted')).toEqual([{ event: 'exit' }]);
  });

  it.each([
    ['data-not-array', 'read', 'cat {mp}/f'],
    ['data-not-buffer', 'read', 'cat {mp}/f'],
    ['dir', 'readdir', 'ls {mp}'],
    ['entry', 'lookup', 'stat {mp}/f'],
    ['attr', 'getattr', 'stat {mp}/f'],
    ['open', 'open', 'cat {mp}/f'],
    ['err', 'lookup', 'stat {mp}/none'],
  ])('%s: the reply that cannot be made answers EIO at once and throws', async (fault, op, command) => {
    const mountpoint = join(dir, fault);
    const fixture = await serve(mountpoint, fault);
    try {
      const r = timed(command.replaceAll('{mp}', mountpoint));
      expect(r.code, `${command} was killed after ${r.ms} ms: the request was never answered`).not.toBeNull();
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain('Input/output error');
      expect(r.ms).toBeLessThan(3000);
      // The fixture's lines are read once this test's event loop runs again (spawnSync blocked it).
      const failed = (e: Record<string, unknown>) => e.event === 'replyFailed' && e.op === op && e.code === 'EREPLY';
      await waitFor(() => fixture.events.some(failed), 5000, `the ${op} reply to throw`).catch(() => {});
      expect(fixture.events).toContainEqual(expect.objectContaining({ event: 'replyFailed', op, code: 'EREPLY' }));
    } finally {
      spawnSync('fusermount', ['-u', '-z', mountpoint]);
    }
    expect(await fixture.exited).toBe(0);
  });

  it('a mount whose handler is not a function fails and leaves nothing mounted', async () => {
    const mountpoint = join(dir, 'bad-handler');
    const fixture = await serve(mountpoint, 'bad-handler');
    expect(await fixture.exited).toBe(0);
    expect(fixture.events).toEqual([expect.objectContaining({ event: 'mountFailed', code: 'EMOUNT' })]);
    expect(await isMounted(mountpoint)).toBe(false);
  });
});
