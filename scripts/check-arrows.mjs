#!/usr/bin/env node
// DESIGN.md: only services open ports, create the root logger or start BullMQ Workers. These are
// calls, not imports, so dependency-cruiser cannot see them; this looks for them in the sources of
// packages/* (tests excluded). process.env is biome's noProcessEnv; imports are .dependency-cruiser.cjs.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const CHECKS = [
  { pattern: /\.listen\(/, why: 'opens a port (only services listen)' },
  { pattern: /\bcreateServer\(/, why: 'creates a server (only services listen)' },
  { pattern: /\bpino\(/, why: 'creates a root logger (libraries take a child logger)' },
  // Only BullMQ's Worker: worker_threads (the hash pool) are fine in packages.
  { pattern: /\bnew Worker\(/, why: 'starts a BullMQ Worker (only services run workers)', when: (text) => /from\s*'bullmq'/.test(text) },
  { pattern: /import\s*\{[^}]*\bWorker\b[^}]*\}\s*from\s*'bullmq'/, why: 'imports the BullMQ Worker (only services run workers)' },
];

/**
 * Redis only inside packages/meta: a Redis command called on a client (`redis.get(`,
 * `this.#redis.hset(`, `region.redis.ping(`) anywhere else. Connection handling (disconnect, quit,
 * duplicate, events) is fine: the region owns its connections.
 */
const REDIS_CALL =
  /\b(?:redis|#redis|sourceRedis|connection)\s*\.\s*(?!disconnect\b|quit\b|duplicate\b|on\b|once\b|off\b|status\b|options\b)([a-z][a-zA-Z]*)\s*\(/;

/**
 * One HTTP client: outside packages/http, no request made with node:http(s) or the global fetch (undici
 * imports are dependency-cruiser's). The GCS
 * backend's byte transfers (stores/src/gcs-http.ts) speak GCS's upload protocol with the SDK's
 * credentials on agents of their own, and are that backend's edge, not a client of Ferry's services.
 */
const HTTP_CLIENT = [/import\s*\{[^}]*\b(?:request|get|Agent)\b[^}]*\}\s*from\s*'node:https?'/, /\bglobalThis\.fetch\(/];
const HTTP_CLIENT_EXEMPT = [/^packages\/http\//, /^packages\/stores\/src\/gcs-http\.ts$/];

/** Comments may mention these calls; strings and code may not. Keeps line numbers. */
function withoutComments(text) {
  return text.replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, ' ')).replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
}

function* sources(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* sources(path);
    else if (/\.[cm]?[jt]s$/.test(entry.name) && !/\.test\.[cm]?[jt]s$/.test(entry.name) && !entry.name.endsWith('.d.ts')) yield path;
  }
}

/** Redis commands outside packages/meta and HTTP clients outside packages/http, in packages and services, as "file:line: what". */
function findLayerViolations(root) {
  const found = [];
  for (const group of ['packages', 'services']) {
    let names;
    try {
      names = readdirSync(join(root, group));
    } catch {
      continue;
    }
    for (const name of names) {
      let files;
      try {
        files = [...sources(join(root, group, name, 'src'))];
      } catch {
        continue;
      }
      for (const file of files) {
        const rel = relative(root, file);
        const lines = withoutComments(readFileSync(file, 'utf8')).split('\n');
        lines.forEach((line, i) => {
          const redis = group === 'packages' && name === 'meta' ? null : REDIS_CALL.exec(line);
          if (redis) found.push(`${rel}:${i + 1}: calls Redis (${redis[1]}) outside packages/meta`);
          if (!HTTP_CLIENT_EXEMPT.some((p) => p.test(rel)) && HTTP_CLIENT.some((p) => p.test(line))) {
            found.push(`${rel}:${i + 1}: an HTTP client outside packages/http`);
          }
        });
      }
    }
  }
  return found;
}

/** Violations in `root`/packages/<name>/src, as "file:line: what". */
export function findCallViolations(root) {
  const found = findLayerViolations(root);
  const packages = join(root, 'packages');
  for (const name of readdirSync(packages)) {
    // The service runtime is the library of what services share to serve (listen, the HTTP app);
    // only services import it (.dependency-cruiser.cjs), so its calls are the services' calls.
    if (name === 'runtime') continue;
    let files;
    try {
      files = [...sources(join(packages, name, 'src'))];
    } catch {
      continue;
    }
    for (const file of files) {
      const lines = withoutComments(readFileSync(file, 'utf8')).split('\n');
      const text = lines.join('\n');
      const checks = CHECKS.filter((check) => !check.when || check.when(text));
      lines.forEach((line, i) => {
        for (const check of checks) {
          if (check.pattern.test(line)) found.push(`${relative(root, file)}:${i + 1}: ${check.why}`);
        }
      });
      // An import spread over several lines.
      const multi = /import\s*\{[^}]*\bWorker\b[^}]*\}\s*from\s*'bullmq'/.exec(text);
      if (multi?.[0].includes('\n')) {
        found.push(
          `${relative(root, file)}:${text.slice(0, multi.index).split('\n').length}: imports the BullMQ Worker (only services run workers)`,
        );
      }
    }
  }
  return found;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  // The repository by default; another root (a test fixture) as the first argument.
  const root = process.argv[2] ?? fileURLToPath(new URL('..', import.meta.url));
  const found = findCallViolations(root);
  for (const line of found) console.error(`error ${line}`);
  if (found.length > 0) {
    console.error(`\n${found.length} call${found.length > 1 ? 's' : ''} against DESIGN.md's arrows`);
    process.exit(1);
  }
  console.log('no listen, createServer, pino() or BullMQ Worker in packages/*/src; Redis only in meta; one HTTP client');
}
