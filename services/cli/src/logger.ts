import { createRequire } from 'node:module';
import { InvalidArgumentError, type Logger, REDACT_PATHS } from '@ferry/core';
import type pino from 'pino';

/** pino is loaded when the first line at or above the level is logged: most commands log nothing. */
const loadPino = () => createRequire(import.meta.url)('pino') as typeof pino;

/** pino's numbers for the levels Ferry uses. */
const LEVEL_VALUES: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };

/**
 * What each kind of process logs unless FERRY_LOG_LEVEL says otherwise: a daemon its work
 * (`info`), a command only what went wrong beside its own output (`warn`), the demo nothing but
 * errors (its output is the story).
 */
const LEVELS = { service: 'info', command: 'warn', demo: 'error' } as const;

/** Context keys a human line names after the message, in this order. */
const HUMAN_KEYS = ['path', 'chunk', 'node', 'tier', 'region'] as const;

/** A pino JSON line as the one human line a command prints on stderr: `ferry: warning: …`. */
export function humanLine(json: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const level = Number(o.level);
  const label = level >= 50 ? 'error: ' : level >= 40 ? 'warning: ' : level < 30 ? 'debug: ' : '';
  const msg = String(o.msg ?? '');
  const context = HUMAN_KEYS.filter((k) => typeof o[k] === 'string' || typeof o[k] === 'number').map((k) => `${k} ${o[k]}`);
  const reason = (o.err as { message?: unknown } | undefined)?.message ?? o.reason;
  const why = typeof reason === 'string' && reason !== '' && !msg.includes(reason) ? `: ${reason}` : '';
  return `ferry: ${label}${msg}${context.length > 0 ? ` (${context.join(', ')})` : ''}${why}`.replace(/\s*\n\s*/g, ' ');
}

/**
 * A logger whose children merge their bindings with their parent's instead of repeating keys:
 * pino writes each child's bindings after its parent's, so `child({ component: 'warm' })` of a
 * `component` child made a line with two `component` keys. Later bindings win.
 */
function merging(root: () => pino.Logger, bound: Record<string, unknown>, threshold: number): Logger {
  let self: pino.Logger | undefined;
  const line =
    (level: 'error' | 'warn' | 'info' | 'debug') =>
    (...args: unknown[]): void => {
      // Below the level a line costs nothing, not even loading the logger.
      if ((LEVEL_VALUES[level] as number) < threshold) return;
      self ??= Object.keys(bound).length === 0 ? root() : root().child(bound);
      (self[level] as (...a: unknown[]) => void)(...args);
    };
  return {
    error: line('error'),
    warn: line('warn'),
    info: line('info'),
    debug: line('debug'),
    child: (bindings) => merging(root, { ...bound, ...bindings }, threshold),
  };
}

/**
 * The root logger of a Ferry process: secrets redacted; the level as LEVELS or FERRY_LOG_LEVEL
 * says. A daemon (and any command with --json) writes JSON lines; a command without --json
 * writes one human line per event on stderr (`ferry: warning: …`), never a JSON object or a stack.
 */
export function createLogger(options: {
  name: string;
  kind: keyof typeof LEVELS;
  destination?: number;
  json?: boolean;
  /** Where lines go instead of the destination fd (tests). */
  stream?: { write(line: string): void };
}): Logger {
  const dest = options.destination ?? 2;
  const human = options.kind !== 'service' && !options.json;
  const raw = options.stream;
  const level = process.env.FERRY_LOG_LEVEL || LEVELS[options.kind];
  let root: pino.Logger | undefined;
  const make = (): pino.Logger => {
    if (root) return root;
    const pinoOf = loadPino();
    const stream = human
      ? { write: (line: string) => void (raw ?? (dest === 1 ? process.stdout : process.stderr)).write(`${humanLine(line)}\n`) }
      : (raw ?? pinoOf.destination({ dest, sync: true }));
    root = pinoOf(
      {
        name: options.name,
        level,
        redact: { paths: REDACT_PATHS, censor: '[redacted]' },
        base: { pid: process.pid },
      },
      stream,
    );
    return root;
  };
  const threshold = LEVEL_VALUES[level];
  if (threshold === undefined) {
    throw new InvalidArgumentError(`FERRY_LOG_LEVEL must be one of ${Object.keys(LEVEL_VALUES).join(', ')} (got ${level})`);
  }
  return merging(make, {}, threshold);
}
