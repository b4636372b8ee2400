import { describe, expect, it } from 'vitest';
import { createLogger, humanLine } from './logger.js';

function capture() {
  const lines: string[] = [];
  return { lines, stream: { write: (line: string) => void lines.push(line.trimEnd()) } };
}

describe('command and service loggers', () => {
  it('a child of a child names each key once, the later binding winning', () => {
    const { lines, stream } = capture();
    const root = createLogger({ name: 'ferry-replicator', kind: 'service', stream });
    const log = root.child({ region: 'us', volume: 'models' }).child({ component: 'warm' });
    log.child({ component: 'warm-rules', volume: 'models' }).warn({ chunk: 'c1' }, 'one line');
    expect(lines).toHaveLength(1);
    const line = lines[0] as string;
    for (const key of ['component', 'volume', 'region', 'chunk']) {
      expect(line.match(new RegExp(`"${key}":`, 'g')), line).toHaveLength(1);
    }
    expect(JSON.parse(line)).toMatchObject({ component: 'warm-rules', region: 'us', volume: 'models', msg: 'one line' });
  });

  it('a command without --json prints one human line per event, with JSON only when asked', () => {
    const human = capture();
    const err = Object.assign(new Error('a valid bearer token is required'), { code: 'UNAUTHORIZED' });
    createLogger({ name: 'ferry', kind: 'command', stream: human.stream })
      .child({ component: 'cache' })
      .error({ err, node: 'n1' }, 'cache node refused the token');
    expect(human.lines).toEqual(['ferry: error: cache node refused the token (node n1): a valid bearer token is required']);

    const json = capture();
    createLogger({ name: 'ferry', kind: 'command', json: true, stream: json.stream }).warn({ path: '/m' }, 'slow');
    expect(JSON.parse(json.lines[0] as string)).toMatchObject({ level: 40, path: '/m', msg: 'slow' });
  });

  it('a human line is one line, whatever the message holds', () => {
    expect(humanLine(JSON.stringify({ level: 40, msg: 'a\nb', reason: 'c' }))).toBe('ferry: warning: a b: c');
  });
});
