import type { Logger } from '@ferry/core';
import { Replicator, type ReplicatorOptions } from '@ferry/replicator';
import type { Regions } from './regions.js';

/**
 * A logger for in-process daemons: silent unless FERRY_TEST_LOG is set (then warnings and
 * errors, or every level named there, go to the console).
 */
export function testLogger(name = 'replicator'): Logger {
  const levels = new Set((process.env.FERRY_TEST_LOG ?? '').split(',').filter(Boolean));
  const on = (level: string) => levels.has(level) || (levels.size > 0 && (level === 'warn' || level === 'error'));
  const make = (bindings: Record<string, unknown>): Logger => {
    const fn =
      (level: string) =>
      (obj: object | string, msg?: string): void => {
        if (!on(level)) return;
        const text = typeof obj === 'string' ? obj : msg;
        const fields = typeof obj === 'string' ? {} : { ...obj, err: (obj as { err?: Error }).err?.message };
        console.log(`[${name} ${level}] ${text ?? ''} ${JSON.stringify({ ...bindings, ...fields })}`);
      };
    return {
      error: fn('error'),
      warn: fn('warn'),
      info: fn('info'),
      debug: fn('debug'),
      child: (more) => make({ ...bindings, ...more }),
    };
  };
  return make({});
}

/** Start an in-process replicator of a region of `regions` (no control API unless `listen`). */
export async function startReplicator(
  regions: Regions,
  region: string,
  options: Partial<Omit<ReplicatorOptions, 'config' | 'region' | 'logger'>> = {},
): Promise<Replicator> {
  const replicator = new Replicator({ config: regions.config, region, logger: testLogger(region), listen: false, ...options });
  await replicator.start(); // a failed start stops what it had started
  return replicator;
}
