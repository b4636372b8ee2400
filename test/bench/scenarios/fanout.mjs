// Scenario: a cold start of one model on N GPU hosts at once, simulated (`--scenario fanout`).
// Every host runs a cache node and a reader (`ferry get` of the whole model). Chunks are placed on
// the nodes by the real weighted rendezvous placement; each reader takes the real decisions: the
// order and window of `ferry get` (`wholeFileRead` of @ferry/reader), the cache tier's window over
// the nodes (`RegionReader.window` over `cacheTier`) and its choice of owner (`NodeLoad` of
// @ferry/cache). The network, the nodes and the store are the event engine of lib/fanout-sim.mjs.
// No processes and no bytes: this measures the schedule, not the speed of the code.
import { createHash } from 'node:crypto';
import { cacheTier, NodeLoad } from '@ferry/cache';
import { parseConfig, parseSize, seededRandom } from '@ferry/core';
import { RegionReader, wholeFileRead } from '@ferry/reader';
import { placeChunks } from '../lib/fanout-placement.mjs';
import { simulate } from '../lib/fanout-sim.mjs';

const GB = 1e9;

/** The config's defaults of a region's cache (replicas, a node's limits), from the real schema. */
function cacheDefaults() {
  const config = parseConfig({ volume: 'sim', source: 'sim', regions: { sim: { store: 'file:///sim', redis: 'redis://sim', cache: {} } } });
  const cache = config.regions.sim?.cache;
  if (!cache) throw new Error('fanout: no cache section in the parsed config');
  return { replicas: cache.replicas, maxStreams: cache.limits.maxStreams, maxBytes: cache.limits.maxBytesInFlight };
}

const DEFAULTS = {
  hosts: '10,30,100,300,1000',
  modelSize: '140GB',
  chunkSize: '8MiB',
  nicGbit: 100,
  storeGbit: 200,
  storeLatencyMs: 20,
  spreadS: 1,
  ...cacheDefaults(),
  perNode: 2,
  seed: 1,
  variants: 'native',
};
/** `ferry get`'s default --concurrency: the window is at least this (services/cli/src/main.ts). */
const GET_CONCURRENCY = 8;

/** Content-like chunk ids (uniform, as sha256 of the bytes would be), the same for a seed. */
function chunkIds(count, seed) {
  return Array.from({ length: count }, (_, i) => `sha256-${createHash('sha256').update(`fanout ${seed} ${i}`).digest('hex')}`);
}

/** `reader.window` of a RegionReader over the cache tier of these members (nodes × perNode, or the prefetch). */
function readerWindow(members, replicas, perNode) {
  const tier = cacheTier({
    members: () => members,
    memberCount: () => members.length,
    client: /** only `get` would use it */ undefined,
    replicas,
    perNode,
  });
  return new RegionReader({ meta: undefined, region: 'sim', store: undefined, cache: tier }).window;
}

/**
 * Host h's `ferry get` of the model: the plan of services/cli/src/transfer/get-files.ts
 * (`wholeFileRead`: order, window, whether slots are released in order) for a file of native
 * chunks (`kind` 'native', as `ferry put` writes them) or of external chunks with a recorded sha256
 * ('external', an imported file), and the cache tier's choice of owner (`NodeLoad`).
 */
function getReader(ctx, kind, next) {
  const entry = {
    sha256: 'recorded',
    chunks: ctx.owners.map((_, i) => ({ id: kind === 'native' ? `sha256-${i}` : `ext-${i}`, size: 0 })),
  };
  const plan = wholeFileRead(entry, { prefetch: GET_CONCURRENCY, random: next });
  const load = new NodeLoad(ctx.slots);
  return {
    order: (ctx.owners.length < 65536 ? Uint16Array : Int32Array).from(plan.order),
    window: plan.window(ctx.readerWindow),
    unordered: !plan.hashed,
    route: (c) => load.order(ctx.owners[c]),
    start: (owner) => load.start(ctx.members[owner].id),
    end: (owner) => load.end(ctx.members[owner].id),
  };
}

/** Who reads: `readers(ctx)` builds every host's reader. */
export const VARIANTS = {
  native: {
    label: 'ferry get, native chunks',
    readers: (ctx) => {
      const next = seededRandom(ctx.seed * 31 + ctx.members.length);
      return ctx.members.map(() => getReader(ctx, 'native', next));
    },
  },
  external: {
    label: 'ferry get, external chunks hashed in file order',
    readers: (ctx) => {
      const next = seededRandom(ctx.seed * 31 + ctx.members.length);
      return ctx.members.map(() => getReader(ctx, 'external', next));
    },
  },
};

