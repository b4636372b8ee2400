import { PrefixStore } from '@ferry/stores';
import { GcsStore, type GcsStoreOptions } from '@ferry/stores/gcs';
import { inject } from 'vitest';
import { uniqueName } from './random.js';

/**
 * Helpers for tests against the run's GCS emulator (started by global-setup.ts, reached through
 * `inject('gcs')`). The emulator needs no credentials: a store with a plain-http endpoint sends
 * none, and global setup sets METADATA_SERVER_DETECTION=none so the SDK never probes for them.
 * Buckets are implicit there (any valid name exists once written to).
 */
export function gcsEndpoint(): { endpoint: string; bucket: string; projectId: string } {
  return inject('gcs');
}

/** A GcsStore on the whole test bucket (or `options.bucket`). */
export function gcsStore(options: Partial<GcsStoreOptions> = {}): GcsStore {
  const { endpoint, bucket, projectId } = gcsEndpoint();
  return new GcsStore({ bucket, endpoint, projectId, ...options });
}

/** A store over a fresh random prefix of the test bucket: the usual way tests isolate themselves. */
export function gcsStoreFor(prefix = uniqueName('gcs'), options: Partial<GcsStoreOptions> = {}): PrefixStore {
  return new PrefixStore({ inner: gcsStore(options), prefix });
}

/** The `gs://` URL of a prefix of the test bucket, for createStore, the CLI and services. */
export function gcsUrl(prefix = uniqueName('gcs'), bucket = gcsEndpoint().bucket): string {
  const { endpoint, projectId } = gcsEndpoint();
  const query = new URLSearchParams({ endpoint, projectId });
  return `gs://${bucket}/${prefix}?${query.toString()}`;
}
