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

/** Violations in `root`/packages/<name>/src, as "file:line: what". */
export function findCallViolations(root) {
  const found = [];
  const packages = join(root, 'packages');
  for (const name of readdirSync(packages)) {
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
    console.error(`\n${found.length} call${found.length > 1 ? 's' : ''} against DESIGN.md's arrows in packages/*/src`);
    process.exit(1);
  }
  console.log('no listen, createServer, pino() or BullMQ Worker in packages/*/src');
}
