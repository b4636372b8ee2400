import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  type ConfigDoc,
  expectOneLineError,
  expectSuccess,
  type FerryResult,
  requireBuiltCli,
  runFerry,
  sourceOnlyConfig,
  writeFerryConfig,
} from '../support/cli.js';
import { uniqueName } from '../support/random.js';
import { freePort } from '../support/servers/free-port.js';

// Every failure of the `ferry` command is one line on stderr starting with "ferry: ", no stack
// trace, nothing on stdout, and exit code 1 (an operation failed) or 2 (a usage mistake: bad
// path, config, URL or argument).

let redisUrl: string;
let work: string;
let volume: string;
let config: string;
let doc: ConfigDoc;

beforeAll(async () => {
  requireBuiltCli();
  redisUrl = `${inject('redisUrl')}/0`;
  work = await mkdtemp(join(tmpdir(), 'ferry-cli-errors-'));
  volume = uniqueName('cli-err');
  doc = sourceOnlyConfig(volume, `file://${join(work, 'store')}`, redisUrl);
  config = await writeFerryConfig(work, doc);
  await mkdir(join(work, 'model'));
  await writeFile(join(work, 'model', 'config.json'), '{}\n');
  const put = await runFerry(['put', join(work, 'model'), '/m'], { config });
  expectSuccess(put);
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/** Run several commands at once (each is its own process). */
function all(runs: Array<[string[], Parameters<typeof runFerry>[1]?]>): Promise<FerryResult[]> {
  return Promise.all(runs.map(([args, options]) => runFerry(args, options ?? { config })));
}

describe('config problems are usage errors (exit 2)', () => {
  it('no config anywhere: no --config, no FERRY_CONFIG, no ./ferry.yaml', async () => {
    const empty = await mkdtemp(join(work, 'cwd-'));
    const [noConfig, missingFile, missingEnvFile] = await all([
      [['ls', '/'], { cwd: empty }],
      [['ls', '/', '--config', join(work, 'nope.yaml')], { cwd: empty }],
      [['stat', '/m'], { cwd: empty, env: { FERRY_CONFIG: join(work, 'nope.yaml') } }],
    ]);
    expectOneLineError(noConfig as FerryResult, 2, 'no config: pass --config <file>, set FERRY_CONFIG, or create ./ferry.yaml');
    expectOneLineError(missingFile as FerryResult, 2, `cannot read config ${join(work, 'nope.yaml')}: no such file or directory`);
    expectOneLineError(missingEnvFile as FerryResult, 2, `cannot read config ${join(work, 'nope.yaml')}`);

    // ./ferry.yaml in the working directory is found without a flag.
    await writeFerryConfig(empty, doc);
    const found = await runFerry(['ls', '/'], { cwd: empty });
    expectSuccess(found);
    expect(found.stdout).toContain('/m/');
  });

  it('malformed configs: bad YAML, an unknown field, a bad store URL, an unset $NAME reference', async () => {
    const unset = `FERRY_TEST_UNSET_${uniqueName('v').slice(2).toUpperCase()}`;
    const files = {
      yaml: await writeFerryConfig(work, 'volume: [unclosed\nsource: src\n', 'bad-yaml.yaml'),
      field: await writeFerryConfig(work, { ...doc, colour: 'blue' }, 'unknown-field.yaml'),
      scheme: await writeFerryConfig(work, sourceOnlyConfig(volume, 'ftp://host/dir', redisUrl), 'scheme.yaml'),
      bucket: await writeFerryConfig(work, sourceOnlyConfig(volume, 's3:///no-bucket', redisUrl), 'bucket.yaml'),
      env: await writeFerryConfig(work, sourceOnlyConfig(volume, `file://${work}/s`, `\${${unset}}`), 'env.yaml'),
    };
    const [yaml, field, scheme, bucket, env] = await all(
      Object.values(files).map((file) => [['ls', '/'], { config: file, env: { [unset]: undefined } }]),
    );
    expectOneLineError(yaml as FerryResult, 2, `invalid config ${files.yaml}: not valid YAML`);
    expectOneLineError(field as FerryResult, 2, /Unrecognized key.*"colour"/);
    expectOneLineError(scheme as FerryResult, 2, /regions\.src\.store: expected a store URL/);
    expectOneLineError(bucket as FerryResult, 2, 'invalid store URL "s3:///no-bucket"');
    expectOneLineError(env as FerryResult, 2, `regions.src.redis: environment variable ${unset} is not set`);
  });
});

describe('operation failures (exit 1)', () => {
  it('an unreachable Redis is named without its password', async () => {
    const port = await freePort();
    const secret = `s3cr3t-${uniqueName('pw')}`;
    const closed = await writeFerryConfig(
      work,
      sourceOnlyConfig(volume, `file://${join(work, 'store')}`, `redis://:${secret}@127.0.0.1:${port}/0`),
      'closed.yaml',
    );
    const results = await all([
      [['ls', '/'], { config: closed }],
      [['put', join(work, 'model'), '/m2'], { config: closed }],
    ]);
    for (const r of results) {
      expectOneLineError(r, 1, `cannot reach Redis at redis://:***@127.0.0.1:${port}/0: connection refused`);
      expect(r.stderr).not.toContain(secret);
    }
  });

  it('an unknown volume path for stat, get, cat, ls and rm; a local file that does not exist', async () => {
    const missing = join(work, 'no-such-model');
    const results = await all([
      [['stat', '/m/nope']],
      [['get', '/m/nope', join(work, 'out')]],
      [['cat', '/m/nope']],
      [['ls', '/nope']],
      [['rm', '/nope']],
      [['stat', '/m']],
      [['put', missing, '/m3']],
      [['rm', '/m']],
    ]);
    const [stat, get, cat, ls, rmr, dir, put, rmDir] = results as FerryResult[];
    expectOneLineError(stat as FerryResult, 1, 'stat /m/nope: no such file');
    expect(expectOneLineError(get as FerryResult, 1)).toBe('ferry: /m/nope: no such file or directory');
    expectOneLineError(cat as FerryResult, 1, '/m/nope: no such file');
    expectOneLineError(ls as FerryResult, 1, '/nope: no such file or directory');
    expectOneLineError(rmr as FerryResult, 1, '/nope: no such file or directory');
    expectOneLineError(dir as FerryResult, 1, 'stat /m: no such file; it is a directory');
    expectOneLineError(put as FerryResult, 1, `cannot read ${missing}: no such file or directory`);
    expectOneLineError(rmDir as FerryResult, 2, 'delete /m: is a directory; remove it and everything below with -R (ferry rm -R)');
  });

  it('gc --dry-run reports what it would delete and says nothing of temp files it did not look at', async () => {
    const dry = await runFerry(['gc', '--dry-run'], { config });
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/^src: would delete \d+ chunks? \([^)]*\), \d+ of them orphans\n/);
    expect(dry.stdout).not.toContain('temp file');
  });

  // As root (CI containers often are), chmod 000 does not stop reads: nothing to test there.
  it.skipIf(process.getuid?.() === 0)('a local file or folder that cannot be read', async () => {
    const dir = join(work, 'locked');
    await mkdir(join(dir, 'sub'), { recursive: true });
    await writeFile(join(dir, 'secret.bin'), 'x');
    await chmod(join(dir, 'secret.bin'), 0o000);
    const lockedDir = join(work, 'locked-dir');
    await mkdir(lockedDir);
    await chmod(lockedDir, 0o000);
    try {
      const [file, folder, folderOfFile] = await all([
        [['put', join(dir, 'secret.bin'), '/locked/secret.bin']],
        [['put', lockedDir, '/locked-dir']],
        [['put', dir, '/locked']],
      ]);
      expectOneLineError(file as FerryResult, 1, 'permission denied');
      expectOneLineError(folder as FerryResult, 1, 'permission denied');
      expectOneLineError(folderOfFile as FerryResult, 1, 'permission denied');
      // Nothing of a failed folder put is committed.
      expectOneLineError(await runFerry(['ls', '/locked'], { config }), 1, 'no such file or directory');
    } finally {
      await chmod(join(dir, 'secret.bin'), 0o644);
      await chmod(lockedDir, 0o755);
    }
  });
});

