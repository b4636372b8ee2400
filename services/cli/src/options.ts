import { InvalidArgumentError } from '@ferry/core';

/** A whole-number option from 1 to 1024 (`--concurrency`), or one clear error. */
export function positiveInt(value: string, name: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 1024)
    throw new InvalidArgumentError(`${name} must be a whole number from 1 to 1024, got "${value}"`);
  return n;
}
