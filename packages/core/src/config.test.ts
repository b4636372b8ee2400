import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, parseConfigText, regionConfig } from './config.js';

const good = `
volume: models
chunkSize: 8MiB
source: src
regions:
  src: { store: "file:///var/lib/ferry/src", redis: "redis://127.0.0.1:6379/0" }
  eu:  { store: "s3://models-eu/ferry?region=eu-west-1", redis: "redis://eu-redis:6379/0",
         cache: { replicas: 2, token: "\${FERRY_CACHE_TOKEN}" } }
`;

function configError(text: string, env: NodeJS.ProcessEnv = {}): string {
  try {
    parseConfigText(text, { source: 'ferry.yaml', env });
  } catch (err) {
    expect((err as { code: string }).code).toBe('INVALID_CONFIG');
    return (err as Error).message;
  }
  throw new Error('expected an error');
}

describe('config', () => {
  it('parses the documented example, expands env references and freezes the result', () => {
    const config = parseConfigText(good, { env: { FERRY_CACHE_TOKEN: 's3cret' } });
    expect(config.chunkSize).toBe(8 * 2 ** 20);
    expect(config.regions.eu?.cache).toEqual({ replicas: 2, token: 's3cret', connectTimeoutMs: 300, scrubBytesPerSecond: 32 * 2 ** 20 });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.regions.eu?.cache)).toBe(true);
    expect(regionConfig(config, 'src').store).toBe('file:///var/lib/ferry/src');
    expect(() => regionConfig(config, 'us')).toThrow('unknown region "us": the config has src, eu');
  });

  it.each([
    [good.replace('volume: models', 'volume: Models!'), 'invalid config ferry.yaml: volume: expected 1-63 lowercase'],
    [good.replace('source: src', 'source: us'), 'invalid config ferry.yaml: source: "us" is not one of the regions (src, eu)'],
    [good.replace('8MiB', '8 parsecs'), 'invalid config ferry.yaml: chunkSize: invalid size "8 parsecs"'],
    [good.replace('"file:///var/lib/ferry/src"', '"ftp://x"'), 'invalid config ferry.yaml: regions.src.store: expected a store URL'],
    [
      good.replace('chunkSize: 8MiB', 'chunkSize: 8MiB\nchunksize: 4MiB'),
      'invalid config ferry.yaml: (root): Unrecognized key: "chunksize"',
    ],
    ['volume: [', 'invalid config ferry.yaml: not valid YAML'],
    ['- a\n- b', 'invalid config ferry.yaml: expected a mapping'],
  ])('names the field and the problem in one line (%#)', (text, message) => {
    const got = configError(text, { FERRY_CACHE_TOKEN: 't' });
    expect(got.startsWith(message)).toBe(true);
    expect(got).not.toContain('\n');
  });

  it('reports an unset environment reference with its field', () => {
    expect(configError(good)).toBe('invalid config ferry.yaml: regions.eu.cache.token: environment variable FERRY_CACHE_TOKEN is not set');
  });

  it('reports a missing file in one line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-cfg-'));
    expect(() => loadConfig(join(dir, 'nope.yaml'))).toThrow(`cannot read config ${join(dir, 'nope.yaml')}: no such file or directory`);
    writeFileSync(join(dir, 'ok.yaml'), good);
    expect(loadConfig(join(dir, 'ok.yaml'), { FERRY_CACHE_TOKEN: 'x' }).volume).toBe('models');
  });
});
