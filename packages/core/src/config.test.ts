import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, parseConfigText, regionConfig } from './config.js';
import { describeRedisTarget, parseHostPort, type RedisTarget, replicaAcks, usesTls } from './redis-target.js';

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
    const warnings: string[] = [];
    const config = parseConfigText(good, { env: { FERRY_CACHE_TOKEN: 's3cret' }, onWarning: (m) => warnings.push(m) });
    expect(config.chunkSize).toBe(8 * 2 ** 20);
    // The deprecated single token means both roles, with one warning line.
    expect(config.regions.eu?.cache).toMatchObject({ replicas: 2, readToken: 's3cret', writeToken: 's3cret', connectTimeoutMs: 300 });
    expect(config.regions.eu?.cache).not.toHaveProperty('token');
    expect(warnings).toEqual([expect.stringContaining('regions.eu.cache.token: "token" is deprecated')]);
    expect(config.regions.eu?.cache?.scrubBytesPerSecond).toBe(32 * 2 ** 20);
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
    [
      `${good}replicator: { leaseTtl: 10 parsecs }\n`,
      'invalid config ferry.yaml: replicator.leaseTtl: invalid duration "10 parsecs": expected a number with a unit',
    ],
    [`${good}replicator: { stopTimeout: 5ms }\n`, 'invalid config ferry.yaml: replicator.stopTimeout: must be at least 100ms'],
    ['volume: [', 'invalid config ferry.yaml: not valid YAML'],
    ['- a\n- b', 'invalid config ferry.yaml: expected a mapping'],
  ])('names the field and the problem in one line (%#)', (text, message) => {
    const got = configError(text, { FERRY_CACHE_TOKEN: 't' });
    expect(got.startsWith(message)).toBe(true);
    expect(got).not.toContain('\n');
  });

  it('takes credentials by role, TLS paths and service limits with their defaults', () => {
    const text = `
volume: models
source: src
regions:
  src: { store: "file:///var/lib/ferry/src", redis: "redis://127.0.0.1:6379/0" }
  eu:
    store: "s3://models-eu/ferry?region=eu-west-1"
    redis: "redis://eu-redis:6379/0"
    cache: { readToken: r, writeToken: w, tls: { ca: /etc/ferry/ca.pem } }
    api: { readToken: ro, adminToken: adm, tls: { cert: /c.pem, key: /k.pem }, limits: { headersTimeout: 2s } }
gateway: { anonymous: true, tls: { cert: /c.pem, key: /k.pem }, limits: { maxStreams: 8, maxBytesInFlight: 64MiB } }
`;
    const warnings: string[] = [];
    const config = parseConfigText(text, { onWarning: (m) => warnings.push(m) });
    expect(warnings).toEqual([]);
    expect(config.regions.eu?.cache).toMatchObject({ readToken: 'r', writeToken: 'w', tls: { ca: '/etc/ferry/ca.pem' } });
    expect(config.regions.eu?.cache?.limits).toMatchObject({ maxStreams: 1024, maxBytesInFlight: 256 * 2 ** 20, headersTimeout: 10_000 });
    expect(config.regions.eu?.api).toMatchObject({
      readToken: 'ro',
      adminToken: 'adm',
      limits: { headersTimeout: 2000, idleTimeout: 60_000 },
    });
    expect(config.gateway?.limits).toMatchObject({ maxStreams: 8, maxBytesInFlight: 64 * 2 ** 20, maxHeaderBytes: 16 * 1024 });
    expect(config.gateway?.tls).toEqual({ cert: '/c.pem', key: '/k.pem' });
    expect(configError(text.replace('key: /k.pem }, limits', 'ca: /k.pem }, limits'))).toContain(
      'regions.eu.api.tls.cert: cert and key go together',
    );
    expect(configError(text.replace('headersTimeout: 2s', 'headersTimeout: soon'))).toContain(
      'regions.eu.api.limits.headersTimeout: invalid duration',
    );
  });

  it('takes an empty credential as not held, so readers share the config without the write token', () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: config references, not template placeholders
    const text = good.replace('token: "${FERRY_CACHE_TOKEN}"', 'readToken: "${R}", writeToken: "${W:-}"');
    const cache = parseConfigText(text, { env: { R: 'read' } }).regions.eu?.cache;
    expect(cache?.readToken).toBe('read');
    expect(cache?.writeToken).toBeUndefined();
    expect(parseConfigText(text, { env: { R: 'read', W: 'write' } }).regions.eu?.cache?.writeToken).toBe('write');
  });

  it('takes durations as strings with a unit or numbers of ms, with the documented defaults', () => {
    const defaults = parseConfigText(good, { env: { FERRY_CACHE_TOKEN: 't' } });
    expect(defaults.replicator).toEqual({ leaseTtl: 10_000, stopTimeout: 10_000 });
    expect(defaults.regions.eu?.copy).toMatchObject({ reconcileEvery: 60_000, backlog: 10_000 });
    const text = good
      .replace('cache: { replicas: 2,', 'copy: { reconcileEvery: 2s, backlog: 500 }, cache: { replicas: 2,')
      .concat('replicator: { leaseTtl: 1500, stopTimeout: 2m }\n');
    const tuned = parseConfigText(text, { env: { FERRY_CACHE_TOKEN: 't' } });
    expect(tuned.replicator).toEqual({ leaseTtl: 1_500, stopTimeout: 120_000 });
    expect(tuned.regions.eu?.copy).toMatchObject({ reconcileEvery: 2_000, backlog: 500 });
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

describe('config: a region’s Redis', () => {
  const withRedis = (redis: string) => good.replace('redis: "redis://eu-redis:6379/0"', `redis: ${redis}`);

  it('takes a URL, a Sentinel-managed master or a Cluster', () => {
    const sentinel = parseConfigText(withRedis('{ sentinels: ["10.0.0.1:26379", "[::1]:26380"], name: mymaster, password: pw }'), {
      env: { FERRY_CACHE_TOKEN: 't' },
    });
    expect(sentinel.regions.eu?.redis).toEqual({
      sentinels: ['10.0.0.1:26379', '[::1]:26380'],
      name: 'mymaster',
      password: 'pw',
      db: 0,
      minReplicas: 1,
      replicaTimeout: 2000,
    });
    expect(describeRedisTarget(sentinel.regions.eu?.redis as RedisTarget)).toBe(
      'sentinels 10.0.0.1:26379,[::1]:26380 (master mymaster, db 0)',
    );
    const cluster = parseConfigText(withRedis('{ cluster: ["a:7000", "b:7001"], password: pw }'), { env: { FERRY_CACHE_TOKEN: 't' } });
    expect(cluster.regions.eu?.redis).toEqual({ cluster: ['a:7000', 'b:7001'], password: 'pw', minReplicas: 1, replicaTimeout: 2_000 });
    expect(describeRedisTarget(cluster.regions.eu?.redis as RedisTarget)).toBe('cluster a:7000,b:7001');
    expect(describeRedisTarget('redis://:hunter2@eu-redis:6379/0')).not.toContain('hunter2');
    expect(parseHostPort('[::1]:26380')).toEqual({ host: '::1', port: 26380 });
  });

  it('takes TLS files in every shape; a URL with files or a separate password is written { url, … }', () => {
    const parse = (redis: string) =>
      parseConfigText(withRedis(redis), { env: { FERRY_CACHE_TOKEN: 't' } }).regions.eu?.redis as RedisTarget;
    const url = parse('{ url: "rediss://eu-redis:6380/0", user: ferry-reader, password: pw, tls: { ca: /etc/ferry/redis-ca.pem } }');
    expect(url).toEqual({ url: 'rediss://eu-redis:6380/0', user: 'ferry-reader', password: 'pw', tls: { ca: '/etc/ferry/redis-ca.pem' } });
    expect(describeRedisTarget(url)).toBe('rediss://eu-redis:6380/0 as ferry-reader');
    expect(replicaAcks(url)).toBeUndefined();
    const sentinel = parse('{ sentinels: ["a:26379"], name: m, tls: { ca: /ca.pem, cert: /client.pem, key: /client.key } }');
    expect(sentinel).toMatchObject({ tls: { ca: '/ca.pem', cert: '/client.pem', key: '/client.key' } });
    // An empty section is TLS with the system's CAs only.
    expect(usesTls(parse('{ cluster: ["a:7000"], tls: {} }'))).toBe(true);
    expect(usesTls(parse('{ cluster: ["a:7000"] }'))).toBe(false);
    expect(usesTls(parse('"rediss://eu-redis:6380/0"'))).toBe(true);
    expect(usesTls(parse('{ url: "redis://eu-redis:6379/0", password: pw }'))).toBe(false);
  });

  it.each([
    ['{ sentinels: [], name: m }', 'regions.eu.redis.sentinels: name at least one host:port'],
    ['{ sentinels: ["a:1"] }', 'regions.eu.redis.name: '],
    ['{ sentinels: ["a"], name: m }', 'regions.eu.redis.sentinels.0: expected host:port'],
    ['{ cluster: ["a:1"], db: 2 }', 'regions.eu.redis: Unrecognized key: "db"'],
    ['{ host: a }', 'regions.eu.redis: expected a redis:// URL, { sentinels'],
    ['"http://x"', 'regions.eu.redis: expected redis://host:port/db'],
    ['{ url: "redis://a:6379/0", tls: { ca: /ca.pem } }', 'regions.eu.redis.url: tls needs a rediss:// URL'],
    [
      '{ url: "rediss://:pw@a:6379/0", password: pw }',
      'regions.eu.redis.url: give the user and password in the URL or as user/password, not both',
    ],
    ['{ cluster: ["a:1"], tls: { cert: /c.pem } }', 'regions.eu.redis.tls.cert: cert and key go together'],
    ['{ sentinels: ["a:1"], name: m, tls: { crt: /c.pem } }', 'regions.eu.redis.tls: Unrecognized key: "crt"'],
  ])('names what is wrong with %s', (redis, message) => {
    expect(configError(withRedis(redis), { FERRY_CACHE_TOKEN: 't' })).toContain(`invalid config ferry.yaml: ${message}`);
  });
});

describe('config: warm rules', () => {
  it('normalises paths and takes the region’s replicas by default', () => {
    const text = good.replace(
      'cache: { replicas: 2,',
      'warm: [{ path: "/models/prod/" }, { path: /models/canary, replicas: 3 }],\n         cache: { replicas: 2,',
    );
    const config = parseConfigText(text, { env: { FERRY_CACHE_TOKEN: 't' } });
    expect(config.regions.eu?.warm).toEqual([
      { path: '/models/prod', replicas: 2 },
      { path: '/models/canary', replicas: 3 },
    ]);
    expect(config.regions.src?.warm).toEqual([]);
  });

  it('refuses rules in a region without cache nodes, and bad paths', () => {
    const noCache = good.replace('src: { store:', 'src: { warm: [{ path: /models }], store:');
    expect(configError(noCache, { FERRY_CACHE_TOKEN: 't' })).toBe(
      "invalid config ferry.yaml: regions.src.warm: warm rules need the region's cache nodes: set a cache section",
    );
    const badPath = good.replace('cache: { replicas: 2,', 'warm: [{ path: "models/../x" }], cache: { replicas: 2,');
    expect(configError(badPath, { FERRY_CACHE_TOKEN: 't' })).toMatch(/^invalid config ferry.yaml: regions.eu.warm.0.path: /);
  });
});

// biome-ignore-start lint/suspicious/noTemplateCurlyInString: config references, not template placeholders
describe('config: secrets from files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-secrets-'));
  /** A secret file under the test's directory, its contents exactly `text`; returns its path. */
  const secretFile = (name: string, text: string) => {
    writeFileSync(join(dir, name), text);
    return join(dir, name);
  };
  const ref = (file: string) => `\${file:${file}}`;
  const withToken = (tokens: string) => good.replace('token: "${FERRY_CACHE_TOKEN}"', tokens);

  /** Everything an error tells: its message, stack and those of its causes. */
  const told = (err: unknown): string => {
    const parts: string[] = [];
    for (let e = err; e instanceof Error; e = e.cause) parts.push(e.message, String(e.stack));
    return parts.join('\n');
  };
  const failure = (text: string): unknown => {
    try {
      parseConfigText(text, { source: 'ferry.yaml', env: {} });
    } catch (err) {
      return err;
    }
    throw new Error('expected an error');
  };

  it('replaces a whole value by the file, one trailing newline removed, in nested keys and arrays alike', () => {
    const read = secretFile('read', 'read-token\n');
    const write = secretFile('write', 'w-token\r\n');
    const twoLines = secretFile('two-lines', 'key-secret\n\n');
    const literal = secretFile('literal', '${HOME}:${file:/etc/passwd}');
    const pw = secretFile('redis-pw', 'redis pass\n');
    const text = [
      'volume: models',
      'source: src',
      'regions:',
      '  src: { store: "file:///var/lib/ferry/src", redis: "redis://127.0.0.1:6379/0" }',
      '  eu:',
      '    store: "s3://models-eu/ferry?region=eu-west-1"',
      `    redis: { sentinels: ["10.0.0.1:26379"], name: mymaster, password: "${ref(pw)}" }`,
      `    cache: { readToken: "${ref(read)}", writeToken: "${ref(write)}" }`,
      `    api: { readToken: "${ref(literal)}", adminToken: "\${ADMIN}" }`,
      'gateway:',
      '  accessKeys:',
      `    - { accessKeyId: first, secretAccessKey: "${ref(twoLines)}" }`,
      `    - { accessKeyId: second, secretAccessKey: "${ref(read)}" }`,
    ].join('\n');
    const config = parseConfigText(text, { env: { ADMIN: 'from-env', HOME: '/root' } });
    expect(config.regions.eu?.cache).toMatchObject({ readToken: 'read-token', writeToken: 'w-token' });
    expect(config.regions.eu?.redis).toMatchObject({ password: 'redis pass' });
    // Only one newline goes; what the file holds is taken as it is, never expanded again.
    expect(config.gateway?.accessKeys).toEqual([
      { accessKeyId: 'first', secretAccessKey: 'key-secret\n' },
      { accessKeyId: 'second', secretAccessKey: 'read-token' },
    ]);
    expect(config.regions.eu?.api).toMatchObject({ readToken: '${HOME}:${file:/etc/passwd}', adminToken: 'from-env' });
    expect(Object.isFrozen(config.gateway?.accessKeys[0])).toBe(true);
  });

  it('takes an empty file as a credential not held, like an empty variable', () => {
    const empty = secretFile('empty', '\n');
    expect(
      parseConfigText(withToken(`readToken: r, writeToken: "${ref(empty)}"`), { env: {} }).regions.eu?.cache?.writeToken,
    ).toBeUndefined();
  });

  it('reports a file that cannot be read in one line naming the key and the file', () => {
    const missing = join(dir, 'nope', 'token');
    mkdirSync(join(dir, 'a-dir'), { recursive: true });
    const big = secretFile('big', 'x'.repeat(1024 * 1024 + 1));
    for (const [file, why] of [
      [missing, 'no such file or directory'],
      [join(dir, 'a-dir'), 'not a regular file'],
      [big, 'larger than 1MiB'],
    ] as const) {
      expect(configError(withToken(`readToken: "${ref(file)}"`))).toBe(
        `invalid config ferry.yaml: regions.eu.cache.readToken: cannot read ${file}: ${why}`,
      );
    }
    const inArray = `${good}gateway: { accessKeys: [{ accessKeyId: k1, secretAccessKey: "${ref(missing)}" }] }\n`;
    expect(configError(inArray, { FERRY_CACHE_TOKEN: 't' })).toBe(
      `invalid config ferry.yaml: gateway.accessKeys.0.secretAccessKey: cannot read ${missing}: no such file or directory`,
    );
  });

  it('refuses a reference inside a longer value, clearly', () => {
    const pw = secretFile('pw', 'hunter2');
    const text = good.replace('redis: "redis://eu-redis:6379/0"', `redis: "redis://:${ref(pw)}@eu-redis:6379/0"`);
    const message = configError(text, { FERRY_CACHE_TOKEN: 't' });
    expect(message).toBe(
      'invalid config ferry.yaml: regions.eu.redis: a ${file:/path} reference must be the whole value (the file holds all of it, e.g. the whole Redis URL)',
    );
    expect(message).not.toContain('hunter2');
    expect(configError(withToken('readToken: "${file:}"'))).toBe(
      'invalid config ferry.yaml: regions.eu.cache.readToken: ${file:} names no file; write ${file:/path}',
    );
    // The whole URL from the file is the way to give a single Redis server's password.
    const url = secretFile('redis-url', 'redis://:hunter2@eu-redis:6379/0\n');
    const whole = good.replace('redis: "redis://eu-redis:6379/0"', `redis: "${ref(url)}"`);
    expect(parseConfigText(whole, { env: { FERRY_CACHE_TOKEN: 't' } }).regions.eu?.redis).toBe('redis://:hunter2@eu-redis:6379/0');
  });

  it('never shows what a file holds in an error, even where the message quotes the value', () => {
    const secret = `S3CRET-${randomUUID()}`;
    const file = secretFile('leaky', `${secret}\n`);
    const cases = [
      [good.replace('source: src', `source: "${ref(file)}"`), `source: "${ref(file)}" is not one of the regions`],
      [good.replace('chunkSize: 8MiB', `chunkSize: "${ref(file)}"`), `chunkSize: invalid size "${ref(file)}"`],
      [good.replace('"redis://eu-redis:6379/0"', `"${ref(file)}"`), 'regions.eu.redis: '],
      [good.replace('"file:///var/lib/ferry/src"', `"${ref(file)}"`), 'regions.src.store: expected a store URL'],
      [good.replace('volume: models', `volume: "${ref(file)}"`), 'volume: expected 1-63 lowercase'],
    ] as const;
    for (const [text, message] of cases) {
      const err = failure(text.replace('"${FERRY_CACHE_TOKEN}"', 't'));
      expect((err as Error).message, message).toContain(`invalid config ferry.yaml: ${message}`);
      expect(told(err), message).not.toContain(secret);
      expect(JSON.stringify(err), message).not.toContain(secret);
    }
  });

  it('reads references from a config file on disk', () => {
    const token = secretFile('cache-token', 'from-a-file\n');
    const path = join(dir, 'ferry.yaml');
    writeFileSync(path, good.replace('"${FERRY_CACHE_TOKEN}"', `"${ref(token)}"`));
    expect(loadConfig(path, {}, { onWarning: () => {} }).regions.eu?.cache?.readToken).toBe('from-a-file');
  });
});
// biome-ignore-end lint/suspicious/noTemplateCurlyInString: config references, not template placeholders
