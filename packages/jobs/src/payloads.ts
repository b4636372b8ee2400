import { type ChunkId, InvalidArgumentError, isChunkId } from '@ferry/core';
import { z } from 'zod';

/** Copy one chunk from the source into this region's store. The job id is the chunk id. */
export interface CopyJob {
  chunk: ChunkId;
  size: number;
  /** Where an external chunk really lives (imported objects); absent for native chunks. */
  origin?: { store: string; key: string; etag: string; offset: number };
}

const copySchema = z
  .object({
    chunk: z.string().refine(isChunkId, 'not a chunk id'),
    size: z
      .number()
      .int()
      .min(0)
      .max(2 ** 31),
    origin: z
      .object({ store: z.string().min(1), key: z.string().min(1), etag: z.string().min(1), offset: z.number().int().min(0) })
      .strict()
      .optional(),
  })
  .strict();

/**
 * Job data comes back from Redis, where anything could have written it: validate before a
 * worker uses it as a key or a file name.
 */
export function parseCopyJob(data: unknown): CopyJob {
  const result = copySchema.safeParse(data);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new InvalidArgumentError(`invalid copy job: ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`);
  }
  return result.data as CopyJob;
}
