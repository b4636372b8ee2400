import { mkdtempSync, rmSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GroupFlush } from './group-flush.js';

/** Real files, each handle's fdatasync counted. */
async function files(dir: string, n: number, prefix: string): Promise<{ handles: FileHandle[]; synced: () => number }> {
  let synced = 0;
  const handles: FileHandle[] = [];
  for (let i = 0; i < n; i++) {
    const handle = await open(join(dir, `${prefix}-${i}`), 'wx');
    await handle.writeFile(`bytes ${i}`);
    const datasync = handle.datasync.bind(handle);
    handle.datasync = async () => {
      synced += 1;
      return datasync();
    };
    handles.push(handle);
  }
  return { handles, synced: () => synced };
}

describe('GroupFlush', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-flush-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('flushes a round of few files one by one', async () => {
    const flusher = new GroupFlush({ dir, wholeFsFrom: 8 });
    const { handles, synced } = await files(dir, 3, 'few');
    await Promise.all(handles.map((h) => flusher.flush(h)));
    expect(synced()).toBe(3);
    await Promise.all(handles.map((h) => h.close()));
  });

  it('flushes a round of many files with one flush of the filesystem', async () => {
    const flusher = new GroupFlush({ dir, wholeFsFrom: 8 });
    const { handles, synced } = await files(dir, 20, 'many');
    await Promise.all(handles.map((h) => flusher.flush(h)));
    expect(synced()).toBe(0);
    // Handed in while that flush ran or after it: a round of their own.
    const later = await files(dir, 2, 'later');
    await Promise.all(later.handles.map((h) => flusher.flush(h)));
    expect(later.synced()).toBe(2);
    await Promise.all([...handles, ...later.handles].map((h) => h.close()));
  });

  it('falls back to one flush per file where the filesystem cannot be flushed as a whole', async () => {
    const flusher = new GroupFlush({ dir: join(dir, 'gone'), wholeFsFrom: 4 });
    const { handles, synced } = await files(dir, 10, 'nosync');
    await Promise.all(handles.map((h) => flusher.flush(h)));
    expect(synced()).toBe(10);
    await Promise.all(handles.map((h) => h.close()));
  });

  it('fails only the put whose file could not be flushed', async () => {
    const flusher = new GroupFlush({ dir, wholeFsFrom: 8 });
    const { handles } = await files(dir, 3, 'fail');
    const [first, broken, last] = handles as [FileHandle, FileHandle, FileHandle];
    await broken.close();
    const outcomes = await Promise.allSettled([flusher.flush(first), flusher.flush(broken), flusher.flush(last)]);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    await Promise.all([first.close(), last.close()]);
  });
});
