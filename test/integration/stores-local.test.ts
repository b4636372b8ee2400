import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FsStore, MemoryStore } from '@ferry/stores';
import { uniqueName } from '../support/random.js';
import { storeConformance } from '../support/store-conformance.js';

storeConformance('file', async () => new FsStore({ root: await mkdtemp(join(tmpdir(), 'ferry-fs-')) }));
storeConformance('memory', async () => new MemoryStore({ name: uniqueName('conformance') }));
