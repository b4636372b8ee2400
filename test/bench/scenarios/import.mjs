// Scenario 4: import throughput (objects/s) for a first import and a re-import with 1 % changed,
// against `rclone lsf -R` of the same origin (the listing floor).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../lib/util.mjs';

export const importScenario = {
  id: 'import',
  title: 'Import: objects/s, first import and re-import with 1 % changed, vs rclone lsf -R',
  available: () => existsSync(join(ROOT, 'packages/importer/dist/index.js')),
  unavailableReason: '`ferry import` has not landed yet',
  async run() {
    throw new Error('import scenario: not written yet');
  },
};
