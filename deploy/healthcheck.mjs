#!/usr/bin/env node
// The container image's HEALTHCHECK. One image runs every role, so the check reads the role and
// its options from PID 1's command line (tini -- ferry <role> …) and the listen address from the
// flags or the config, then asks that daemon's health route. One-shot commands (import, warmup,
// status, …) have nothing to ask and pass. FERRY_HEALTHCHECK_URL overrides all of this.
import { readFileSync } from 'node:fs';

const DAEMONS = new Set(['replicator', 'cache-node', 'gateway', 'hub']);

/** The command line of PID 1 from `ferry` (or its script) on: ['replicator', '--region', 'eu', …]. */
function ferryArgs() {
  const argv = readFileSync('/proc/1/cmdline', 'utf8').split('\0').filter(Boolean);
  const at = argv.findIndex((a) => /(^|\/)ferry(\.js)?$|\/cli\/dist\/bin\.js$/.test(a));
  return at < 0 ? [] : argv.slice(at + 1);
}

function flag(args, long, short) {
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === long || (short && a === short)) return args[i + 1];
    if (a.startsWith(`${long}=`)) return a.slice(long.length + 1);
  }
  return undefined;
}

/** host:port as a URL a local client reaches (a wildcard address is reached on loopback). */
function local(hostPort, path) {
  const match = /^\[?([^\]]+)\]?:(\d+)$/.exec(hostPort);
  if (!match) throw new Error(`cannot read a listen address from "${hostPort}"`);
  const host = match[1] === '0.0.0.0' || match[1] === '::' ? '127.0.0.1' : match[1];
  return `http://${host.includes(':') ? `[${host}]` : host}:${match[2]}${path}`;
}

async function loadOwnConfig(args) {
  const { loadConfig } = await import('@ferry/core');
  const path = flag(args, '--config', '-c') ?? process.env.FERRY_CONFIG ?? 'ferry.yaml';
  return loadConfig(path);
}

async function healthUrl() {
  if (process.env.FERRY_HEALTHCHECK_URL) return process.env.FERRY_HEALTHCHECK_URL;
  const args = ferryArgs();
  const role = args.find((a) => !a.startsWith('-'));
  if (!DAEMONS.has(role)) return undefined;
  const listen = flag(args, '--listen');
  if (role === 'cache-node') return local(listen, '/healthz');
  if (role === 'gateway') return local(listen ?? (await loadOwnConfig(args)).gateway?.listen ?? '127.0.0.1:9000', '/-/healthz');
  if (role === 'hub') return local(listen ?? (await loadOwnConfig(args)).hub?.listen ?? '127.0.0.1:8090', '/-/healthz');
  if (listen) return local(listen, '/healthz');
  const region = flag(args, '--region', '-r');
  const api = (await loadOwnConfig(args)).regions[region]?.api;
  return api ? local(api.listen, '/healthz') : undefined;
}

try {
  const url = await healthUrl();
  if (url) {
    const res = await fetch(url, { signal: AbortSignal.timeout(4000) });
    if (!res.ok) throw new Error(`${url} answered ${res.status}`);
  }
} catch (err) {
  process.stderr.write(`unhealthy: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
