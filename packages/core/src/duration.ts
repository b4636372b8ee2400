import { InvalidArgumentError } from './errors.js';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parse `500ms`, `10s`, `5m`, `24h`, `1d`, or a number of milliseconds, into whole milliseconds. */
export function parseDuration(input: string | number): number {
  if (typeof input === 'number') {
    if (Number.isSafeInteger(input) && input >= 0) return input;
    throw new InvalidArgumentError(`invalid duration ${input}: expected a whole number of milliseconds`);
  }
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/.exec(input);
  const factor = UNITS[match?.[2] ?? ''];
  if (!match || factor === undefined) {
    throw new InvalidArgumentError(
      `invalid duration ${JSON.stringify(input.slice(0, 40))}: expected a number with a unit (ms, s, m, h, d)`,
    );
  }
  const ms = Math.round(Number(match[1]) * factor);
  if (!Number.isSafeInteger(ms)) throw new InvalidArgumentError(`invalid duration "${input}": too large`);
  return ms;
}
