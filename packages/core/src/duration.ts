import { InvalidArgumentError } from './errors.js';

const UNITS: Record<string, number> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  min: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/**
 * Parse `500ms`, `2s`, `1.5s`, `10m`, `24h` (or a number of ms) into whole milliseconds. A bare
 * number in a string is ms too, so `"250"` and `250` mean the same.
 */
export function parseDuration(input: string | number): number {
  if (typeof input === 'number') {
    if (Number.isFinite(input) && input >= 0 && Number.isSafeInteger(Math.round(input))) return Math.round(input);
    throw new InvalidArgumentError(`invalid duration ${input}: expected a number of ms >= 0`);
  }
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(input);
  const unit = match?.[2]?.toLowerCase() || 'ms';
  const factor = UNITS[unit];
  if (!match || factor === undefined) {
    throw new InvalidArgumentError(
      `invalid duration ${JSON.stringify(input.slice(0, 40))}: expected a number with a unit (ms, s, m, h, d), e.g. 500ms, 2s, 10m`,
    );
  }
  const ms = Math.round(Number(match[1]) * factor);
  if (!Number.isSafeInteger(ms)) throw new InvalidArgumentError(`invalid duration "${input}": too large`);
  return ms;
}

/** Short human form of a duration in ms: `500ms`, `2s`, `1.5s`, `10m`, `2h`. */
export function formatDuration(ms: number): string {
  if (ms < 1_000) return `${ms}ms`;
  if (ms < 60_000) return `${Number((ms / 1_000).toFixed(1))}s`;
  if (ms < 3_600_000) return `${Number((ms / 60_000).toFixed(1))}m`;
  return `${Number((ms / 3_600_000).toFixed(1))}h`;
}
