import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const root = fileURLToPath(new URL('.', import.meta.url));

// Tests import the workspace packages from their TypeScript sources, so a test run never sees a
// stale build. (Processes that tests spawn, like the `ferry` CLI, run the built output.)
const alias = [
  // Entry points beside a package's index (package.json `exports`).
  { find: /^@ferry\/stores\/s3$/, replacement: `${root}packages/stores/src/s3-store.ts` },
  { find: /^@ferry\/stores\/gcs$/, replacement: `${root}packages/stores/src/gcs-store.ts` },
  { find: /^@ferry\/region\/handle$/, replacement: `${root}packages/region/src/region.ts` },
  ...['packages', 'services'].flatMap((group) =>
    readdirSync(`${root}${group}`).map((name) => ({
      find: new RegExp(`^@ferry/${name}$`),
      replacement: `${root}${group}/${name}/src/index.ts`,
    })),
  ),
];

// Integration files that time Redis itself or a failover: run alone, after the rest.
const QUIET = [
  'test/integration/gc-scale.test.ts',
  'test/integration/meta-listing.test.ts',
  'test/integration/meta-wide-commit.test.ts',
  'test/integration/replicator-bounds.test.ts',
  'test/integration/redis-sentinel*.test.ts',
  'test/integration/redis-cluster-durability.test.ts',
];

export default defineConfig({
  resolve: { alias },
  test: {
    reporters: ['default', './test/support/summary-reporter.ts'],
    projects: [
      {
        resolve: { alias },
        test: {
          name: 'unit',
          include: ['packages/*/src/**/*.test.ts', 'services/*/src/**/*.test.ts', 'test/arrows/**/*.test.ts'],
          // Units first (seconds), then the integration suite with its servers.
          sequence: { groupOrder: 0 },
          testTimeout: 20_000,
        },
      },
      {
        resolve: { alias },
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          exclude: QUIET,
          sequence: { groupOrder: 1 },
          globalSetup: ['test/support/global-setup.ts'],
          testTimeout: 180_000,
          hookTimeout: 120_000,
          pool: 'forks',
          // Two cores: the servers under test need one of them.
          maxWorkers: 2,
        },
      },
      {
        resolve: { alias },
        test: {
          name: 'quiet',
          include: QUIET,
          // Last and one file at a time: these measure Redis command times (SLOWLOG) or ride
          // out a Sentinel failover, which a machine busy with other suites stretches past
          // their bounds.
          sequence: { groupOrder: 2 },
          globalSetup: ['test/support/global-setup.ts'],
          testTimeout: 180_000,
          hookTimeout: 120_000,
          pool: 'forks',
          maxWorkers: 1,
        },
      },
    ],
  },
});
