import { describe, expect, it } from 'vitest';
import { parseFillJob, WARM_NODE_ID, warmJobNodeToken } from './payloads.js';

describe('warm job node ids', () => {
  it('takes node ids with dots and colons, and maps each to a distinct token without "." or ":"', () => {
    const ids = ['gpu-1.eu-west.internal', 'gpu-1.eu-west.internal:7700', 'gpu-1_eu-west_internal', 'n1'];
    const tokens = ids.map(warmJobNodeToken);
    expect(new Set(tokens).size).toBe(ids.length);
    for (const t of tokens) expect(t).toMatch(/^[A-Za-z0-9_-]+$/);
    for (const node of ids) expect(WARM_NODE_ID.test(node)).toBe(true);
    const chunk = `sha256-${'a'.repeat(64)}`;
    expect(parseFillJob({ chunk, size: 1, node: ids[1] }).node).toBe(ids[1]);
    expect(() => parseFillJob({ chunk, size: 1, node: '../x' })).toThrow(/invalid fill job: node/);
  });
});
