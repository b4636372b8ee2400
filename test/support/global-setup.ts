import type { TestProject } from 'vitest/node';
import { startGcsEmulator } from './servers/gcs-emulator.js';
import { startRedis } from './servers/redis.js';
import { startS3rver } from './servers/s3rver.js';

export interface S3Endpoint {
  endpoint: string;
  bucket: string;
}
export interface GcsEndpoint {
  endpoint: string;
  bucket: string;
  projectId: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
    s3: S3Endpoint;
    gcs: GcsEndpoint;
  }
}

/**
 * One private redis-server, one s3rver and one GCS emulator for the whole integration run, each
 * on a free loopback port. Tests isolate themselves with random volumes, prefixes and buckets.
 */
export default async function setup(project: TestProject) {
  process.env.AWS_EC2_METADATA_DISABLED = 'true';
  process.env.METADATA_SERVER_DETECTION = 'none';
  const [redis, s3, gcs] = await Promise.all([startRedis(), startS3rver(), startGcsEmulator()]);
  project.provide('redisUrl', redis.url);
  project.provide('s3', { endpoint: s3.endpoint, bucket: s3.bucket });
  project.provide('gcs', { endpoint: gcs.endpoint, bucket: gcs.bucket, projectId: gcs.projectId });
  return async () => {
    await Promise.allSettled([redis.stop(), s3.stop(), gcs.stop()]);
  };
}
