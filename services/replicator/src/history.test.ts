import { silentLogger } from '@ferry/core';
import { describe, expect, it } from 'vitest';
import { History } from './history.js';
import type { RegionsPanel } from './panels.js';

function panel(at: number, lagSeconds: number): RegionsPanel {
  return {
    volume: 'v',
    source: 'src',
    at,
    regions: [
      { region: 'src', role: 'source' },
      {
        region: 'eu',
        role: 'mirror',
        lag: { records: 1, seconds: lagSeconds },
        throughput: { bytesPerSecond: 10, chunksPerSecond: 1, overSeconds: 10 },
      },
      { region: 'us', role: 'mirror', error: 'unreachable' },
    ],
  };
}

describe('History', () => {
  it('keeps a sample per mirror it could read, drops those older than the window, and never mixes regions', () => {
    const history = new History({ everyMs: 1000, keepMs: 10_000, read: async () => panel(0, 0), logger: silentLogger });
    for (let t = 0; t <= 20_000; t += 1000) history.record(panel(t, t / 1000));
    const h = history.panel();
    expect(Object.keys(h.regions)).toEqual(['eu']);
    expect(h.regions.eu?.map((s) => s.at)).toEqual([
      10_000, 11_000, 12_000, 13_000, 14_000, 15_000, 16_000, 17_000, 18_000, 19_000, 20_000,
    ]);
    expect(h.regions.eu?.at(-1)).toEqual({ at: 20_000, lagSeconds: 20, lagRecords: 1, bytesPerSecond: 10, chunksPerSecond: 1 });
    expect(h).toMatchObject({ everySeconds: 1, keepSeconds: 10 });
  });

  it('samples on a timer until stopped; a failed read is logged, not thrown', async () => {
    let reads = 0;
    const history = new History({
      everyMs: 10,
      read: async () => {
        reads += 1;
        if (reads === 2) throw new Error('redis down');
        return panel(Date.now(), 1);
      },
      logger: silentLogger,
    });
    history.start();
    await new Promise((r) => setTimeout(r, 120));
    await history.stop();
    const after = reads;
    await new Promise((r) => setTimeout(r, 50));
    expect(reads).toBe(after);
    expect(reads).toBeGreaterThan(3);
    expect(history.panel().regions.eu?.length).toBe(reads - 1);
  });
});
