import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type CliWorkspace,
  cliWorkspace,
  expectOneLineError,
  expectSuccess,
  runFerry,
  sourceOnlyConfig,
  writeFerryConfig,
} from '../support/cli.js';
import { uniqueName } from '../support/random.js';

// The commands a person runs, each given a path that does not exist and a chunk that is
// corrupt: one human line on stderr (no JSON, no stack), nothing on stdout, and the exit code
// the README documents (1: the operation failed; 2: a usage mistake).

let ws: CliWorkspace;
let work: string;
let config: string;
let store: string;

beforeAll(async () => {
  ws = await cliWorkspace('one-line');
  work = ws.work;
  store = join(work, 'store');
  config = await writeFerryConfig(work, sourceOnlyConfig(uniqueName('one'), `file://${store}`, ws.redisUrl, { chunkSize: '1KiB' }));
  await mkdir(join(work, 'model'));
  await writeFile(join(work, 'model', 'weights.bin'), Buffer.alloc(3000, 7));
  expectSuccess(await runFerry(['put', join(work, 'model'), '/m'], { config }));
});

afterAll(async () => {
  await ws?.close();
});

describe('one line per failure', () => {
  it('a path that does not exist: put, get, cat, stat, rm, verify, import, mount; warmup without cache nodes', async () => {
    const runs = await Promise.all([
      runFerry(['put', join(work, 'nope'), '/x'], { config }),
      runFerry(['get', '/nope', join(work, 'out')], { config }),
      runFerry(['cat', '/nope'], { config }),
      runFerry(['stat', '/nope'], { config }),
      runFerry(['rm', '/nope'], { config }),
      runFerry(['verify', '/nope', '--region', 'src'], { config }),
      runFerry(['import', `file://${join(work, 'no-such-dir')}`, '/imported'], { config }),
      runFerry(['mount', join(work, 'no-mountpoint'), '--foreground', '--region', 'src'], { config }),
    ]);
    const lines = runs.map((r) => expectOneLineError(r, 1));
    for (const line of lines) expect(line).not.toContain('{');
    expect(lines[0]).toContain('no such file or directory');
    expect(lines[1]).toContain('/nope: no such file or directory');
    // warmup in a region without cache nodes: a config mistake (exit 2), said in one line.
    expectOneLineError(await runFerry(['warmup', '/nope'], { config }), 2, 'has no cache nodes configured');
  }, 120_000);

  it('a log level that does not exist: one line naming the levels (exit 2), for a command and a daemon', async () => {
    const env = { FERRY_LOG_LEVEL: 'verbose' };
    const [ls, gateway] = await Promise.all([
      runFerry(['ls', '/'], { config, env }),
      runFerry(['gateway', '--region', 'src'], { config, env }),
    ]);
    for (const run of [ls, gateway])
      expectOneLineError(run, 2, 'FERRY_LOG_LEVEL must be one of trace, debug, info, warn, error, fatal, silent (got verbose)');
  });

  it('a corrupt chunk: get fails in one line naming it, verify names it and exits 1', async () => {
    const chunks = (await readdir(join(store, 'chunks'), { recursive: true, withFileTypes: true })).filter((d) => d.isFile());
    expect(chunks.length).toBeGreaterThan(0);
    const victim = chunks[0] as (typeof chunks)[number];
    await writeFile(join(victim.parentPath, victim.name), Buffer.alloc(1024, 1));
    const get = await runFerry(['get', '/m/weights.bin', join(work, 'got.bin')], { config });
    // One human line per event: the tier that served a bad copy (a warning), then the failure.
    expect(get.code).toBe(1);
    expect(get.stdout).toBe('');
    const lines = get.stderr.trimEnd().split('\n');
    for (const line of lines) expect(line).toMatch(/^ferry: [^{]+$/);
    expect(lines.at(-1)).toMatch(/^ferry: chunk \S+ of \/m\/weights.bin: no tier has a good copy \(.*sha256 mismatch\)$/);
    const verify = await runFerry(['verify', '--region', 'src'], { config });
    expect(verify.code).toBe(1);
    expect(verify.stderr).not.toMatch(/^\{|\bat .+:\d+:\d+\)?$/m);
    expect(`${verify.stdout}${verify.stderr}`).toContain(victim.name);
  }, 60_000);
});
