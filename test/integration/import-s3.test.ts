import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { cloudImportSuite } from '../support/import-suite.js';
import { S3RVER_CREDENTIALS, s3Endpoint, s3Env, s3StoreFor, s3Url } from '../support/s3.js';

// `ferry import` from s3rver: ~600 objects (s3rver is slow), keys the volume cannot hold, the
// 1 % change cycle and reads through the origin tier. s3rver does not enforce If-Match, so the
// refused read after an overwrite proves the client-side etag check.

cloudImportSuite(
  's3',
  {
    store: (prefix) => s3StoreFor(prefix),
    url: (prefix) => s3Url(prefix),
    async rawPut(key, bytes) {
      const { endpoint, bucket } = s3Endpoint();
      const client = new S3Client({
        endpoint,
        region: 'us-east-1',
        forcePathStyle: true,
        credentials: S3RVER_CREDENTIALS,
        requestChecksumCalculation: 'WHEN_REQUIRED',
      });
      try {
        await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: bytes }));
      } finally {
        client.destroy();
      }
    },
    // s3rver normalises "." and ".." and refuses "//" in keys; those are covered by file:// and gs.
    oddKeys: { 'folder/': 'folder-marker', 'ctl\u0001x.bin': 'control-character', 'back\\slash.bin': 'backslash' },
    // The SDK's multi-line Node 20 deprecation warning would break the one-line-error check.
    env: { ...s3Env(), AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  },
  600,
);
