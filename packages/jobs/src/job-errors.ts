import { isFerryError, messageOf } from '@ferry/core';
import { UnrecoverableError } from 'bullmq';

/**
 * Failures that another attempt cannot fix: the bytes at the source do not match their id, an
 * imported origin object changed since import, or the job itself is malformed. Anything else
 * (an unreachable store, a network cut, a bug) is worth the backoff and the next attempt.
 */
const PERMANENT = new Set(['CORRUPT', 'PRECONDITION_FAILED', 'INVALID_ARGUMENT']);

/** Whether a worker should stop retrying after this error. */
export function isPermanentFailure(err: unknown): boolean {
  return isFerryError(err) && !err.retryable && PERMANENT.has(err.code);
}

/**
 * What a BullMQ processor throws for `err`: BullMQ's UnrecoverableError (the job fails now, with
 * the same message, and stays visible as failed) for a permanent failure; `err` itself otherwise.
 */
export function toJobError(err: unknown): unknown {
  if (!isPermanentFailure(err)) return err;
  const unrecoverable = new UnrecoverableError(messageOf(err));
  (unrecoverable as Error & { cause?: unknown }).cause = err;
  return unrecoverable;
}
