import type { ImportCounts } from './checkpoint.js';
import type { SkipReason } from './keys.js';

/** Skipped keys an import names in its report; the rest are only counted. */
const MAX_EXAMPLES = 10;

/** Add one set of counts into another (pages into the run, the run into a progress report). */
export function addCounts(into: ImportCounts, from: ImportCounts): void {
  for (const k of ['listed', 'new', 'changed', 'unchanged', 'deleted', 'skipped', 'bytesListed', 'bytesReferenced', 'commits'] as const) {
    into[k] += from[k];
  }
  for (const [reason, n] of Object.entries(from.skippedBy)) {
    into.skippedBy[reason as SkipReason] = (into.skippedBy[reason as SkipReason] ?? 0) + (n ?? 0);
  }
  for (const example of from.skippedExamples) if (into.skippedExamples.length < MAX_EXAMPLES) into.skippedExamples.push(example);
}

/** Count a key that was not imported, and name it while there is room. */
export function skip(counts: ImportCounts, key: string, reason: SkipReason): void {
  counts.skipped += 1;
  counts.skippedBy[reason] = (counts.skippedBy[reason] ?? 0) + 1;
  if (counts.skippedExamples.length < MAX_EXAMPLES) counts.skippedExamples.push({ key, reason });
}
