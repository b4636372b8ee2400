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
  cache: ['core', 'meta', 'fetch'],
  region: ['core', 'stores', 'meta', 'jobs', 'fetch', 'cache', 'reader'],
  writer: ['core', 'stores', 'meta'],
  importer: ['core', 'stores', 'meta'],
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
      name: 'arrow-runtime',
      comment: 'services/runtime is shared by the services: it imports only @ferry/core among ours',
      severity: 'error',
      from: { path: '^services/runtime/' },
      to: { path: '^(packages|services)/', pathNot: '^(packages/core|services/runtime)/' },
    },
    {
      name: 'arrow-mount',
      comment: 'services/mount reads a region: it imports core, stores, meta, reader, region and services/runtime among ours',
      severity: 'error',
      from: { path: '^services/mount/' },
      to: { path: '^(packages|services)/', pathNot: '^(packages/(core|stores|meta|reader|region)|services/(mount|runtime))/' },
    },
    {
      name: 'services-not-services',
      comment: 'a service imports packages and services/runtime, never another service (only the cli does)',
      severity: 'error',
      from: { path: '^services/([^/]+)/', pathNot: '^services/(cli|runtime)/' },
      to: { path: '^services/', pathNot: '^services/($1|runtime)/' },
    },
    {
      name: 'no-fastify-in-packages',
      comment: 'only services serve HTTP: packages do not import fastify',
      severity: 'error',
      from: { path: '^packages/' },
      to: { path: '(^|/)node_modules/(fastify|@fastify)/' },
    },
    {
      name: 'no-pino-in-packages',
      comment: 'services own the root logger: packages take a Logger and may import pino only as a type',
      severity: 'error',
      from: { path: '^packages/' },
      to: { path: '(^|/)node_modules/pino/', dependencyTypesNot: ['type-only'] },
    },
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
