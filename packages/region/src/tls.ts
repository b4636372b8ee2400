import { readFileSync } from 'node:fs';
import { InvalidConfigError, localIoError, type RedisTls } from '@ferry/core';

/** A PEM file the config names at `key`; one that cannot be read is one config error naming the key and the file. */
function readPem(path: string, key: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new InvalidConfigError(`${key}: ${localIoError(err, `cannot read the ${what}`, path).message}`, { cause: err });
  }
}

/**
 * The PEM of a CA bundle a client trusts beside the system store (`…tls.ca`), or undefined when
 * the config names none; a file that cannot be read is one config error naming the key.
 */
export function readCa(path: string | undefined, key: string): Buffer | undefined {
  return path === undefined ? undefined : readPem(path, key, 'CA bundle');
}

/** The PEMs of a Redis target's `tls` section (`key` is where it is in the config), read once when the region opens. */
export function readRedisTls(tls: RedisTls, key: string): { ca?: Buffer; cert?: Buffer; key?: Buffer } {
  return {
    ...(tls.ca !== undefined ? { ca: readPem(tls.ca, `${key}.ca`, 'CA bundle') } : {}),
    ...(tls.cert !== undefined ? { cert: readPem(tls.cert, `${key}.cert`, 'TLS certificate') } : {}),
    ...(tls.key !== undefined ? { key: readPem(tls.key, `${key}.key`, 'TLS key') } : {}),
  };
}
