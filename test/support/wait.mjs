// One way for tests, benchmarks and the chaos run to wait for something: poll until `check` is
// true. Plain ESM (wait.d.mts types it) so the .mjs runners and the TypeScript tests share it.

/**
 * Poll `check` every `everyMs` until it returns true; resolves with the ms it took. After
 * `timeoutMs` it fails naming `what` (and the last error, when `check` threw while errors were
 * tolerated: a server that is restarting is not an answer yet).
 */
export async function waitFor(check, timeoutMs, what, every = {}) {
  const options = typeof every === 'number' ? { everyMs: every } : every;
  const everyMs = options.everyMs ?? 25;
  const started = Date.now();
  let last;
  for (;;) {
    try {
      if (await check()) return Date.now() - started;
    } catch (err) {
      if (!options.tolerateErrors) throw err;
      last = err;
    }
    if (Date.now() - started > timeoutMs) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${last.message})` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
