import { FerryError, messageOf } from '@ferry/core';

/**
 * Exit codes: 1 an operation failed, 2 the user asked for something invalid, 3 garbage
 * collection refused to run (the region's metadata is not whole; nothing was deleted).
 */
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
export const EXIT_REFUSED = 3;

const USAGE_CODES = new Set(['INVALID_PATH', 'INVALID_CONFIG', 'INVALID_ARGUMENT', 'INVALID_STORE_URL', 'READ_ONLY_REGION']);

/** A thrown value as the one line the CLI prints, and the exit code. */
export function describeFailure(err: unknown): { line: string; exitCode: number; expected: boolean } {
  if (err instanceof FerryError) {
    const exitCode = USAGE_CODES.has(err.code) ? EXIT_USAGE : err.code === 'GC_REFUSED' ? EXIT_REFUSED : EXIT_FAILURE;
    return { line: `ferry: ${err.message}`, exitCode, expected: true };
  }
  // Anything else is a bug in Ferry, not a user mistake: say so, keep the details for the log.
  return { line: `ferry: internal error: ${messageOf(err)}`, exitCode: EXIT_FAILURE, expected: false };
}
