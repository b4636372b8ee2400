import type { Entry } from '@ferry/core';
import { describe, expect, it } from 'vitest';
import { matchRules } from './warm-rules.js';

const entry = (path: string) => ({ path, version: '1-0', size: 0, mtime: 0, chunkSize: 1, chunks: [] }) as unknown as Entry;

describe('matchRules', () => {
  it('takes the files under a rule, grouped by owners per chunk; a file under two rules takes the larger', () => {
    const rules = [
      { path: '/models/prod', replicas: 2 },
      { path: '/models/prod/big', replicas: 3 },
      { path: '/datasets', replicas: 1 },
    ];
    const groups = matchRules(rules, [
      entry('/models/prod/a.safetensors'),
      entry('/models/prod/big/b.safetensors'),
      entry('/models/production/c.safetensors'),
      entry('/models/dev/d.safetensors'),
      entry('/datasets/e.parquet'),
    ]);
    expect([...groups.keys()].sort()).toEqual([1, 2, 3]);
    expect(groups.get(2)?.entries.map((e) => e.path)).toEqual(['/models/prod/a.safetensors']);
    expect(groups.get(3)?.entries.map((e) => e.path)).toEqual(['/models/prod/big/b.safetensors']);
    expect([...(groups.get(3)?.rules ?? [])]).toEqual(['/models/prod', '/models/prod/big']);
    expect(groups.get(1)?.entries.map((e) => e.path)).toEqual(['/datasets/e.parquet']);
  });

  it('a rule on / covers everything; no rule, nothing', () => {
    expect(matchRules([{ path: '/', replicas: 2 }], [entry('/x')]).get(2)?.entries).toHaveLength(1);
    expect(matchRules([], [entry('/x')]).size).toBe(0);
  });
});
