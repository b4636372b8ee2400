/**
 * DESIGN.md's arrows as rules (`npm run lint` runs them over packages/ and services/).
 * Paths are relative to the repository root; `@ferry/*` resolves to the sources through
 * tsconfig.arrows.json, so no build is needed. A type-only import is an arrow too: it ties the
 * build order and the meaning of one package to another.
 *
 * What dependency-cruiser cannot see (`.listen(`, `createServer(`, `pino(`, `new Worker(` in
 * packages) is checked by scripts/check-arrows.mjs; process.env by biome's noProcessEnv.
 */

/** Which of our packages each package may import (DESIGN.md, "Packages and services"). */
const PACKAGE_ARROWS = {
  core: [],
  stores: ['core'],
  meta: ['core', 'stores'],
  jobs: ['core', 'stores', 'meta'],
  fetch: ['core', 'stores'],
  reader: ['core', 'stores', 'meta', 'jobs', 'fetch'],
  cache: ['core', 'meta', 'fetch', 'http'],
  region: ['core', 'stores', 'meta', 'jobs', 'fetch', 'cache', 'reader', 'http'],
  http: ['core'],
  writer: ['core', 'stores', 'meta'],
  importer: ['core', 'stores', 'meta'],
  // The service runtime: what the services share to serve (HTTP app, listen, auth hooks, stop).
  runtime: ['core'],
};

const packageRules = Object.entries(PACKAGE_ARROWS).map(([name, allowed]) => ({
  name: `arrow-${name}`,
  comment: allowed.length
    ? `packages/${name} may import only ${allowed.join(', ')} among our packages`
    : `packages/${name} imports nothing of ours`,
  severity: 'error',
  from: { path: `^packages/${name}/` },
  to: { path: '^(packages|services)/', pathNot: `^packages/(${[name, ...allowed].join('|')})/` },
}));

/** A rule: code under `from` (but not `except`) may not import the npm package(s) `library`. */
function onlyIn(name, library, from, except, { comment, typeOnlyAllowed = false }) {
  return {
    name,
    comment,
    severity: 'error',
    from: { path: from, ...(except ? { pathNot: except } : {}) },
    to: { path: `(^|/)node_modules/(${library})/`, ...(typeOnlyAllowed ? { dependencyTypesNot: ['type-only'] } : {}) },
  };
}

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'packages-not-services',
      comment: 'packages never import services (a library must not depend on a process)',
      severity: 'error',
      from: { path: '^packages/' },
      to: { path: '^services/' },
    },
    ...packageRules,
    {
      name: 'arrow-mount',
      comment: 'services/mount reads a region: it imports core, stores, meta, reader, region and runtime among ours',
      severity: 'error',
      from: { path: '^services/mount/' },
      to: { path: '^(packages|services)/', pathNot: '^(packages/(core|stores|meta|reader|region|runtime)|services/mount)/' },
    },
    {
      name: 'services-not-services',
      comment: 'a service imports packages, never another service (only the cli does)',
      severity: 'error',
      from: { path: '^services/([^/]+)/', pathNot: '^services/cli/' },
      to: { path: '^services/', pathNot: '^services/$1/' },
    },
    // Libraries that only one place may import (a type-only import is no use of the library).
    onlyIn('no-fastify-in-packages', 'fastify|@fastify', '^packages/', '^packages/runtime/', {
      comment: 'only services serve HTTP (through packages/runtime, the one package made for them): packages do not import fastify',
    }),
    onlyIn('no-pino-in-packages', 'pino', '^packages/', undefined, {
      comment: 'services own the root logger: packages take a Logger and may import pino only as a type',
      typeOnlyAllowed: true,
    }),
    onlyIn('redis-only-in-meta', 'ioredis', '^(packages|services)/', '^packages/meta/', {
      comment:
        'Redis only inside packages/meta: every other package and service uses its parts (calls are checked by scripts/check-arrows.mjs)',
      typeOnlyAllowed: true,
    }),
    onlyIn('one-http-client', 'undici', '^(packages|services)/', '^packages/http/', {
      comment: "one HTTP client (packages/http) talks to Ferry's services: nobody else imports undici",
    }),
    {
      name: 'no-circular',
      comment: 'no circular imports (type-only cycles included: they make the build order ambiguous)',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.arrows.json' },
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)(dist|node_modules)/' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default', 'types'] },
  },
};
