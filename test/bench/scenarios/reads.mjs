// Scenario 5: sequential read throughput of a 1 GiB file from each tier, vs a plain Node HTTP GET
// of the same bytes on loopback; p50/p99 of 64 KiB random reads from a cache node.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../lib/util.mjs';

export const reads = {
  id: 'reads',
  title: 'Reads: sequential throughput per tier vs a plain HTTP GET; random 64 KiB reads from a cache node',
  available: () => existsSync(join(ROOT, 'services/cache-node/dist/index.js')),
  unavailableReason: 'the cache node has not landed yet',
  async run() {
    throw new Error('reads scenario: not written yet');
  },
};
