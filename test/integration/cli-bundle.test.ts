import { spawnSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO } from '../support/regions.js';

// bin/ferry.js runs the bundle of scripts/bundle-cli.mjs when it is at least as new as every
// compiled package, and dist/bin.js otherwise. The choice is checked on a copy of bin/ferry.js
// in a tree of its own, whose two entry points say which one ran; the real bundle is checked
// on this checkout (every CLI test then runs through it, as `npm test` builds it first).

let tree: string;
const ran = () => spawnSync(process.execPath, [join(tree, 'bin/ferry.js')], { encoding: 'utf8' });
const at = (path: string, seconds: number) => utimes(join(tree, path), seconds, seconds);

beforeAll(async () => {
  tree = await mkdtemp(join(tmpdir(), 'ferry-bin-'));
  for (const dir of ['bin', 'services/cli/dist/bundle', 'packages/core', 'packages/meta', 'services/cli']) {
    await mkdir(join(tree, dir), { recursive: true });
  }
  await copyFile(join(REPO, 'bin/ferry.js'), join(tree, 'bin/ferry.js'));
  await writeFile(join(tree, 'services/cli/dist/bundle/ferry.mjs'), "process.stdout.write('bundle');\n");
  await writeFile(join(tree, 'services/cli/dist/bin.js'), "process.stdout.write('dist');\n");
  for (const project of ['packages/core', 'packages/meta', 'services/cli']) {
    await writeFile(join(tree, project, 'tsconfig.tsbuildinfo'), '{}');
    await at(`${project}/tsconfig.tsbuildinfo`, 1_000_000);
  }
});

afterAll(async () => {
  await rm(tree, { recursive: true, force: true });
});

describe('bin/ferry.js', () => {
  it('runs the bundle when it is newer than every compiled package', async () => {
    await at('services/cli/dist/bundle/ferry.mjs', 2_000_000);
    expect(ran().stdout).toBe('bundle');
  });

  it('runs dist/bin.js when one package was compiled after the bundle (a plain tsc -b after an edit)', async () => {
    await at('services/cli/dist/bundle/ferry.mjs', 2_000_000);
    await at('packages/meta/tsconfig.tsbuildinfo', 3_000_000);
    expect(ran().stdout).toBe('dist');
    await at('packages/meta/tsconfig.tsbuildinfo', 1_000_000);
  });

  it('runs dist/bin.js without a bundle, and says in one line when neither is built', async () => {
    await rm(join(tree, 'services/cli/dist/bundle'), { recursive: true });
    expect(ran().stdout).toBe('dist');
    await rm(join(tree, 'services/cli/dist/bin.js'));
    const run = ran();
    expect(run.status).toBe(1);
    expect(run.stderr).toBe(`ferry: not built yet: run \`npm run build\` in ${tree}/\n`);
  });

  it('on this checkout, after npm run build, is the bundle: the same version, and the libraries that find their own files left outside', async () => {
    const dir = join(REPO, 'services/cli/dist/bundle');
    const version = JSON.parse(await readFile(join(REPO, 'services/cli/package.json'), 'utf8')).version;
    const run = spawnSync(process.execPath, [join(dir, 'ferry.mjs'), '--version'], { encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.stdout.trim()).toBe(version);
    const chunks = await Promise.all((await readdir(dir)).map((name) => readFile(join(dir, name), 'utf8')));
    for (const external of ['bullmq', 'fastify', '@aws-sdk/client-s3', '@google-cloud/storage']) {
      expect(chunks.some((text) => text.includes(`from "${external}"`))).toBe(true);
    }
  });
});
