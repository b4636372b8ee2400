#!/usr/bin/env node
// Init step of a cache node pod: decides --capacity from the size of the cache volume and
// --weight from the node's `ferry.dev/cache-weight` label, and writes them to files the cache
// node's command line reads. The downward API cannot expose a node's labels or a volume's size,
// hence this step (it needs `get` on its own node: see the ClusterRole beside the DaemonSet).
//
// Env: CACHE_DIR (the mounted cache volume), OUT_DIR (an emptyDir shared with the cache node),
// NODE_NAME (downward API spec.nodeName), CACHE_FILL (share of the volume to use, default 0.9:
// room for the files being written and the file system's own needs), WEIGHT_LABEL (default
// ferry.dev/cache-weight). Without API access, or without the label, the weight is 1.
import { readFileSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const env = process.env;
const cacheDir = env.CACHE_DIR ?? '/cache';
const outDir = env.OUT_DIR ?? '/run/ferry';
const fill = Number(env.CACHE_FILL ?? '0.9');
const label = env.WEIGHT_LABEL ?? 'ferry.dev/cache-weight';
const sa = '/var/run/secrets/kubernetes.io/serviceaccount';

if (!(fill > 0 && fill <= 1)) throw new Error(`CACHE_FILL must be in (0, 1], got "${env.CACHE_FILL}"`);
const fs = statfsSync(cacheDir);
const capacity = Math.floor(fs.blocks * fs.bsize * fill);

async function nodeWeight() {
  if (!env.NODE_NAME || !env.KUBERNETES_SERVICE_HOST) return { weight: 1, why: 'not in a cluster' };
  // Node's fetch has no per-request CA option; NODE_EXTRA_CA_CERTS (set on the container) adds the cluster CA.
  const host = env.KUBERNETES_SERVICE_HOST.includes(':') ? `[${env.KUBERNETES_SERVICE_HOST}]` : env.KUBERNETES_SERVICE_HOST;
  const url = `https://${host}:${env.KUBERNETES_SERVICE_PORT ?? '443'}/api/v1/nodes/${encodeURIComponent(env.NODE_NAME)}`;
  const token = readFileSync(join(sa, 'token'), 'utf8').trim();
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(10_000) });
  if (!res.ok) return { weight: 1, why: `node ${env.NODE_NAME}: API answered ${res.status}` };
  const value = (await res.json()).metadata?.labels?.[label];
  if (value === undefined) return { weight: 1, why: `node ${env.NODE_NAME} has no ${label} label` };
  const weight = Number(value);
  if (!(Number.isFinite(weight) && weight > 0))
    throw new Error(`node ${env.NODE_NAME}: label ${label}="${value}" is not a positive number`);
  return { weight, why: `label ${label}` };
}

const { weight, why } = await nodeWeight();
writeFileSync(join(outDir, 'capacity'), `${capacity}\n`);
writeFileSync(join(outDir, 'weight'), `${weight}\n`);
process.stdout.write(`${JSON.stringify({ msg: 'cache node sizing', cacheDir, capacity, fill, weight, weightFrom: why })}\n`);
