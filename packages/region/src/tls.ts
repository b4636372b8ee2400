import { readFileSync } from 'node:fs';
import { InvalidConfigError, localIoError } from '@ferry/core';

/**
 * The PEM of a CA bundle a client trusts beside the system store (`…tls.ca`), or undefined when
 * the config names none; a file that cannot be read is one config error naming the key.
 */
export function readCa(path: string | undefined, key: string): Buffer | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path);
  } catch (err) {
    throw new InvalidConfigError(`${key}: ${localIoError(err, 'cannot read the CA bundle', path).message}`, { cause: err });
  }
}
