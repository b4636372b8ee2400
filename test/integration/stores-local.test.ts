import { mkdir, mkdtemp, readFile, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AccessDeniedError, NotFoundError } from '@ferry/core';
import { FaultStore, FsStore, LazyStore, MemoryStore, PrefixStore } from '@ferry/stores';
import { describe, expect, it } from 'vitest';
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

describe('the file store and symlinks', () => {
  it('refuses a key whose directory is a symlink out of the store, and says a missing one is not there', async () => {
    const root = await mkdtemp(join(tmpdir(), 'ferry-fs-'));
    const outside = await mkdtemp(join(tmpdir(), 'ferry-outside-'));
    await mkdir(join(outside, 'cd'), { recursive: true });
    await writeFile(join(outside, 'cd', 'secret'), 'not the store’s');
    await mkdir(join(root, 'chunks'), { recursive: true });
    await symlink(outside, join(root, 'chunks', 'ab'));
    const store = new FsStore({ root });
    await expect(store.head('chunks/ab/cd/secret')).rejects.toBeInstanceOf(AccessDeniedError);
    await expect(store.get('chunks/ab/cd/secret')).rejects.toBeInstanceOf(AccessDeniedError);
    await expect(store.put('chunks/ab/cd/new', Buffer.from('x'))).rejects.toBeInstanceOf(AccessDeniedError);
    await expect(store.head('chunks/ab/cd/missing')).rejects.toBeInstanceOf(NotFoundError);
    await expect(readFile(join(outside, 'cd', 'secret'), 'utf8')).resolves.toBe('not the store’s');
    await expect(readFile(join(outside, 'cd', 'new'))).rejects.toThrow(/ENOENT/);
  });
});
