import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { cruise, type IConfiguration, type ICruiseResult } from 'dependency-cruiser';
import { describe, expect, it } from 'vitest';

/*
 * The lint's arrow rules catch wrong arrows: a fixture with a package importing a service, cache
 * importing reader, a package serving with fastify, a service importing another, a client of its
 * own on undici, a Redis command outside meta, next to arrows that are allowed (stores → core, a
 * type-only pino import, the cli → services, Redis inside meta).
 */
const root = fileURLToPath(new URL('../..', import.meta.url));
const fixture = fileURLToPath(new URL('./fixture', import.meta.url));
const config = createRequire(import.meta.url)(`${root}.dependency-cruiser.cjs`) as IConfiguration;

async function violations(): Promise<string[]> {
  const { output } = await cruise(['packages', 'services'], {
    baseDir: fixture,
    ruleSet: { forbidden: config.forbidden ?? [] },
    validate: true,
    tsPreCompilationDeps: true,
    doNotFollow: { path: 'node_modules' },
  });
  const result = output as ICruiseResult;
  return result.summary.violations.map((v) => `${v.rule.name}: ${v.from} → ${v.to}`).sort();
}

describe('arrow rules', () => {
  it('report every wrong arrow of the fixture and nothing else', async () => {
    expect(await violations()).toEqual([
      'arrow-cache: packages/cache/src/index.ts → packages/reader/src/index.ts',
      'arrow-core: packages/core/src/index.ts → services/gateway/src/index.ts',
      expect.stringMatching(/^no-fastify-in-packages: packages\/meta\/src\/index\.ts → .*node_modules\/fastify\//),
      expect.stringMatching(/^one-http-client: packages\/cache\/src\/client\.ts → .*node_modules\/undici\//),
      'packages-not-services: packages/core/src/index.ts → services/gateway/src/index.ts',
      expect.stringMatching(/^redis-only-in-meta: services\/gateway\/src\/redis\.ts → .*node_modules\/ioredis\//),
      'services-not-services: services/gateway/src/index.ts → services/replicator/src/index.ts',
    ]);
  });

  it('finds the calls dependency-cruiser cannot see: a package that listens', async () => {
    const run = promisify(execFile)(process.execPath, [`${root}scripts/check-arrows.mjs`, fixture]);
    const failed = await run.then(
      () => undefined,
      (err: { code: number; stderr: string }) => err,
    );
    expect(failed?.code).toBe(1);
    expect(failed?.stderr).toContain('packages/meta/src/index.ts:8: opens a port (only services listen)');
    // A BullMQ Worker is a service's; a worker_threads Worker (the hash pool) is not.
    expect(failed?.stderr).toContain('packages/cache/src/queue.ts:4: starts a BullMQ Worker (only services run workers)');
    expect(failed?.stderr).not.toContain('packages/stores/src/threads.ts');
    // Redis is meta's to speak, and HTTP the one client's.
    expect(failed?.stderr).toContain('packages/reader/src/health.ts:6: calls Redis (ping) outside packages/meta');
    expect(failed?.stderr).toContain('packages/reader/src/health.ts:2: an HTTP client outside packages/http');
    expect(failed?.stderr).not.toContain('packages/meta/src/redis.ts');
  });

  it('pass on the repository itself', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [`${root}scripts/check-arrows.mjs`]);
    expect(stdout).toContain('no listen');
  });
});
