#!/usr/bin/env node
// Bundles the `ferry` command into services/cli/dist/bundle/, which bin/ferry.js loads when it is
// current. Why: most of a short command's start-up (`ferry ls /`) was Node resolving and reading
// some 400 module files; one bundle of the workspace and the few libraries every command loads
// starts in about two thirds of the time (test/bench/README.md, "`ferry ls /` start-up").
//
// What is bundled: the @ferry packages and the pure-JavaScript libraries on every command's path
// (BUNDLED and what they depend on). Everything else stays an external import resolved from
// node_modules as before: the cloud SDKs, BullMQ, fastify, pino and the mount's native binding
// find their own files through __dirname, workers and native addons, which a bundle would break,
// and they load only in the commands that use them.
//
// A module's `import.meta.url` is rewritten to the URL of its own built file, so files found
// next to it (the Lua scripts of @ferry/meta, the replicator's status page, package.json) are
// found as from dist/. The bundle is therefore not relocatable without the dist/ tree beside it.
import { readFileSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'rolldown';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const OUT = join(ROOT, 'services/cli/dist/bundle');
const STAGING = `${OUT}.new`;
const ENTRY = join(ROOT, 'services/cli/dist/bin.js');
const BUNDLED = ['zod', 'ioredis', 'commander', 'js-yaml'];

/** The packages BUNDLED names and every package they depend on, by name. */
function bundledPackages() {
  const require = createRequire(ENTRY);
  const names = new Set();
  const visit = (name, from) => {
    if (names.has(name)) return;
    names.add(name);
    const manifest = packageJsonOf(name, from);
    if (!manifest) return;
    const json = JSON.parse(readFileSync(manifest, 'utf8'));
    for (const dep of Object.keys(json.dependencies ?? {})) visit(dep, createRequire(manifest));
  };
  for (const name of BUNDLED) visit(name, require);
  return names;
}

function packageJsonOf(name, require) {
  try {
    return require.resolve(`${name}/package.json`);
  } catch {
    // A package whose exports hide package.json: walk up from its entry.
    try {
      let dir = dirname(require.resolve(name));
      while (dir !== dirname(dir)) {
        try {
          const path = join(dir, 'package.json');
          if (JSON.parse(readFileSync(path, 'utf8')).name === name) return path;
        } catch {}
        dir = dirname(dir);
      }
    } catch {}
    return undefined;
  }
}

const packageName = (id) => (id.startsWith('@') ? id.split('/').slice(0, 2).join('/') : id.split('/')[0]);

const bundled = bundledPackages();
const isExternal = (id) => {
  if (id.startsWith('node:')) return true;
  if (id.startsWith('.') || id.startsWith('/') || id.startsWith('\0')) return false;
  const name = packageName(id);
  return !(name.startsWith('@ferry/') || bundled.has(name));
};

// Also `__dirname` and `__filename` of the CommonJS libraries bundled (ioredis reads its
// package.json through it), which an ES module chunk does not have.
const ownUrl = {
  name: 'own-module-location',
  transform(code, id) {
    if (!/import\.meta\.url|\b__dirname\b|\b__filename\b/.test(code)) return null;
    const url = (path) => `new URL(${JSON.stringify(relative(OUT, path).split('\\').join('/') || '.')}, import.meta.url)`;
    const path = (target) => `decodeURIComponent(${url(target)}.pathname)`;
    return {
      code: code
        .replaceAll('import.meta.url', `${url(id)}.href`)
        .replace(/\b__dirname\b/g, path(dirname(id)))
        .replace(/\b__filename\b/g, path(id)),
      map: null,
    };
  },
};

rmSync(STAGING, { recursive: true, force: true });
await build({
  input: ENTRY,
  platform: 'node',
  external: isExternal,
  plugins: [ownUrl],
  logLevel: 'warn',
  output: { dir: STAGING, format: 'esm', entryFileNames: 'ferry.mjs', chunkFileNames: '[name]-[hash].mjs' },
});
rmSync(OUT, { recursive: true, force: true });
renameSync(STAGING, OUT);
