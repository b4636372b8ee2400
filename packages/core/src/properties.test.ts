import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CHUNK_ID_PATTERN, chunkDigest, chunkKey, externalChunkId, isNativeChunkId, nativeChunkId, parseChunkId } from './chunk-id.js';
import { parseConfig } from './config.js';
import { FerryError } from './errors.js';
import { isWithin, joinPath, MAX_PATH_BYTES, normalizePath } from './paths.js';

// Properties over generated inputs: no crash (only Ferry errors), no escape from the volume, and
// every rejection is one line a person can read.

const RUNS = 3_000;

/** Strings that look like paths: segments of tricky pieces joined by "/". */
const pathLike = fc
  .array(
    fc.oneof(
      fc.constantFrom('', '.', '..', '...', '%2e%2e', '\\', '\0', '\n', ' ', '~', 'a', 'é', '名前', '\u2028'),
      fc.string({ unit: 'grapheme' }),
    ),
    {
      maxLength: 12,
    },
  )
  .map((parts) => parts.join('/'));

/** The message of the Ferry error `fn` throws, failing on anything else (a crash). */
function rejection(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    if (!(err instanceof FerryError)) throw err;
    return err.message;
  }
}

function oneLine(message: string): boolean {
  return message.length > 0 && !/[\r\n]/.test(message);
}

