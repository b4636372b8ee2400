import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { buildProgram } from '@ferry/cli';
import { parseConfigText } from '@ferry/core';
import { redisAclUsers } from '@ferry/meta';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { FERRY_BIN, requireBuiltCli } from '../support/cli.js';
import {
  containersOf,
  ferryArgv,
  isFerryImage,
  isKustomizationTarget,
  KUBE_DIR,
  type KubeObject,
  kustomizationInputs,
  kustomizeBuild,
  type LoadedDoc,
  loadFile,
  podSpec,
  REPO,
  sampleEnv,
  validateObject,
  yamlFiles,
} from '../support/kube-manifests.js';

// The Kubernetes manifests under deploy/kubernetes are checked offline: every object against
// the Kubernetes (and prometheus-operator) schemas, every kustomization's inputs exist, the
// config the overlay mounts is a valid ferry.yaml, and every `ferry` command line a container
// runs parses with the real CLI. With kubectl on the PATH, the kustomize builds are checked too.

const OVERLAY = join(KUBE_DIR, 'overlays/example');
const BASE = join(KUBE_DIR, 'base');
/** What the cache node's init step writes (deploy/cache-node-init.mjs). */
const SIZING_FILES = { '/run/ferry/capacity': '7200000000000', '/run/ferry/weight': '2' };

const files = yamlFiles(KUBE_DIR);
const docs = files.flatMap(loadFile);
const isKustomization = (o: KubeObject) => o.kind === 'Kustomization';
/** Kustomize's own inputs that are not Kubernetes objects (transformer configurations). */
const isKustomizeConfig = (d: LoadedDoc) => d.where.endsWith('kustomizeconfig.yaml#0');
/** The ferry config the overlay mounts: YAML, but not a Kubernetes object. */
const isFerryConfig = (d: LoadedDoc) => d.where.endsWith('/ferry.yaml#0');
const objects = docs.filter((d) => !isKustomization(d.object) && !isKustomizeConfig(d) && !isFerryConfig(d));

/** Parse a ferry command line with the real CLI's parser, without running the command. */
async function parseFerry(argv: string[]): Promise<string> {
  const program = buildProgram();
  let ran = '';
  const stub = (cmd: Command, path: string[]) => {
    for (const sub of cmd.commands) {
      const name = [...path, sub.name()];
      sub.action(() => {
        ran = name.join(' ');
      });
      stub(sub, name);
    }
  };
  stub(program, []);
  await program.parseAsync(['node', 'ferry', ...argv]);
  return ran;
}

function configMapsOf(list: LoadedDoc[]): Map<string, Record<string, string>> {
  const maps = new Map<string, Record<string, string>>();
  for (const { object } of list) {
    if (object.kind === 'ConfigMap' && object.metadata?.name) maps.set(object.metadata.name, object.data as Record<string, string>);
  }
  return maps;
}

/** The ferry command lines of a set of documents, with the env Kubernetes would give them. */
function ferryLines(list: LoadedDoc[], configMaps: Map<string, Record<string, string>>) {
  return containersOf(list)
    .filter((c) => isFerryImage(c.container.image))
    .flatMap((found) => {
      const env = sampleEnv(found.container, configMaps);
      const argv = ferryArgv(found.container, env, SIZING_FILES);
      return argv ? [{ ...found, argv }] : [];
    });
}

