import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { requireBuiltCli, runFerry } from '../support/cli.js';

// `npm run demo`, the way the README promises it: no config, a private redis-server, local-disk
// stores under --dir, and a read-back that is byte-identical.

let dir: string;

beforeAll(async () => {
  requireBuiltCli();
  dir = await mkdtemp(join(tmpdir(), 'ferry-cli-demo-'));
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('ferry demo --dir <tmp> exits 0 and reads every file back byte-identical', async () => {
  // An empty working directory and no FERRY_CONFIG: the demo needs no config.
  const demo = await runFerry(['demo', '--dir', join(dir, 'demo')], { cwd: dir, timeoutMs: 120_000 });
  expect(demo.code, `stderr: ${demo.stderr}\nstdout: ${demo.stdout}`).toBe(0);
  expect(demo.stdout).toContain('6/6 files byte-identical');
  expect(demo.stderr).toBe('');
  // It touched nothing outside --dir.
  expect(await readdir(dir)).toEqual(['demo']);
});