/** One fan-out of `hosts` hosts with the given variant of the readers. */
export async function runFanout(p, hosts, variant) {
  const members = Array.from({ length: hosts }, (_, i) => ({ id: `gpu-${String(i).padStart(4, '0')}`, weight: 1, index: i }));
  const t0 = performance.now();
  const { owners, table, cached } = await placeChunks(members, chunkIds(p.sizes.length, p.seed), p.replicas);
  const placeMs = performance.now() - t0;
  const next = seededRandom(p.seed * 7919 + hosts);
  const starts = Float64Array.from({ length: hosts }, () => next() * p.spreadS);
  const t1 = performance.now();
  const result = simulate({
    hosts,
    sizes: p.sizes,
    nicBytesPerSecond: (p.nicGbit * GB) / 8,
    storeBytesPerSecond: (p.storeGbit * GB) / 8,
    storeLatency: p.storeLatencyMs / 1000,
    starts,
    owners: table,
    replicas: p.replicas,
    maxStreams: p.maxStreams,
    maxBytes: p.maxBytes,
    // One numbering of the node ids for all readers (`NodeLoad`'s slots): the same decisions, and one
    // small map in the processor's cache instead of a thousand.
    readers: VARIANTS[variant].readers({
      members,
      owners,
      readerWindow: readerWindow(members, p.replicas, p.perNode),
      seed: p.seed,
      slots: new Map(),
    }),
  });
  return { ...result, starts, placeMs, cached, simMs: performance.now() - t1 };
}

/** Flags of `npm run bench -- --scenario fanout` (test/bench/run.mjs passes them on). */
export const FANOUT_FLAGS = {
  hosts: { type: 'string' },
  'model-size': { type: 'string' },
  'chunk-size': { type: 'string' },
  'nic-gbit': { type: 'string' },
  'store-gbit': { type: 'string' },
  'store-latency-ms': { type: 'string' },
  'start-spread-s': { type: 'string' },
  replicas: { type: 'string' },
  'per-node': { type: 'string' },
  'max-streams': { type: 'string' },
  'max-bytes': { type: 'string' },
  seed: { type: 'string' },
  variants: { type: 'string' },
};

const FLAG_KEYS = {
  hosts: 'hosts',
  'model-size': 'modelSize',
  'chunk-size': 'chunkSize',
  'nic-gbit': 'nicGbit',
  'store-gbit': 'storeGbit',
  'store-latency-ms': 'storeLatencyMs',
  'start-spread-s': 'spreadS',
  replicas: 'replicas',
  'per-node': 'perNode',
  'max-streams': 'maxStreams',
  'max-bytes': 'maxBytes',
  seed: 'seed',
  variants: 'variants',
};

/** The parameters from the flags (`size` scales the model). */
export function fanoutParams(flags = {}, size = 1) {
  const p = { ...DEFAULTS };
  for (const [flag, key] of Object.entries(FLAG_KEYS)) if (flags[flag] !== undefined) p[key] = flags[flag];
  const modelBytes = Math.round(parseSize(p.modelSize) * size);
  const chunkBytes = parseSize(p.chunkSize);
  p.maxBytes = parseSize(p.maxBytes);
  for (const key of ['nicGbit', 'storeGbit', 'storeLatencyMs', 'spreadS', 'replicas', 'perNode', 'seed', 'maxStreams']) {
    p[key] = Number(p[key]);
    if (!(p[key] >= 0)) throw new Error(`fanout: ${key} must be a number ≥ 0, got ${p[key]}`);
  }
  if (!(p.nicGbit > 0 && p.storeGbit > 0 && p.replicas >= 1)) throw new Error('fanout: bandwidths must be > 0 and replicas ≥ 1');
  const hostCounts = String(p.hosts)
    .split(',')
    .map((h) => Number(h));
  if (hostCounts.some((h) => !Number.isInteger(h) || h < 1)) throw new Error(`fanout: --hosts must be whole numbers ≥ 1, got ${p.hosts}`);
  const variants = String(p.variants).split(',');
  const unknown = variants.filter((v) => !(v in VARIANTS));
  if (unknown.length) throw new Error(`fanout: unknown variant ${unknown.join(', ')}; known: ${Object.keys(VARIANTS).join(', ')}`);
  if (!(modelBytes > 0 && chunkBytes > 0)) throw new Error('fanout: model and chunk sizes must be > 0');
  const count = Math.ceil(modelBytes / chunkBytes);
  const sizes = Array.from({ length: count }, (_, i) => (i < count - 1 ? chunkBytes : modelBytes - chunkBytes * (count - 1)));
  return { ...p, hostCounts, variantIds: variants, modelBytes, chunkBytes, sizes };
}

