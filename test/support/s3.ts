import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { PrefixStore } from '@ferry/stores';
import { S3Store, type S3StoreOptions } from '@ferry/stores/s3';
import { inject } from 'vitest';
import { uniqueName } from './random.js';

/**
 * Helpers for tests against the run's s3rver (started by global-setup.ts, reached through
 * `inject('s3')`). s3rver checks no signatures but wants the access key id `S3RVER`.
 *
 * Code that opens a store from a URL (createStore, the CLI, services) gets its credentials from
 * the SDK default chain, so a test that passes `s3Url(...)` to such code must also have
 * AWS_ACCESS_KEY_ID=S3RVER and AWS_SECRET_ACCESS_KEY=S3RVER in the environment of the process
 * doing the requests: `s3Env()` gives those variables (spread it into a child's env, or use
 * `useS3Env()` in the test process).
 */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

export function s3Endpoint(): { endpoint: string; bucket: string } {
  return inject('s3');
}

/** An S3Store on the whole test bucket (or `bucket`), configured the way s3rver needs. */
export function s3Store(options: Partial<S3StoreOptions> = {}): S3Store {
  const { endpoint, bucket } = s3Endpoint();
  return new S3Store({
    bucket,
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    checksums: 'when_required',
    credentials: S3RVER_CREDENTIALS,
    ...options,
  });
}

/** A store over a fresh random prefix of the test bucket: the usual way tests isolate themselves. */
export function s3StoreFor(prefix = uniqueName('s3'), options: Partial<S3StoreOptions> = {}): PrefixStore {
  return new PrefixStore({ inner: s3Store(options), prefix });
}

/**
 * The `s3://` URL of a prefix of the test bucket, with every option s3rver needs. Credentials are
 * not part of it: see s3Env().
 */
export function s3Url(prefix = uniqueName('s3'), bucket = s3Endpoint().bucket): string {
  const { endpoint } = s3Endpoint();
  const query = new URLSearchParams({ endpoint, forcePathStyle: '1', checksums: 'when_required', region: 'us-east-1' });
  return `s3://${bucket}/${prefix}?${query.toString()}`;
}

/** Environment for a process that opens `s3://` URLs against s3rver. */
export function s3Env(): Record<string, string> {
  return {
    AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
    AWS_REGION: 'us-east-1',
    AWS_EC2_METADATA_DISABLED: 'true',
  };
}

/** Puts s3Env() into this process's environment; returns a function that restores it. */
export function useS3Env(): () => void {
  const saved = Object.entries(s3Env()).map(([name]) => [name, process.env[name]] as const);
  Object.assign(process.env, s3Env());
  return () => {
    for (const [name, value] of saved) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
}

/** A new, empty bucket on the run's s3rver, for tests that need a whole bucket to themselves. */
export async function createS3Bucket(name = uniqueName('bucket')): Promise<string> {
  const client = new S3Client({
    endpoint: s3Endpoint().endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: S3RVER_CREDENTIALS,
  });
  try {
    await client.send(new CreateBucketCommand({ Bucket: name }));
  } finally {
    client.destroy();
  }
  return name;
}
