import { type Logger, REDACT_PATHS } from '@ferry/core';
import pino from 'pino';

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
function merging(root: pino.Logger, bound: Record<string, unknown>): Logger {
  const self = Object.keys(bound).length === 0 ? root : root.child(bound);
  return {
    error: self.error.bind(self),
    warn: self.warn.bind(self),
    info: self.info.bind(self),
    debug: self.debug.bind(self),
    child: (bindings) => merging(root, { ...bound, ...bindings }),
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
  const stream = human
    ? { write: (line: string) => void (raw ?? (dest === 1 ? process.stdout : process.stderr)).write(`${humanLine(line)}\n`) }
    : (raw ?? pino.destination({ dest, sync: true }));
  const root = pino(
    {
      name: options.name,
      level: process.env.FERRY_LOG_LEVEL || LEVELS[options.kind],
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      base: { pid: process.pid },
    },
    stream,
  );
  return merging(root, {});
}
