import { type ChunkId, isChunkId } from '@ferry/core';
import { idTime, type Meta, type MirrorMeta, type RedisClient } from '@ferry/meta';
import type { Region } from '@ferry/region';

/** Lag counts stop here: beyond it the exact number matters less than the cost of counting. */
const LAG_COUNT_CAP = 100_000;

export interface RegionStatus {
  region: string;
  role: 'source' | 'mirror';
  cursor?: string;
  lag?: { records: number; capped: boolean; seconds: number };
  chunks?: { referenced: number; present: number; missing: number };
  queue?: Record<string, number> & { missingBytes: number };
  failures?: Array<{ chunk: string; error: string; attempts: number }>;
  resync?: Record<string, string>;
}

/** How far behind a mirror's cursor is: records after it (capped) and the age of the oldest. */
export async function lagOf(source: Meta, redis: RedisClient, cursor: string | undefined) {
  const from = cursor ? `(${cursor}` : '-';
  const ids = (await redis.xrange(source.keys.log, from, '+', 'COUNT', LAG_COUNT_CAP)).map(([id]) => id);
  const first = ids[0];
  return {
    records: ids.length,
    capped: ids.length === LAG_COUNT_CAP,
    seconds: first ? Math.max(0, (Date.now() - idTime(first)) / 1000) : 0,
  };
}

/** A region's replication state, read from Redis (no daemon needed). */
export async function regionStatus(region: Region): Promise<RegionStatus> {
  const { mirror } = region;
  const copies = await region.copyQueue();
  if (!mirror) return { region: region.name, role: 'source' };
  const cursor = await mirror.cursor();
  const [lag, chunks] = await Promise.all([lagOf(region.sourceMeta, region.sourceRedis, cursor), chunkCounts(mirror)]);
  const status: RegionStatus = {
    region: region.name,
    role: 'mirror',
    lag,
    chunks,
    resync: await region.redis.hgetall(mirror.keys.resyncInfo),
  };
  if (cursor) status.cursor = cursor;
  if (copies) {
    const counts = await copies.queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'failed', 'completed');
    const pending = await copies.queue.getJobs(['waiting', 'prioritized', 'active', 'delayed', 'failed'], 0, 9_999);
    const missingBytes = pending.reduce((sum, job) => sum + (Number(job?.data?.size) || 0), 0);
    status.queue = { ...counts, missingBytes };
    const failed = await copies.queue.getFailed(0, 19);
    status.failures = failed.map((job) => ({ chunk: String(job.id), error: job.failedReason ?? '', attempts: job.attemptsMade }));
  }
  return status;
}

async function chunkCounts(mirror: MirrorMeta) {
  let referenced = 0;
  let missing = 0;
  for await (const ids of mirror.referencedChunks()) {
    const valid = ids.filter(isChunkId) as ChunkId[];
    referenced += valid.length;
    missing += (await mirror.missing(valid)).length;
  }
  return { referenced, present: referenced - missing, missing };
}

/** Percent of a file's (or folder's) chunks this region's store holds. */
export async function presence(
  mirror: MirrorMeta | undefined,
  chunkIds: ChunkId[],
): Promise<{ chunks: number; present: number; percent: number }> {
  const unique = [...new Set(chunkIds)];
  if (!mirror || unique.length === 0) return { chunks: unique.length, present: unique.length, percent: 100 };
  const missing = (await mirror.missing(unique)).length;
  const present = unique.length - missing;
  return { chunks: unique.length, present, percent: Math.floor((present / unique.length) * 1000) / 10 };
}
