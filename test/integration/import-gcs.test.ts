import { Storage } from '@google-cloud/storage';
import { gcsEndpoint, gcsStoreFor, gcsUrl } from '../support/gcs.js';
import { cloudImportSuite } from '../support/import-suite.js';

// `ferry import` from the GCS emulator: ~500 objects, keys the volume cannot hold (GCS stores
// "//", "." and ".." segments literally), the 1 % change cycle and reads guarded by generation.

cloudImportSuite(
  'gcs',
  {
    store: (prefix) => gcsStoreFor(prefix),
    url: (prefix) => gcsUrl(prefix),
    async rawPut(key, bytes) {
      const { endpoint, bucket, projectId } = gcsEndpoint();
      await new Storage({ apiEndpoint: endpoint, projectId }).bucket(bucket).file(key).save(bytes, { resumable: false });
    },
    // No folder marker: GcsStore itself drops `dir/` keys from listings (S3Store does not).
    oddKeys: {
      'a//b.bin': 'empty-segment',
      'x/../escape.bin': 'dot-segment',
      'x/./y.bin': 'dot-segment',
      'ctl\u0001x.bin': 'control-character',
    },
    env: { METADATA_SERVER_DETECTION: 'none' },
  },
  500,
);