describe('deploy/kubernetes files', () => {
  it('has a base and the example overlay', () => {
    expect(files.map((f) => relative(KUBE_DIR, f))).toEqual(
      expect.arrayContaining(['base/kustomization.yaml', 'overlays/example/kustomization.yaml']),
    );
  });

  it('every other YAML document is a Kubernetes object', () => {
    for (const { where, object } of objects) {
      expect(typeof object.apiVersion, where).toBe('string');
      expect(typeof object.kind, where).toBe('string');
    }
  });

  it.each(objects.map((d) => [d.where, d] as const))('%s is a valid Kubernetes object', async (_where, { object }) => {
    await validateObject(object);
  });

  it.each(docs.filter((d) => isKustomization(d.object)).map((d) => [d.where, d] as const))(
    '%s names only files and directories that exist',
    (where, { object }) => {
      const path = join(REPO, where.replace(/#\d+$/, ''));
      const missing = kustomizationInputs(path, object).filter((input) => !isKustomizationTarget(input));
      expect(missing.map((m) => relative(REPO, m))).toEqual([]);
    },
  );

  it('every Ferry container runs non-root, read-only, without capabilities, with requests and limits', () => {
    const problems: string[] = [];
    // `ferry mount` is the one exception: a FUSE mount shared through Bidirectional mount
    // propagation needs a privileged container (Kubernetes allows that propagation nowhere else).
    const isMount = (c: { args?: string[] }) => c.args?.[0] === 'mount';
    for (const { owner, container } of containersOf(objects)) {
      if (isMount(container as { args?: string[] })) {
        const c = container as unknown as {
          securityContext?: { privileged?: boolean; readOnlyRootFilesystem?: boolean };
          resources?: object;
        };
        if (!c.securityContext?.privileged || !c.securityContext.readOnlyRootFilesystem || !c.resources) {
          problems.push(`${owner}/${container.name}: a mount container is privileged, read-only and has resources`);
        }
        continue;
      }
      const c = container as unknown as {
        securityContext?: { readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean; capabilities?: { drop?: string[] } };
        resources?: { requests?: object; limits?: object };
      };
      const sc = c.securityContext;
      if (!sc?.readOnlyRootFilesystem) problems.push(`${owner}/${container.name}: root file system not read-only`);
      if (sc?.allowPrivilegeEscalation !== false) problems.push(`${owner}/${container.name}: privilege escalation allowed`);
      if (!sc?.capabilities?.drop?.includes('ALL')) problems.push(`${owner}/${container.name}: capabilities not dropped`);
      if (!c.resources?.requests || !c.resources?.limits) problems.push(`${owner}/${container.name}: no requests or limits`);
    }
    for (const { object } of objects) {
      const spec = podSpec(object);
      if (spec?.containers.some((c) => isMount(c as { args?: string[] }))) continue;
      if (spec && !spec.securityContext?.runAsNonRoot) problems.push(`${object.kind}/${object.metadata?.name}: runAsNonRoot not set`);
    }
    expect(problems).toEqual([]);
  });

  it("the overlay's ferry.yaml is a valid config: ferry-tokens fills what every process needs, ferry-write-tokens the rest", () => {
    const text = readFileSync(join(OVERLAY, 'ferry.yaml'), 'utf8');
    const secret = (name: string) =>
      (
        objects.find((d) => d.object.kind === 'Secret' && d.object.metadata?.name === name)?.object as
          | { stringData: Record<string, string> }
          | undefined
      )?.stringData;
    const readers = secret('ferry-tokens');
    const writers = secret('ferry-write-tokens');
    expect(readers).toBeDefined();
    expect(writers).toBeDefined();
    const uncommented = text.replace(/^\s*#.*$/gm, '');
    const references = [...uncommented.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)(:-)?/g)].map((m) => ({
      name: m[1] as string,
      optional: m[2] !== undefined,
    }));
    expect(references.length).toBeGreaterThan(0);
    const redisReader = secret('ferry-redis-reader');
    expect(redisReader).toBeDefined();
    for (const { name, optional } of references) {
      // What only some processes hold is optional in the config: the writers' Secret, or a Redis
      // user of a role (ferry-redis-*, which readers hold for every region).
      if (optional) expect([...Object.keys(writers ?? {}), ...Object.keys(redisReader ?? {})]).toContain(name);
      else expect(Object.keys(readers ?? {})).toContain(name);
    }
    const reader = parseConfigText(text, {
      source: 'ferry.yaml',
      env: { ...readers, ...redisReader },
      onWarning: (m) => expect.fail(m),
    });
    expect(Object.keys(reader.regions).sort()).toEqual(['eu', 'src', 'us']);
    expect(reader.source).toBe('src');
    // A reader holds read tokens only; a daemon with both Secrets holds every role.
    expect(reader.regions.eu?.cache).toMatchObject({ readToken: expect.any(String), writeToken: undefined });
    expect(reader.regions.eu?.api).toMatchObject({ readToken: expect.any(String), adminToken: undefined });
    const daemon = parseConfigText(text, { source: 'ferry.yaml', env: { ...readers, ...writers } });
    expect(daemon.regions.eu?.cache?.writeToken).toBe(writers?.FERRY_CACHE_WRITE_TOKEN);
    expect(daemon.regions.eu?.api?.adminToken).toBe(writers?.FERRY_API_ADMIN_TOKEN);
    // The example shows a Sentinel-managed Redis and a warm rule for the model the server loads.
    expect(reader.regions.us?.redis).toMatchObject({
      name: 'mymaster',
      db: 0,
      user: 'ferry-us-reader',
      password: 'change-me-ferry-us-reader',
    });
    expect(reader.regions.src?.redis).toMatchObject({ user: 'ferry-src-reader' });
    // A process given no user for a region holds no credentials for it (empty means unset).
    const noRedisUsers = parseConfigText(text, { source: 'ferry.yaml', env: readers ?? {} });
    expect(noRedisUsers.regions.src?.redis).toMatchObject({ user: undefined, password: undefined });
    expect(reader.regions.eu?.warm).toEqual([{ path: '/models/llama-3-8b', replicas: 2 }]);
  });

  it('every ferry command line in the files parses with the real CLI, and each region it names exists', async () => {
    const config = parseConfigText(readFileSync(join(OVERLAY, 'ferry.yaml'), 'utf8'), {
      env: new Proxy({}, { get: () => 'x'.repeat(12) }),
    });
    // The base leaves the region to the overlay's ConfigMap; any region of the config stands in.
    const lines = ferryLines(objects, new Map([['*', { region: 'eu' }]]));
    const commands = new Set<string>();
    for (const { owner, container, argv } of lines) {
      const ran = await parseFerry(argv).catch((err: Error) => {
        throw new Error(`${owner}/${container.name}: ferry ${argv.join(' ')}: ${err.message}`);
      });
      commands.add(ran);
      const region = argv[argv.findIndex((a) => a === '--region' || a === '-r') + 1];
      if (argv.includes('--region')) expect(Object.keys(config.regions), `${owner}/${container.name}`).toContain(region);
    }
    expect([...commands].sort()).toEqual(
      expect.arrayContaining(['cache-node', 'gateway', 'get', 'import', 'mount', 'replicator', 'warmup']),
    );
  });

  it('the parse-only check refuses what the CLI refuses', async () => {
    await expect(parseFerry(['replicator', '--region', 'eu'])).resolves.toBe('replicator');
    await expect(parseFerry(['replicator', '--region', 'eu', '--lisen', '0.0.0.0:7600'])).rejects.toThrow(/unknown option/);
    await expect(parseFerry(['cache-node', '--region', 'eu', '--dir', '/c', '--listen', '0.0.0.0:1'])).rejects.toThrow(/--capacity/);
    await expect(parseFerry(['warmup', '--wait'])).rejects.toThrow(/missing required argument/);
  });

  it('the built CLI knows every command the manifests run (--help exits 0)', () => {
    requireBuiltCli();
    const seen = new Set<string>();
    for (const { argv } of ferryLines(objects, new Map([['*', { region: 'eu' }]]))) {
      const command = argv[0] as string;
      if (seen.has(command)) continue;
      seen.add(command);
      const run = spawnSync(process.execPath, [FERRY_BIN, command, '--help'], { encoding: 'utf8', timeout: 30_000 });
      expect(run.status, `ferry ${command} --help: ${run.stderr}`).toBe(0);
      expect(run.stdout).toContain(`Usage: ferry ${command}`);
    }
  });

  it('the images ship the init step the cache node runs', () => {
    for (const { container } of containersOf(objects)) {
      const script = container.command?.find((c) => c.startsWith('/app/deploy/'));
      if (script) expect(existsSync(join(REPO, script.replace('/app/', '')))).toBe(true);
    }
  });
});

describe.skipIf(kustomizeBuild(BASE) === undefined)('kustomize builds (kubectl kustomize)', () => {
  it.each([
    ['base', BASE],
    ['overlays/example', OVERLAY],
  ])('%s builds, and every object it makes is valid', async (_name, dir) => {
    const built = kustomizeBuild(dir) ?? [];
    expect(built.length).toBeGreaterThan(5);
    for (const { object } of built) {
      await expect(validateObject(object), `${object.kind}/${object.metadata?.name}`).resolves.toBeUndefined();
    }
  });

  it("the overlay's objects refer only to ConfigMaps, Secrets and ServiceAccounts it makes", () => {
    const built = kustomizeBuild(OVERLAY) ?? [];
    const names = (kind: string) => new Set(built.filter((d) => d.object.kind === kind).map((d) => d.object.metadata?.name));
    const have = { ConfigMap: names('ConfigMap'), Secret: names('Secret'), ServiceAccount: names('ServiceAccount') };
    const text = JSON.stringify(built.map((d) => d.object));
    const missing: string[] = [];
    for (const m of text.matchAll(/"configMap(?:KeyRef|Ref)?":\{[^{}]*?"name":"([^"]+)"/g))
      if (!have.ConfigMap.has(m[1])) missing.push(`ConfigMap ${m[1]}`);
    for (const m of text.matchAll(/"secret(?:KeyRef|Ref)":\{[^{}]*?"name":"([^"]+)"/g))
      if (!have.Secret.has(m[1])) missing.push(`Secret ${m[1]}`);
    for (const m of text.matchAll(/"serviceAccountName":"([^"]+)"/g))
      if (!have.ServiceAccount.has(m[1])) missing.push(`ServiceAccount ${m[1]}`);
    expect(missing).toEqual([]);
  });

  it('every ferry command line of the built overlay parses, with the region its ConfigMap gives', async () => {
    const built = kustomizeBuild(OVERLAY) ?? [];
    const lines = ferryLines(built, configMapsOf(built));
    const regions = new Set<string>();
    for (const { owner, container, argv } of lines) {
      await parseFerry(argv).catch((err: Error) => {
        throw new Error(`${owner}/${container.name}: ferry ${argv.join(' ')}: ${err.message}`);
      });
      const at = argv.indexOf('--region');
      if (at >= 0) regions.add(argv[at + 1] as string);
    }
    expect([...regions].sort()).toEqual(['eu', 'src', 'us']);
  });

  it("every Redis user the overlay's Secrets name is one `ferry redis-acl` makes for that region", () => {
    const built = kustomizeBuild(OVERLAY);
    const all = built ?? objects;
    const config = parseConfigText(readFileSync(join(OVERLAY, 'ferry.yaml'), 'utf8'), {
      source: 'ferry.yaml',
      env: {
        FERRY_API_READ_TOKEN: 'x'.repeat(16),
        FERRY_CACHE_READ_TOKEN: 'x'.repeat(16),
        FERRY_GATEWAY_SECRET: 'x'.repeat(16),
        FERRY_HUB_READ_TOKEN: 'x'.repeat(16),
        HF_TOKEN: 'x'.repeat(16),
      },
    });
    const mirrors = Object.keys(config.regions).filter((r) => r !== config.source);
    const known = new Set(
      Object.keys(config.regions).flatMap((region) =>
        redisAclUsers({ volume: config.volume, region, source: region === config.source, mirrors }).map((u) => u.name),
      ),
    );
    const named: string[] = [];
    for (const { object } of all) {
      const data = object as {
        kind?: string;
        metadata?: { name?: string };
        stringData?: Record<string, string>;
        data?: Record<string, string>;
      };
      if (data.kind !== 'Secret' || !data.metadata?.name?.startsWith('ferry-redis-')) continue;
      const values =
        data.stringData ?? Object.fromEntries(Object.entries(data.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]));
      for (const [key, value] of Object.entries(values)) {
        const region = /^FERRY_REDIS_([A-Z0-9_]+)_USER$/.exec(key)?.[1]?.toLowerCase();
        if (region === undefined) continue;
        expect(value.startsWith(`ferry-${region}-`), `${data.metadata.name}: ${key}=${value}`).toBe(true);
        named.push(value);
      }
    }
    expect(named.length).toBeGreaterThan(3);
    expect(named.filter((n) => !known.has(n))).toEqual([]);
  });
});
