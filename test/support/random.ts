import { randomBytes } from 'node:crypto';

/** A fresh name for a volume, prefix or bucket, so tests never see each other's data. */
export function uniqueName(base = 't'): string {
  return `${base}-${randomBytes(5).toString('hex')}`;
}
