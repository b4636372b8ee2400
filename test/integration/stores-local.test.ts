import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FaultStore, FsStore, LazyStore, MemoryStore, PrefixStore } from '@ferry/stores';
import { uniqueName } from '../support/random.js';
import { storeConformance } from '../support/store-conformance.js';

const fsStore = async () => new FsStore({ root: await mkdtemp(join(tmpdir(), 'ferry-fs-')) });
const memoryStore = () => new MemoryStore({ name: uniqueName('conformance') });

storeConformance('file', fsStore);
storeConformance('memory', async () => memoryStore());

// The decorators are stores too: each passes the same suite over a real backend.
storeConformance('prefix over file', async () => new PrefixStore({ inner: await fsStore(), prefix: 'tenant/a' }));
storeConformance('prefix over memory', async () => new PrefixStore({ inner: memoryStore(), prefix: 'p' }));
// With no fault configured a fault decorator must be invisible.
storeConformance('fault (none injected) over file', async () => new FaultStore({ inner: await fsStore() }));
storeConformance('lazy over file', async () => {
  const inner = await fsStore();
  return new LazyStore({ url: inner.url, capabilities: inner.capabilities, open: async () => inner });
});
