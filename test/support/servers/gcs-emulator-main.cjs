'use strict';
/**
 * The Cloud Storage emulator of firebase-tools, run from Node without its CLI (which needs Java
 * and downloads a rules JAR). Its GCS JSON API routes use the admin storage layer and never
 * evaluate rules, so the rules runtime is never started. Prints one JSON line,
 * {"endpoint":"http://127.0.0.1:<port>"}, on stdout once it listens; exits on SIGTERM/SIGINT or
 * (with --exit-with-stdin) when its parent closes stdin. Plain CommonJS so tests and benchmarks
 * can run it without a build. Objects live in a private temp directory, removed on exit.
 *
 * These require internal modules of firebase-tools: the version is pinned in test/package.json.
 *
 * Usage: node gcs-emulator-main.cjs [--port N] [--project ID] [--exit-with-stdin]
 */
const { mkdtempSync, rmSync } = require('node:fs');
const { createServer } = require('node:http');
const { tmpdir } = require('node:os');
const { join } = require('node:path');

// Never let the emulator think it runs under the CLI: that turns on usage reporting.
delete process.env.IS_FIREBASE_CLI;

const arg = (name, fallback) => {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 && process.argv[at + 1] !== undefined ? process.argv[at + 1] : fallback;
};
// A `demo-` project is Firebase's offline convention: the emulator then never asks the Firebase
// API for the project's config (it would on a bucket listing).
const projectId = arg('project', 'demo-ferry');
if (!projectId.startsWith('demo-')) throw new Error(`--project must start with "demo-" (offline), got ${projectId}`);
const wantedPort = Number(arg('port', '0'));

const blobs = mkdtempSync(join(tmpdir(), 'ferry-gcs-emulator-'));

const metadata = require('firebase-tools/lib/emulator/storage/metadata');
const { StorageEmulator } = require('firebase-tools/lib/emulator/storage');
const { createApp } = require('firebase-tools/lib/emulator/storage/server');
const { EmulatorRegistry } = require('firebase-tools/lib/emulator/registry');

/**
 * The emulator takes an object's generation from Date.now(), so two writes of one key in the same
 * millisecond get the same generation (and etag). Real GCS generations are unique per write:
 * hand out strictly increasing microsecond-style values instead.
 */
let lastGeneration = 0;
const BaseMetadata = metadata.StoredFileMetadata;
class UniqueGenerationMetadata extends BaseMetadata {
  constructor(opts, ...rest) {
    let generation = opts.generation;
    if (!generation) {
      lastGeneration = Math.max(Date.now() * 1000, lastGeneration + 1);
      generation = lastGeneration;
    }
    super({ ...opts, generation }, ...rest);
  }
}
metadata.StoredFileMetadata = UniqueGenerationMetadata;

/** Keeps uploads in a private directory: the default is shared by every emulator on the machine and wiped by stop(). */
class PrivateStorageEmulator extends StorageEmulator {
  getPersistenceTmpDir() {
    return blobs;
  }
}

async function main() {
  // Listen first so the emulator can be registered with the real port (port 0 means "default" to it).
  let app;
  const server = createServer((req, res) => {
    // @google-cloud/storage calls /storage/v1/b/...; the emulator registers PATCH, rewrite, ACL
    // and bucket listing only without that prefix (GET/DELETE/list accept both).
    if (req.url.startsWith('/storage/v1/')) req.url = req.url.slice('/storage/v1'.length);
    app(req, res);
  });
  server.keepAliveTimeout = 30_000;
  server.requestTimeout = 0;
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(wantedPort, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  const emulator = new PrivateStorageEmulator({ projectId, host: '127.0.0.1', port, auto_download: false });
  // The upload and metadata code asks the registry for the emulator's address.
  EmulatorRegistry.set(emulator.getName(), emulator);
  app = await createApp(projectId, emulator);

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    server.closeAllConnections();
    server.close(() => {
      rmSync(blobs, { recursive: true, force: true });
      process.exit(0);
    });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  if (process.argv.includes('--exit-with-stdin')) {
    // The parent holds our stdin open: if it dies without stopping us, we go too.
    process.stdin.on('end', stop);
    process.stdin.on('error', stop);
    process.stdin.resume();
  }

  process.stdout.write(`${JSON.stringify({ endpoint: `http://127.0.0.1:${port}`, projectId })}\n`);
}

main().catch((err) => {
  rmSync(blobs, { recursive: true, force: true });
  console.error(err);
  process.exit(1);
});
