import { silentLogger } from '@ferry/core';
import { describe, expect, it } from 'vitest';
import { LeadershipLost, Maintenance } from './maintenance.js';

const tick = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('Maintenance', () => {
  it('runs passes only while this replica leads, and a pass stops at its next step once the token it started with is gone', async () => {
    let token = '';
    const steps: string[] = [];
    let lost: unknown;
    const task = new Maintenance({
      task: 'gc',
      everyMs: 10,
      token: () => token,
      logger: silentLogger,
      run: async (check) => {
        for (let step = 0; step < 5; step++) {
          try {
            check();
          } catch (err) {
            lost = err;
            throw err;
          }
          steps.push(`${token}:${step}`);
          if (step === 1) token = 'b'; // another replica took the lease mid-pass
          await tick(1);
        }
      },
    });
    task.start();
    await tick(60);
    expect(steps).toEqual([]); // not leading: no pass
    token = 'a';
    for (let waited = 0; steps.length < 7 && waited < 5000; waited += 10) await tick(10);
    await task.stop();
    // The pass that started under 'a' did steps 0 and 1, then stopped at its next check.
    expect(steps.slice(0, 2)).toEqual(['a:0', 'a:1']);
    expect(steps.filter((s) => s.startsWith('a'))).toHaveLength(2);
    expect(lost).toBeInstanceOf(LeadershipLost);
    expect(task.lastError).toBeUndefined(); // later passes finished
    // The new token leads from the next pass on, whole passes.
    expect(steps.slice(2, 7)).toEqual(['b:0', 'b:1', 'b:2', 'b:3', 'b:4']);
  });
});
