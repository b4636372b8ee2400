#!/usr/bin/env node
// The `ferry` command of a checkout, linked onto the PATH by `npm link`. It lives outside dist/
// because a clean `tsc -b` writes dist/bin.js anew without the executable bit the link needs.
//
// It runs the bundle `npm run build` makes (scripts/bundle-cli.mjs: a third less start-up) when
// that bundle is at least as new as every compiled package, and dist/bin.js otherwise, so a
// `tsc -b` after an edit is never shadowed by an older bundle.
import { readdirSync, statSync } from 'node:fs';

const root = new URL('..', import.meta.url);
const bundle = new URL('services/cli/dist/bundle/ferry.mjs', root);
const cli = new URL('services/cli/dist/bin.js', root);

function bundleIsCurrent() {
  let built;
  try {
    built = statSync(bundle).mtimeMs;
  } catch {
    return false;
  }
  for (const group of ['packages', 'services']) {
    let names = [];
    try {
      names = readdirSync(new URL(`${group}/`, root));
    } catch {}
    for (const name of names) {
      try {
        if (statSync(new URL(`${group}/${name}/tsconfig.tsbuildinfo`, root)).mtimeMs > built) return false;
      } catch {}
    }
  }
  return true;
}

const entry = bundleIsCurrent() ? bundle : cli;
try {
  await import(entry.href);
} catch (err) {
  if (err?.code !== 'ERR_MODULE_NOT_FOUND' || !String(err.message).includes(entry.pathname)) throw err;
  process.stderr.write(`ferry: not built yet: run \`npm run build\` in ${new URL('..', import.meta.url).pathname}\n`);
  process.exitCode = 1;
}
