import { ChunkClaimedError, type Entry, type Logger, type NewEntry } from '@ferry/core';
import { ChunkHolds } from './holds.js';
import { type StageFigures, type StageOptions, stageFiles } from './stage.js';

export interface PutOptions extends StageOptions {
  logger: Logger;
  /** How long each chunk hold lasts unrenewed (config `writer.holdTtl`). */
  holdTtlMs: number;
}

export interface PutSummary extends StageFigures {
  /** Files committed (new or different content); the rest were already there as they are. */
  filesChanged: number;
  /** Id of the last change record the commit wrote. */
  version: string;
  /** Change records the commit wrote: 1 unless it was larger than one step (FOLDER_BATCH). */
  records: number;
  entries: Entry[];
}

/** Times a put stages and commits again after garbage collection took chunks it relied on. */
const CLAIM_RETRIES = 5;
/** How long a put waits for garbage collection to finish deleting the chunks it needs again. */
const CLAIM_WAIT_MS = 120_000;

/**
 * Upload the chunks of the files that the store lacks, then commit all changed entries: in one
 * atomic record up to one step (FOLDER_BATCH), so a mirror never shows half of a model's put;
 * a larger put in one record per step (Meta.commit), and running it again after an interruption
 * commits only what is not in yet. Every chunk is held against
 * garbage collection from before it is looked at until the commit (ChunkHolds), so a put may
 * take longer than the grace. When garbage collection claimed
 * or deleted a chunk this put found and skipped (the commit says so), the put waits until those
 * deletes are done and stages again, which uploads them.
 */
export async function putFiles(options: PutOptions): Promise<PutSummary> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await stageAndCommit(options);
    } catch (err) {
      if (!(err instanceof ChunkClaimedError) || attempt >= CLAIM_RETRIES) throw err;
      options.logger.info({ chunks: err.chunks.length, attempt }, 'garbage collection took chunks this put skipped; uploading them again');
      await options.meta.refs.waitUntilUnclaimed(err.chunks, CLAIM_WAIT_MS);
    }
  }
}

async function stageAndCommit(options: PutOptions): Promise<PutSummary> {
  const holds = new ChunkHolds({ refs: options.meta.refs, logger: options.logger, ttlMs: options.holdTtlMs });
  try {
    return await stageAndCommitHolding(options, holds);
  } finally {
    await holds.stop();
  }
}

async function stageAndCommitHolding(options: PutOptions, holds: ChunkHolds): Promise<PutSummary> {
  const { meta } = options;
  // Taken before any chunk is looked at: should the holds lapse, the commit refuses chunks GC
  // deleted after this.
  const since = await meta.serverTime();
  const { entries, ...summary } = await stageFiles({ ...options, holds });
  // Files whose content is already there as-is are left alone: no new version, no change record,
  // nothing for mirrors to replay.
  const current = await Promise.all(entries.map((e) => meta.tryStat(e.path)));
  const changed = entries.filter((e, i) => !sameContent(e, current[i]));
  const unchanged = current.filter((e): e is Entry => e !== undefined && !changed.some((c) => c.path === e.path));
  if (changed.length === 0) {
    const version =
      unchanged
        .map((e) => e.version)
        .sort()
        .at(-1) ?? '0-0';
    return { ...summary, filesChanged: 0, version, records: 0, entries: unchanged };
  }
  const held = holds.held;
  const committed = await meta.commit(changed, { since, ...(held === undefined ? {} : { held }) });
  options.logger.info({ files: changed.length, version: committed.version, records: committed.batches }, 'committed');
  return {
    ...summary,
    filesChanged: changed.length,
    version: committed.version,
    records: committed.batches,
    entries: [...committed.entries, ...unchanged],
  };
}

function sameContent(next: NewEntry, current: Entry | undefined): boolean {
  return (
    current !== undefined &&
    current.sha256 === next.sha256 &&
    current.size === next.size &&
    current.chunkSize === next.chunkSize &&
    current.origin === undefined
  );
}
