// The owners of every chunk on N nodes, by the real placement (`rendezvousOwners` of the built
// @ferry/cache). It costs one sha256 per node per chunk (17 million for 1,000 nodes and a 140 GB
// model), so it runs on worker threads and is kept in a file keyed by everything it depends on:
// the built placement code, the members, the chunk ids and the replica count.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { rendezvousOwners } from '@ferry/cache';

const PLACEMENT_JS = fileURLToPath(new URL('placement.js', import.meta.resolve('@ferry/cache')));
const CACHE_DIR = join(tmpdir(), 'ferry-bench-fanout');

/** Owner indices of chunks `from..to` (exclusive), `replicas` per chunk, -1 where there are fewer. */
function place(members, ids, replicas, from, to) {
  const out = new Int32Array((to - from) * replicas).fill(-1);
  for (let c = from; c < to; c++) {
    const owners = rendezvousOwners(members, ids[c], replicas);
    for (let r = 0; r < owners.length; r++) out[(c - from) * replicas + r] = owners[r].index;
  }
  return out;
}

if (!isMainThread && workerData?.fanoutPlacement) {
  const { members, ids, replicas, from, to } = workerData;
  const out = place(members, ids, replicas, from, to);
  parentPort.postMessage(out, [out.buffer]);
}

async function placeParallel(members, ids, replicas) {
  const threads = Math.max(1, Math.min(availableParallelism(), Math.ceil((members.length * ids.length) / 1e6)));
  if (threads === 1) return place(members, ids, replicas, 0, ids.length);
  const step = Math.ceil(ids.length / threads);
  const parts = await Promise.all(
    Array.from({ length: threads }, (_, i) => {
      const from = i * step;
      const to = Math.min(ids.length, from + step);
      return new Promise((resolve, reject) => {
        const worker = new Worker(new URL(import.meta.url), { workerData: { fanoutPlacement: true, members, ids, replicas, from, to } });
        worker.once('message', resolve);
        worker.once('error', reject);
        worker.once('exit', (code) => code !== 0 && reject(new Error(`placement worker exited ${code}`)));
      });
    }),
  );
  const all = new Int32Array(ids.length * replicas);
  let at = 0;
  for (const part of parts) {
    all.set(part, at);
    at += part.length;
  }
  return all;
}

/**
 * For each chunk, its owners (member objects, best first) among `members` ({id, weight, index}).
 * Returns the owners, the same as a table of member indices (`replicas` a chunk, -1 where there
 * are fewer) and whether they came from the file kept by an earlier run.
 */
export async function placeChunks(members, ids, replicas) {
  const key = createHash('sha256')
    .update(readFileSync(PLACEMENT_JS))
    .update(JSON.stringify(members.map((m) => [m.id, m.weight])))
    .update(ids.join('\n'))
    .update(String(replicas))
    .digest('hex');
  const file = join(CACHE_DIR, `placement-${key.slice(0, 32)}.bin`);
  let table;
  let cached = false;
  if (existsSync(file)) {
    const bytes = readFileSync(file);
    table = new Int32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    cached = table.length === ids.length * replicas;
  }
  if (!cached) {
    table = await placeParallel(members, ids, replicas);
    mkdirSync(CACHE_DIR, { recursive: true });
    writeFileSync(`${file}.tmp`, new Uint8Array(table.buffer, table.byteOffset, table.byteLength));
    renameSync(`${file}.tmp`, file);
  }
  // A kept table is checked against the placement itself on a sample of chunks.
  for (let c = 0; c < ids.length; c += Math.max(1, Math.floor(ids.length / 32))) {
    const want = rendezvousOwners(members, ids[c], replicas).map((m) => m.index);
    const got = Array.from(table.subarray(c * replicas, c * replicas + want.length));
    if (want.join() !== got.join()) throw new Error(`fanout placement table disagrees with rendezvousOwners at chunk ${c}`);
  }
  const owners = new Array(ids.length);
  for (let c = 0; c < ids.length; c++) {
    const list = [];
    for (let r = 0; r < replicas; r++) {
      const i = table[c * replicas + r];
      if (i >= 0) list.push(members[i]);
    }
    owners[c] = list;
  }
  return { owners, table, cached };
}
