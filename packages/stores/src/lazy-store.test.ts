import { describe, expect, it } from 'vitest';
import { LazyStore } from './lazy-store.js';
import { MemoryStore } from './memory-store.js';

describe('LazyStore', () => {
  it('makes its backend once, on the first call, and passes every call through', async () => {
    let opened = 0;
    let closed = 0;
    const inner = new MemoryStore({ name: `lazy-${Math.random()}` });
    const store = new LazyStore({
      url: 'memory://lazy',
      capabilities: inner.capabilities,
      open: async () => {
        opened += 1;
        return Object.assign(inner, {
          close: async () => {
            closed += 1;
          },
        });
      },
    });
    expect(opened).toBe(0);
    await Promise.all([store.put('a/1', Buffer.from('one')), store.put('a/2', Buffer.from('two'))]);
    expect(opened).toBe(1);
    expect((await store.head('a/1')).size).toBe(3);
    const { body } = await store.get('a/2', { range: { start: 1 } });
    expect(Buffer.concat(await body.toArray()).toString()).toBe('wo');
    const keys: string[] = [];
    for await (const page of store.list('a/')) keys.push(...page.items.map((i) => i.key));
    expect(keys).toEqual(['a/1', 'a/2']);
    await store.delete('a/1');
    await expect(store.head('a/1')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await store.close();
    expect([opened, closed]).toEqual([1, 1]);
  });

  it('closes nothing it never made', async () => {
    let opened = 0;
    const store = new LazyStore({
      url: 'memory://never',
      capabilities: { scheme: 'memory', serverSideIfMatch: true, maxObjectSize: 1 },
      open: async () => {
        opened += 1;
        return new MemoryStore({ name: 'never' });
      },
    });
    await store.close();
    expect(opened).toBe(0);
  });
});