describe('path normalization', () => {
  it('accepts only absolute, normalised paths that stay inside the volume, and refuses in one line', () => {
    fc.assert(
      fc.property(fc.oneof(pathLike, fc.string({ unit: 'binary' }), fc.string({ unit: 'grapheme', maxLength: 1200 })), (input) => {
        let path: string;
        try {
          path = normalizePath(input);
        } catch (err) {
          expect(err).toBeInstanceOf(FerryError);
          expect(oneLine((err as Error).message), (err as Error).message).toBe(true);
          return;
        }
        expect(path.startsWith('/')).toBe(true);
        expect(normalizePath(path)).toBe(path);
        expect(isWithin(path, '/')).toBe(true);
        const segments = path === '/' ? [] : path.slice(1).split('/');
        for (const s of segments) expect(['', '.', '..']).not.toContain(s);
        expect(path).not.toMatch(/[\0\\]/);
        expect(Buffer.byteLength(path)).toBeLessThanOrEqual(MAX_PATH_BYTES);
      }),
      { numRuns: RUNS },
    );
  });

  it('a name joined under a directory stays under it or is refused', () => {
    fc.assert(
      fc.property(fc.constantFrom('/', '/models', '/models/llama'), pathLike, (dir, name) => {
        const message = rejection(() => {
          expect(isWithin(joinPath(dir, name), dir)).toBe(true);
        });
        if (message !== undefined) expect(oneLine(message)).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });
});

describe('chunk ids', () => {
  it('parse only the two id forms; everything else is one line', () => {
    const hex = fc.stringMatching(/^[0-9a-f]{64}$/);
    const idLike = fc.oneof(
      hex.map((h) => `sha256-${h}`),
      hex.map((h) => `ext-${h}`),
      hex.map((h) => `sha256-${h.toUpperCase()}`),
      fc.tuple(fc.constantFrom('sha256-', 'ext-', 'md5-', '', '../'), fc.string()).map(([p, s]) => p + s),
      fc.anything(),
    );
    fc.assert(
      fc.property(idLike, (value) => {
        const message = rejection(() => {
          const id = parseChunkId(value);
          expect(id).toBe(value);
          expect(CHUNK_ID_PATTERN.test(id)).toBe(true);
          const key = chunkKey(id);
          expect(key).toMatch(/^chunks\/[0-9a-f]{2}\/[0-9a-f]{2}\/(sha256|ext)-[0-9a-f]{64}$/);
          expect(key.endsWith(chunkDigest(id))).toBe(true);
        });
        if (message !== undefined) expect(oneLine(message), message).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });

  it('native ids round-trip their digest; external ids are stable, distinct per source and never native', () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[0-9a-f]{64}$/),
        fc.record({ store: fc.string(), key: fc.string(), etag: fc.string(), offset: fc.nat(), length: fc.integer({ min: 1 }) }),
        fc.nat(),
        (digest, src, other) => {
          const native = nativeChunkId(digest);
          expect(chunkDigest(native)).toBe(digest);
          expect(isNativeChunkId(native)).toBe(true);
          const ext = externalChunkId(src);
          expect(parseChunkId(ext)).toBe(ext);
          expect(isNativeChunkId(ext)).toBe(false);
          expect(externalChunkId({ ...src })).toBe(ext);
          if (other !== src.offset) expect(externalChunkId({ ...src, offset: other })).not.toBe(ext);
        },
      ),
      { numRuns: RUNS },
    );
  });
});

describe('config parsing', () => {
  const region = fc.record(
    {
      store: fc.oneof(fc.constant('file:///var/lib/ferry/src'), fc.constant('s3://b/p'), fc.string()),
      redis: fc.oneof(fc.constant('redis://127.0.0.1:6379/0'), fc.string()),
      cache: fc.record(
        {
          readToken: fc.string(),
          writeToken: fc.string(),
          token: fc.string(),
          replicas: fc.oneof(fc.integer({ min: -2, max: 10 }), fc.string()),
          tls: fc.record({ cert: fc.string(), key: fc.string(), ca: fc.string() }, { requiredKeys: [] }),
          limits: fc.dictionary(
            fc.constantFrom('headersTimeout', 'maxStreams', 'maxBytesInFlight', 'maxHeaderBytes', 'bogus'),
            fc.oneof(fc.string(), fc.integer(), fc.constantFrom('10s', '8MiB', '1ms')),
          ),
        },
        { requiredKeys: [] },
      ),
      api: fc.record(
        {
          listen: fc.oneof(fc.constant('127.0.0.1:7600'), fc.string()),
          readToken: fc.string(),
          adminToken: fc.string(),
          open: fc.boolean(),
        },
        { requiredKeys: [] },
      ),
    },
    { requiredKeys: ['store', 'redis'] },
  );
  const token = fc.stringMatching(/^[A-Za-z0-9]{1,16}$/);
  const duration = fc.oneof(fc.integer({ min: 100, max: 100_000 }), fc.constantFrom('500ms', '2s', '1m', '10 s'));
  /** Documents that are mostly right, with the optional sections in any combination. */
  const likely = fc.record(
    {
      volume: fc.constant('models'),
      source: fc.constant('src'),
      regions: fc.record({
        src: fc.constant({ store: 'file:///var/lib/ferry/src', redis: 'redis://127.0.0.1:6379/0' }),
        eu: fc.record(
          {
            store: fc.constant('s3://b/p?region=eu-west-1'),
            redis: fc.constant('redis://eu:6379/0'),
            cache: fc.record(
              {
                readToken: token,
                writeToken: token,
                token,
                tls: fc.oneof(
                  fc.record({ cert: fc.constant('/c.pem'), key: fc.constant('/k.pem') }),
                  fc.record({ ca: fc.constant('/ca.pem') }),
                ),
                limits: fc.record({ headersTimeout: duration, maxStreams: fc.integer({ min: 0, max: 200_000 }) }, { requiredKeys: [] }),
              },
              { requiredKeys: [] },
            ),
            api: fc.record(
              { readToken: token, adminToken: token, token, limits: fc.record({ idleTimeout: duration }) },
              { requiredKeys: [] },
            ),
          },
          { requiredKeys: ['store', 'redis'] },
        ),
      }),
      gateway: fc.record(
        {
          anonymous: fc.boolean(),
          limits: fc.record({ maxBytesInFlight: fc.constantFrom('1GiB', '512KiB', 2 ** 21) }, { requiredKeys: [] }),
        },
        { requiredKeys: [] },
      ),
    },
    { requiredKeys: ['volume', 'source', 'regions'] },
  );
  const doc = fc.oneof(
    likely,
    fc.record(
      {
        volume: fc.oneof(fc.constant('models'), fc.string()),
        chunkSize: fc.oneof(fc.constant('8MiB'), fc.string(), fc.integer()),
        source: fc.constantFrom('src', 'eu', 'nope'),
        regions: fc.dictionary(fc.constantFrom('src', 'eu', 'EU', 'a b'), region, { minKeys: 0, maxKeys: 3 }),
        gateway: fc.record(
          { listen: fc.string(), anonymous: fc.boolean(), tls: fc.record({ cert: fc.string(), key: fc.string() }) },
          { requiredKeys: [] },
        ),
        extra: fc.anything(),
      },
      { requiredKeys: ['volume', 'source', 'regions'] },
    ),
    fc.anything(),
  );

  it('returns a frozen config or one InvalidConfigError line, never a crash', () => {
    let valid = 0;
    fc.assert(
      fc.property(doc, (d) => {
        try {
          const config = parseConfig(d, { env: {}, onWarning: (m) => expect(oneLine(m)).toBe(true) });
          valid += 1;
          expect(Object.isFrozen(config)).toBe(true);
          expect(config.source in config.regions).toBe(true);
          for (const r of Object.values(config.regions)) {
            // The deprecated alias never survives parsing: code sees roles only.
            expect(r.cache ?? {}).not.toHaveProperty('token');
            if (r.cache?.tls) expect(r.cache.tls.cert === undefined).toBe(r.cache.tls.key === undefined);
          }
        } catch (err) {
          expect((err as FerryError).code, String(err)).toBe('INVALID_CONFIG');
          expect(oneLine((err as Error).message), (err as Error).message).toBe(true);
          expect((err as Error).message.startsWith('invalid config')).toBe(true);
        }
      }),
      { numRuns: RUNS },
    );
    // The generator reaches valid documents too, not only refusals.
    expect(valid).toBeGreaterThan(RUNS / 100);
  });
});