/**
 * The reference of the issue: every host pulls the model through its NIC once the store has filled
 * the swarm (each chunk onto its R owners): M / NIC + R × M / store.
 */
export function boundSeconds(p) {
  return (p.modelBytes * 8) / (p.nicGbit * GB) + (p.modelBytes * 8 * p.replicas) / (p.storeGbit * GB);
}

/**
 * A lower bound no schedule beats: the last host to start still pulls the whole model through its
 * NIC (every byte a host gets crosses its NIC once, from a peer or into its own node), and the
 * store sends every chunk at least once, the last one no sooner than its latency plus M / store,
 * after which it still crosses a NIC.
 */
export function lowerBoundSeconds(p, starts) {
  const nic = (p.nicGbit * GB) / 8;
  const store = (p.storeGbit * GB) / 8;
  return Math.max(Math.max(...starts) + p.modelBytes / nic, p.storeLatencyMs / 1000 + p.modelBytes / store + p.chunkBytes / nic);
}

const s1 = (x) => Math.round(x * 100) / 100;

export const fanout = {
  id: 'fanout',
  title: 'Fan-out at scale (simulation): N hosts start `ferry get` of one cold model at once',
  async run({ size, flags }) {
    const p = fanoutParams(flags, size);
    const bound = boundSeconds(p);
    const rows = [];
    const notes = [
      `Model ${(p.modelBytes / GB).toFixed(0)} GB in ${p.sizes.length} chunks of ${(p.chunkBytes / 2 ** 20).toFixed(0)} MiB; NIC ${p.nicGbit} Gbit/s each way per host; store ${p.storeGbit} Gbit/s in all, ${p.storeLatencyMs} ms to a first byte; replicas ${p.replicas}; a node answers busy past ${p.maxStreams} requests or ${(p.maxBytes / 2 ** 20).toFixed(0)} MiB of distinct chunks; readers start uniformly within ${p.spreadS} s (seed ${p.seed}).`,
      `bound = M/NIC + R·M/store = ${s1(bound)} s (the issue's reference: fill the swarm, then pull). lower bound = max(last start + M/NIC, store latency + M/store + chunk/NIC), per N below.`,
    ];
    for (const variant of p.variantIds) {
      const label = VARIANTS[variant].label;
      for (const hosts of p.hostCounts) {
        const r = await runFanout(p, hosts, variant);
        const time = Math.max(...r.finish);
        const lower = lowerBoundSeconds(p, r.starts);
        const meanUp = r.upBytes.reduce((a, b) => a + b, 0) / hosts;
        const maxUp = Math.max(...r.upBytes);
        const egress = (r.fillBytes + r.directBytes) / p.modelBytes;
        const name = `${label}, ${hosts} hosts`;
        rows.push(
          {
            metric: `${name}: every host has the model`,
            unit: 's',
            ferry: time,
            peer: 'bound M/NIC + R·M/store',
            peerValue: bound,
            ratio: bound / time,
          },
          { metric: `${name}: time ÷ bound`, unit: '×', ferry: time / bound, peer: 'goal', peerValue: 1.3, ratio: 1.3 / (time / bound) },
          {
            metric: `${name}: time ÷ lower bound`,
            unit: '×',
            ferry: time / lower,
            peer: `lower bound ${s1(lower)} s`,
            peerValue: 1,
            ratio: lower / time,
          },
          {
            metric: `${name}: busiest host's upload ÷ mean`,
            unit: '×',
            ferry: maxUp / meanUp,
            peer: 'goal',
            peerValue: 1.5,
            ratio: 1.5 / (maxUp / meanUp),
          },
          {
            metric: `${name}: store egress ÷ model`,
            unit: '×',
            ferry: egress,
            peer: 'R (the bound assumes)',
            peerValue: p.replicas,
            ratio: p.replicas / egress,
          },
        );
        notes.push(
          `${name}: window ${r.window} chunks a reader; median host done at ${s1(median(r.finish))} s; store egress ${s1(r.fillBytes / p.modelBytes)}× the model by node fills + ${s1(r.directBytes / p.modelBytes)}× read around the cache (${r.refused} requests answered busy); busiest node held ${r.peakStreams.reduce((a, b) => Math.max(a, b), 0)} requests and ${s1(r.peakBytes.reduce((a, b) => Math.max(a, b), 0) / 2 ** 20)} MiB at once; ${r.events} events in ${s1(r.simMs / 1000)} s (placement ${s1(r.placeMs / 1000)} s${r.cached ? ', kept from an earlier run' : ''}).`,
        );
      }
    }
    return { rows, notes };
  },
};

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1];
}