describe('usage mistakes (exit 2)', () => {
  it('invalid volume paths', async () => {
    const results = await all([
      [['stat', '/a/../b']],
      [['stat', '/a//b']],
      [['ls', '/a/./b']],
      [['get', '/a//b', join(work, 'out')]],
      [['put', join(work, 'model'), '/a/../b']],
      [['mv', '/m', '/a//b']],
      [['rm', '-R', '/a/..']],
    ]);
    for (const r of results) expectOneLineError(r, 2, /invalid path "[^"]+": (empty segment|"\.\." segment|"\." segment)/);
    expect(results[0]?.stderr).toBe('ferry: invalid path "/a/../b": ".." segment\n');
    expect(results[1]?.stderr).toBe('ferry: invalid path "/a//b": empty segment ("//")\n');
    // Nothing was written by the refused put and mv.
    const ls = await runFerry(['ls', '-R', '/'], { config });
    expectSuccess(ls);
    expect(ls.stdout.trim().split('\n')).toHaveLength(1);
  });

  it('a bad option value', async () => {
    const word = await runFerry(['get', '/m', join(work, 'o'), '-j', 'many'], { config });
    expectOneLineError(word, 2, '--concurrency must be a whole number from 1 to 1024, got "many"');
  });

  // Writes only ever go to the source region: put, rm and mv take no --region, so there is no
  // way to aim a write at a read-only mirror from the command line (asking for one is a usage
  // mistake). The ReadOnlyRegionError path of Context.writable() is not reachable from the CLI.
  it('unknown commands and options, a missing argument, and a write aimed at a mirror', async () => {
    const mirrored = await writeFerryConfig(
      work,
      { ...doc, regions: { ...doc.regions, eu: { store: `file://${join(work, 'eu')}`, redis: `${inject('redisUrl')}/1` } } },
      'two-regions.yaml',
    );
    const results = await all([
      [['bogus']],
      [['ls', '--bogus']],
      [['put', join(work, 'model')]],
      [['put', join(work, 'model'), '/m-eu', '--region', 'eu'], { config: mirrored }],
      [['rm', '/m/config.json', '--region', 'eu'], { config: mirrored }],
      [['mv', '/m', '/m-eu', '-r', 'eu'], { config: mirrored }],
    ]);
    const [command, option, missing, ...writes] = results as FerryResult[];
    for (const r of results) {
      expect(r.code, r.stderr).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    // One line each, naming the mistake.
    for (const r of results) expectOneLineError(r, 2);
    expect(command?.stderr).toContain("unknown command 'bogus'");
    expect(option?.stderr).toContain("unknown option '--bogus'");
    expect(missing?.stderr).toContain("missing required argument 'path'");
    for (const w of writes) expect(w.stderr).toContain('region "eu" is a read-only mirror; write to the source region "src"');
    // And nothing was written anywhere.
    const [src, eu] = await all([
      [['ls', '-R', '/'], { config: mirrored }],
      [['ls', '-R', '/', '--region', 'eu'], { config: mirrored }],
    ]);
    expectSuccess(src as FerryResult);
    expect(src?.stdout.trim().split('\n')).toEqual([expect.stringContaining('/m/config.json')]);
    expectSuccess(eu as FerryResult);
    expect(eu?.stdout).toBe('');
  });
});
