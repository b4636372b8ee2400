import { CorruptError, PreconditionFailedError, TransientError, UnavailableError } from '@ferry/core';
import { UnrecoverableError } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { isPermanentFailure, toJobError } from './job-errors.js';

describe('job errors', () => {
  it('turns a corrupt source chunk or a changed origin into an unrecoverable job failure with the same message', () => {
    for (const err of [new CorruptError('chunk x: sha256 mismatch'), new PreconditionFailedError('s3://b/k changed')]) {
      const thrown = toJobError(err);
      expect(thrown).toBeInstanceOf(UnrecoverableError);
      expect((thrown as Error).message).toBe(err.message);
      expect((thrown as Error).cause).toBe(err);
    }
  });

  it('leaves what another attempt may fix as it is', () => {
    for (const err of [new UnavailableError('store down'), new TransientError('cut'), new Error('bug'), 'odd']) {
      expect(isPermanentFailure(err)).toBe(false);
      expect(toJobError(err)).toBe(err);
    }
  });
});
