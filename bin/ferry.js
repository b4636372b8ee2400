#!/usr/bin/env node
// The `ferry` command of a checkout, linked onto the PATH by `npm link`. It lives outside dist/
// because a clean `tsc -b` writes dist/bin.js anew without the executable bit the link needs.
const cli = new URL('../services/cli/dist/bin.js', import.meta.url);
try {
  await import(cli.href);
} catch (err) {
  if (err?.code !== 'ERR_MODULE_NOT_FOUND' || !String(err.message).includes(cli.pathname)) throw err;
  process.stderr.write(`ferry: not built yet: run \`npm run build\` in ${new URL('..', import.meta.url).pathname}\n`);
  process.exitCode = 1;
}
