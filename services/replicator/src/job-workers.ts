import { type Job, UnrecoverableError } from 'bullmq';

/** Whether BullMQ is done with a failed job: out of attempts, or failed as unrecoverable. */
export function isFinalFailure(job: Job | undefined, err: Error): boolean {
  return err instanceof UnrecoverableError || (job !== undefined && job.attemptsMade >= (job.opts.attempts ?? 1));
}

/**
 * How the copy workers hold their jobs. A replica that dies (kill -9, OOM, a lost node) leaves
 * its jobs active under a lock nobody renews; BullMQ's stalled check puts them back in line once
 * the lock has expired. A shorter lock than BullMQ's 30 s gets them copied sooner (the lock is
 * renewed every half of it on a timer, so a slow copy keeps it), and since copying a chunk again
 * is harmless, a job that stalls several times is retried rather than failed for good (BullMQ's
 * default fails it the second time, which would leave the chunk missing until retry-failed).
 */
export const COPY_WORKER_LOCKS = { lockDuration: 10_000, stalledInterval: 5_000, maxStalledCount: 100 } as const;
