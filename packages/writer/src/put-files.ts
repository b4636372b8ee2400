import type { Entry, Logger, NewEntry } from '@ferry/core';
import { type StageFigures, type StageOptions, stageFiles } from './stage.js';

export interface PutOptions extends StageOptions {
  logger: Logger;
}

export interface PutSummary extends StageFigures {
  /** Files committed (new or different content); the rest were already there as they are. */
  filesChanged: number;
  version: string;
  entries: Entry[];
}

/**
 * Upload the chunks of the files that the store lacks, then commit all changed entries in one
 * atomic batch: a mirror never shows half of what one put wrote.
 */
export async function putFiles(options: PutOptions): Promise<PutSummary> {
  const { meta } = options;
  const { entries, ...summary } = await stageFiles(options);
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
    return { ...summary, filesChanged: 0, version, entries: unchanged };
  }
  const committed = await meta.commit(changed);
  options.logger.info({ files: changed.length, version: committed.version }, 'committed');
  return { ...summary, filesChanged: changed.length, version: committed.version, entries: [...committed.entries, ...unchanged] };
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
