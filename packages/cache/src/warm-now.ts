import { type Entry, type Logger, silentLogger, UnavailableError } from '@ferry/core';
import type { CacheMember, Membership } from '@ferry/meta';
import type { CacheNodeClient } from './client.js';
import { type OverCapacity, planWarmup } from './plan.js';
import { type Residency, residency, type WarmChunk, type WarmProgress, type WarmResult, warmChunks } from './warm.js';

/** Passes `wait` makes at most; each one only re-warms what the nodes say they lack. */
const MAX_ROUNDS = 5;

/** How long `wait` lets the nodes settle between passes. */
const ROUND_PAUSE_MS = 500;

export interface WarmNowOptions {
  /** The files to warm. */
  entries: Entry[];
  membership: Membership;
  client: CacheNodeClient;
  replicas: number;
  /** Warm again what some owner still lacks, until every chunk is on all its owners or no pass gets further. */
  wait?: boolean;
  /** Chunks in flight (each to all its owners). */
  concurrency: number;
  /** Called once before the first pass, with what the plan cannot fit. */
  onPlan?: (plan: { members: readonly CacheMember[]; overCapacity: OverCapacity[] }) => void;
  /** Called at the start of each pass with the bytes it covers; the returned callback gets its progress. */
  onPass?: (pass: number, bytes: number) => { progress(p: WarmProgress): void; end(): void };
  logger?: Logger;
}

export interface WarmNowReport extends WarmResult {
  files: number;
  nodes: string[];
  replicas: number;
  passes: number;
  residency: Residency;
  overCapacity: OverCapacity[];
  complete: boolean;
}

/**
 * A warmup done now, without a replicator: every chunk of the files is put on its owners among the
 * live cache nodes by asking each owner to read it through from the region's stores (no chunk
 * bytes pass through this process), then the nodes are asked what they hold (verified residency).
 * With `wait`, what some owner still lacks is warmed again, up to 5 passes, stopping early when a
 * pass gets no further or the nodes are too small for the files.
 */
export async function warmNow(options: WarmNowOptions): Promise<WarmNowReport> {
  const log = options.logger ?? silentLogger;
  let members: CacheMember[] = await options.membership.members();
  if (members.length === 0) throw new UnavailableError('no live cache nodes');
  const { replicas, client } = options;
  const plan = planWarmup({ entries: options.entries, members, replicas });
  options.onPlan?.({ members, overCapacity: plan.overCapacity });
  const { chunks } = plan;
  const total: WarmResult = {
    chunks: chunks.length,
    bytes: plan.bytes,
    placements: 0,
    fetched: 0,
    held: 0,
    missing: 0,
    failed: 0,
    errors: [],
  };
  let res: Residency;
  let passes = 0;
  let todo: WarmChunk[] = chunks;
  for (;;) {
    passes += 1;
    const watcher = options.onPass?.(
      passes,
      todo.reduce((sum, c) => sum + c.size, 0),
    );
    let pass: WarmResult;
    try {
      pass = await warmChunks({
        chunks: todo,
        members,
        replicas,
        client,
        concurrency: options.concurrency,
        ...(watcher ? { onProgress: (p: WarmProgress) => watcher.progress(p) } : {}),
        logger: log,
      });
    } finally {
      watcher?.end();
    }
    if (passes === 1) Object.assign(total, { ...pass, errors: [...pass.errors] });
    else addUp(total, pass);
    res = await residency({ members, replicas, chunkIds: chunks.map((c) => c.id), client, listIncomplete: true });
    if (!options.wait || res.percent === 100 || passes >= MAX_ROUNDS || plan.overCapacity.length > 0) break;
    const incomplete = new Set(res.incomplete ?? []);
    if (passes > 1 && todo.every((c) => incomplete.has(c.id))) break; // the last pass got nothing further
    todo = chunks.filter((c) => incomplete.has(c.id));
    await new Promise((resolve) => setTimeout(resolve, ROUND_PAUSE_MS));
    const fresh = await options.membership.members();
    if (fresh.length > 0) members = fresh;
  }
  const { incomplete: _omit, ...residencyReport } = res;
  return {
    ...total,
    files: plan.files,
    nodes: members.map((m) => m.id),
    replicas,
    passes,
    residency: residencyReport,
    overCapacity: plan.overCapacity,
    complete: res.percent === 100,
  };
}

function addUp(total: WarmResult, pass: WarmResult): void {
  total.fetched += pass.fetched;
  total.missing += pass.missing;
  total.failed += pass.failed;
  total.errors.push(...pass.errors.slice(0, Math.max(0, 20 - total.errors.length)));
}
