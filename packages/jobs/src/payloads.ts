import { type ChunkId, InvalidArgumentError, isChunkId } from '@ferry/core';
import { z } from 'zod';

/** Copy one chunk from the source into this region's store. The job id is the chunk id. */
export interface CopyJob {
  chunk: ChunkId;
  size: number;
  /** Where an external chunk really lives (imported objects); absent for native chunks. */
  origin?: { store: string; key: string; etag: string; offset: number };
}

/** Every job names one chunk and its size. */
const chunkFields = {
  chunk: z.string().refine(isChunkId, 'not a chunk id'),
  size: z
    .number()
    .int()
    .min(0)
    .max(2 ** 31),
};

const copySchema = z
  .object({
    ...chunkFields,
    origin: z
      .object({ store: z.string().min(1), key: z.string().min(1), etag: z.string().min(1), offset: z.number().int().min(0) })
      .strict()
      .optional(),
  })
  .strict();

/**
 * Copy several small chunks in one job: per job, BullMQ costs a few scripts and round trips,
 * more than copying a chunk of a few KiB, so a folder of small files mirrors at the rate of its
 * jobs unless they are grouped. The job id is derived from the chunk ids (CopyQueue).
 */
export interface CopyBatchJob {
  chunks: CopyJob[];
}

/** Chunks up to this size are copied in batch jobs; larger ones keep a job each (their own retries, priority, lock). */
export const BATCH_CHUNK_MAX = 256 * 1024;
/** Most chunks, and bytes, one batch job copies. */
export const COPY_BATCH = { chunks: 64, bytes: 4 * 1024 * 1024 } as const;

const copyBatchSchema = z.object({ chunks: z.array(copySchema).min(1).max(COPY_BATCH.chunks) }).strict();

/** Put one chunk on one cache node (a child of a warmup). */
export interface FillJob {
  chunk: ChunkId;
  size: number;
  /** The owner node's id. */
  node: string;
}

/** The parent of a warmup's fill jobs: what was asked for, and when. */
export interface WarmupJob {
  paths: string[];
  requestedAt: number;
  /** Owners per chunk, when not the region's `cache.replicas` (a warm rule's own). */
  replicas?: number;
  /** The warm rule (its path) that queued this warmup; absent for a request. */
  rule?: string;
  /** Its fills were added in several steps, behind a gate child (WarmQueue). */
  split?: boolean;
}

/** Cache node ids (the same rule as `NODE_ID_PATTERN` of @ferry/cache): host names with dots and ports included. */
export const WARM_NODE_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/**
 * A node id as a token a BullMQ job id can carry (`${chunk}.${token}.${request}`): BullMQ forbids
 * ':' in custom ids and '.' separates the parts, so the id goes in as base64url, which has neither
 * and maps every node id to a token of its own.
 */
export function warmJobNodeToken(node: string): string {
  return Buffer.from(node, 'utf8').toString('base64url');
}

const fillSchema = z.object({ ...chunkFields, node: z.string().regex(WARM_NODE_ID, 'not a cache node id') }).strict();

/**
 * Job data comes back from Redis, where anything could have written it: validate before a
 * worker uses it as a key or a file name.
 */
function parseJob<T>(schema: z.ZodType, what: string, data: unknown): T {
  const result = schema.safeParse(data);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new InvalidArgumentError(`invalid ${what} job: ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`);
  }
  return result.data as T;
}

export function parseCopyJob(data: unknown): CopyJob {
  return parseJob<CopyJob>(copySchema, 'copy', data);
}

export function parseCopyBatchJob(data: unknown): CopyBatchJob {
  return parseJob<CopyBatchJob>(copyBatchSchema, 'copy batch', data);
}

export function parseFillJob(data: unknown): FillJob {
  return parseJob<FillJob>(fillSchema, 'fill', data);
}
