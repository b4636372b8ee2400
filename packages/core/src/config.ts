import { readFileSync, statSync } from 'node:fs';
import yaml from 'js-yaml';
import { z } from 'zod';
import { apiSection, cacheSection, dataLimits, deprecatedKeys, duration, secret, serverTls, size } from './config-sections.js';
import { InvalidConfigError, localIoError, messageOf } from './errors.js';
import { normalizePath } from './paths.js';
import { redisTargetSchema } from './redis-target.js';

const hostPort = z.string().regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'expected host:port, e.g. 127.0.0.1:7600');

/**
 * Where `ferry mount` serves metrics and health when `mount.listen` is not set. Unset is not the
 * same as set to this: only an unset address gives way to a free port when it is busy.
 */
export const MOUNT_LISTEN_DEFAULT = '127.0.0.1:9400';

const storeUrl = z
  .string()
  .regex(/^(file|s3|gs|memory):\/\/\S*$/, 'expected a store URL: file:///dir, s3://bucket/prefix, gs://bucket/prefix or memory://name');

const volumePathSchema = z.string().transform((value, ctx) => {
  try {
    return normalizePath(value);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: messageOf(err) });
    return z.NEVER;
  }
});

/**
 * A warm rule: every new or changed file under `path` is put on the region's cache nodes as soon
 * as its chunks are in the region (`replicas` owners per chunk; default: `cache.replicas`).
 */
const warmRuleSchema = z
  .object({
    path: volumePathSchema,
    replicas: z.number().int().min(1).max(8).optional(),
  })
  .strict();

const regionSchema = z
  .object({
    store: storeUrl,
    redis: redisTargetSchema,
    cache: cacheSection.optional(),
    api: apiSection.optional(),
    copy: z
      .object({
        concurrency: z.number().int().min(1).max(256).default(8),
        bytesPerSecond: size.optional(),
        attempts: z.number().int().min(1).max(100).default(8),
        /** How often the leading watcher compares what the region references with what it holds and queues what is missing. */
        reconcileEvery: duration.default(60_000).refine((ms) => ms >= 100, 'must be at least 100ms'),
        /**
         * How often a reconcile pass walks every entry; between, a pass with nothing missing and
         * nothing failing costs two counts (a restart or a resync makes the next pass a full one).
         */
        fullReconcileEvery: duration.default(86_400_000).refine((ms) => ms >= 100, 'must be at least 100ms'),
        /** Most copy jobs the queue holds at once; the reconciler refills it as copies finish. */
        backlog: z.number().int().min(1).max(1_000_000).default(10_000),
      })
      .strict()
      // Every region has copy settings (the source's copy workers serve repairs), so the defaults
      // above are the only ones: code reads `copy.concurrency`, never `?? 8`.
      .prefault({}),
    warm: z.array(warmRuleSchema).max(100).default([]),
    /** Garbage collection by the region's leading daemon; none when absent. */
    gc: z
      .object({
        every: duration.default(3_600_000).refine((ms) => ms >= 100, 'must be at least 100ms'),
        /** A chunk unreferenced (or an orphan object) for less than this is kept. */
        grace: duration.default(86_400_000),
      })
      .strict()
      .optional(),
    /** Background scrub: re-read every chunk of the region's store at this rate; none when absent. */
    scrub: z
      .object({ bytesPerSecond: size.default(50 * 2 ** 20).refine((n) => n >= 1024, 'must be at least 1KiB') })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((region, ctx) => {
    if (region.warm.length > 0 && !region.cache) {
      ctx.addIssue({ code: 'custom', path: ['warm'], message: "warm rules need the region's cache nodes: set a cache section" });
    }
  })
  // A rule without `replicas` takes the region's: filled in here so the default lives in the schema.
  .transform((region) => ({
    ...region,
    warm: region.warm.map((rule) => ({ path: rule.path, replicas: rule.replicas ?? region.cache?.replicas ?? 2 })),
  }));

const configSchema = z
  .object({
    volume: z
      .string()
      .regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'expected 1-63 lowercase letters, digits, ".", "_" or "-", starting with a letter or digit'),
    chunkSize: size.default(8 * 2 ** 20).refine((n) => n >= 1024 && n <= 2 ** 30, 'must be between 1KiB and 1GiB'),
    source: z.string().min(1),
    regions: z.record(
      z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, 'region names are 1-32 lowercase letters, digits, "_" or "-"'),
      regionSchema,
    ),
    gateway: z
      .object({
        listen: hostPort.default('127.0.0.1:9000'),
        /** Serve without signatures (read-only data becomes public on that address). Off by default. */
        anonymous: z.boolean().default(false),
        /** Keys S3 clients sign with (SigV4). Secrets usually come from `${ENV}` references. */
        accessKeys: z.array(z.object({ accessKeyId: z.string().min(3).max(128), secretAccessKey: z.string().min(8) }).strict()).default([]),
        region: z.string().min(1).default('us-east-1'),
        /** Serve HTTPS only (PEM paths, reloaded on SIGHUP). */
        tls: serverTls.optional(),
        limits: dataLimits({ maxStreams: 256, maxBytesInFlight: 2 ** 30 }),
      })
      .strict()
      .optional(),
    hub: z
      .object({
        listen: hostPort.default('127.0.0.1:8090'),
        /** The folder whose repos Hugging Face clients see: model `org/name` is `<root>/org/name`, dataset `<root>/datasets/org/name`. */
        root: z.string().default('/hf').refine(isFolderPath, 'expected an absolute folder such as /hf, without a trailing /'),
        /** The bearer token clients send (`HF_TOKEN`); without it every repo request is refused with 401. */
        readToken: secret.optional(),
        /** Token for the Hugging Face Hub itself (imports and origin reads of gated repos); usually "${HF_TOKEN:-}". */
        token: secret.optional(),
        /** Serve without a token (the repos under root become readable by anyone who reaches the address). Off by default. */
        anonymous: z.boolean().default(false),
        /** Revisions kept per repo, newest first (their chunks held against garbage collection in every region). */
        keepRevisions: z.number().int().min(1).max(10_000).default(10),
        /** Revisions younger than this are kept whatever their number. */
        keepFor: duration.default(7 * 24 * 3600 * 1000),
        /** Files of at least this size are shown as LFS files (ETag the sha256); smaller ones carry their git blob sha1. */
        lfsThreshold: size.default(10 * 2 ** 20),
        /** Serve HTTPS only (PEM paths, reloaded on SIGHUP). */
        tls: serverTls.optional(),
        limits: dataLimits({ maxStreams: 256, maxBytesInFlight: 2 ** 30 }),
      })
      .strict()
      .optional(),
    writer: z
      .object({
        /**
         * A running put holds the chunks it staged against garbage collection for this long,
         * renewed every third of it; a put killed keeps its uploads from GC this long after.
         */
        holdTtl: duration.default(60_000).refine((ms) => ms >= 1000, 'must be at least 1s'),
      })
      .strict()
      .prefault({}),
    reader: z
      .object({
        memoryBytes: size.default(256 * 2 ** 20),
        prefetch: z.number().int().min(0).max(64).default(4),
      })
      .strict()
      .prefault({}),
    mount: z
      .object({
        /** How long the kernel and the mount keep attributes and names: changes show within about this. */
        attrTimeout: duration.default(1000).refine((ms) => ms >= 0 && ms <= 60_000, 'must be between 0s and 60s'),
        /** A file system call that takes longer fails (EIO in the caller), e.g. a read no tier answers. */
        opTimeout: duration.default(60_000).refine((ms) => ms >= 1000 && ms <= 3_600_000, 'must be between 1s and 1h'),
        /** How long a stopping mount that is busy keeps serving its open files after the lazy detach. */
        stopTimeout: duration.default(10_000).refine((ms) => ms <= 600_000, 'must be at most 10m'),
        /**
         * Metrics and health address. Unset: MOUNT_LISTEN_DEFAULT, or a free port on its host when
         * another process (a second mount on the host) holds it; a set address that is busy fails.
         */
        listen: hostPort.optional(),
        /** Serve /metrics without a token. Off by default. */
        open: z.boolean().default(false),
      })
      .strict()
      .prefault({}),
    log: z
      .object({ maxLen: z.number().int().min(100).default(1_000_000) })
      .strict()
      .prefault({}),
    replicator: z
      .object({
        /** The watcher lease: a leader that stops renewing it is replaced after about this long. */
        leaseTtl: duration.default(10_000).refine((ms) => ms >= 300, 'must be at least 300ms'),
        /** SIGTERM ends a daemon (replicator, cache node, gateway) within this long, whatever it waits on. */
        stopTimeout: duration.default(10_000).refine((ms) => ms >= 100, 'must be at least 100ms'),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .superRefine((cfg, ctx) => {
    if (!(cfg.source in cfg.regions)) {
      ctx.addIssue({
        code: 'custom',
        path: ['source'],
        message: `"${cfg.source}" is not one of the regions (${Object.keys(cfg.regions).join(', ') || 'none'})`,
      });
    }
  });

export type FerryConfig = z.output<typeof configSchema>;
export type RegionConfig = FerryConfig['regions'][string];
export type WarmRule = RegionConfig['warm'][number];

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value as object)) deepFreeze(child);
  }
  return value;
}

/** A value read from a file by `${file:/path}`, and how messages show it instead. */
interface FileSecret {
  value: string;
  shown: string;
}

/** `${file:/path}`: the whole value is the contents of that file. */
const FILE_REFERENCE = /^\$\{file:([^}]*)\}$/;

/** Largest file a `${file:}` reference reads: a token or password, never a data file (or /dev/zero). */
const MAX_SECRET_FILE_BYTES = 1024 * 1024;

/**
 * The contents of a secret file (a Kubernetes secret mounted as a file), with one trailing
 * newline removed. Errors name the file, never its contents.
 */
function readSecretFile(file: string): string {
  let text: string;
  try {
    const stat = statSync(file);
    if (!stat.isFile()) throw new InvalidConfigError(`cannot read ${file}: not a regular file`);
    if (stat.size > MAX_SECRET_FILE_BYTES) throw new InvalidConfigError(`cannot read ${file}: larger than 1MiB`);
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof InvalidConfigError) throw err;
    throw new InvalidConfigError(localIoError(err, 'cannot read', file).message, { cause: err });
  }
  return text.replace(/\r?\n$/, '');
}

/**
 * Replace references in every string of the parsed document, once, before validation:
 * `${file:/path}` (the whole value) by the file's contents, and `${NAME}` and `${NAME:-default}`
 * by the environment. Done after YAML parsing, so a value can never inject YAML structure; what a
 * file or a variable holds is taken as it is (never expanded again). Values read from files are
 * added to `secrets`, so that no message shows them.
 */
function expandReferences(value: unknown, env: NodeJS.ProcessEnv, path: string[], secrets: FileSecret[]): unknown {
  if (typeof value === 'string') {
    const key = path.join('.') || '(root)';
    const file = FILE_REFERENCE.exec(value)?.[1];
    if (file !== undefined) {
      if (file === '') throw new InvalidConfigError(`${key}: \${file:} names no file; write \${file:/path}`);
      try {
        const secret = readSecretFile(file);
        secrets.push({ value: secret, shown: value });
        return secret;
      } catch (err) {
        throw new InvalidConfigError(`${key}: ${messageOf(err)}`, { cause: err });
      }
    }
    if (value.includes('${file:')) {
      throw new InvalidConfigError(
        `${key}: a \${file:/path} reference must be the whole value (the file holds all of it, e.g. the whole Redis URL)`,
      );
    }
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (_m, name: string, fallback?: string) => {
      const found = env[name];
      if (found !== undefined && found !== '') return found;
      if (fallback !== undefined) return fallback;
      throw new InvalidConfigError(`${key}: environment variable ${name} is not set`);
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => expandReferences(v, env, [...path, String(i)], secrets));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, expandReferences(v, env, [...path, k], secrets)]));
  }
  return value;
}

/** `text` with every value read from a file shown as its reference instead (longest first). */
function withoutSecrets(text: string, secrets: readonly FileSecret[]): string {
  let out = text;
  for (const { value, shown } of [...secrets].sort((a, b) => b.value.length - a.value.length)) {
    if (value !== '') out = out.split(value).join(shown);
  }
  return out;
}

export interface ParseConfigOptions {
  /** Where the document came from, for messages. */
  source?: string;
  env?: NodeJS.ProcessEnv;
  /**
   * Told once per parse about deprecated keys still in use (one line). Default: a process warning,
   * once per process for the same line.
   */
  onWarning?: (message: string) => void;
}

const warned = new Set<string>();

function processWarning(message: string): void {
  if (warned.has(message)) return;
  warned.add(message);
  process.emitWarning(message, { type: 'DeprecationWarning', code: 'FERRY_CONFIG_TOKEN' });
}

/** One line naming every deprecated single-token key of a document, or undefined. */
function deprecationWarning(doc: unknown, where: string | undefined): string | undefined {
  const keys = deprecatedKeys(doc);
  if (keys.length === 0) return undefined;
  return `${where ? `${where}: ` : ''}${keys.join(', ')}: "token" is deprecated and means both roles; use readToken + writeToken (cache) or readToken + adminToken (api)`;
}

/** Validate an already-parsed config document; returns a frozen config. */
export function parseConfig(doc: unknown, options: ParseConfigOptions = {}): FerryConfig {
  const where = options.source ? `invalid config ${options.source}` : 'invalid config';
  let expanded: unknown;
  const secrets: FileSecret[] = [];
  try {
    // biome-ignore lint/style/noProcessEnv: known exception to "only services read process.env"; callers should pass env.
    expanded = expandReferences(doc, options.env ?? process.env, [], secrets);
  } catch (err) {
    throw new InvalidConfigError(`${where}: ${messageOf(err)}`, { cause: err });
  }
  const result = configSchema.safeParse(expanded);
  if (!result.success) {
    const [first, ...rest] = result.error.issues;
    const field = first?.path.length ? first.path.join('.') : '(root)';
    const more = rest.length > 0 ? ` (and ${rest.length} more problem${rest.length > 1 ? 's' : ''})` : '';
    // A message that quotes a value (`"…" is not one of the regions`) shows a file's reference, never its contents.
    const message = withoutSecrets(`${where}: ${field}: ${first?.message ?? 'invalid'}${more}`, secrets);
    const quoted = withoutSecrets(result.error.message, secrets) !== result.error.message;
    throw new InvalidConfigError(message, quoted ? {} : { cause: result.error });
  }
  const warning = deprecationWarning(expanded, options.source);
  if (warning) (options.onWarning ?? processWarning)(warning);
  return deepFreeze(result.data);
}

/** Parse YAML text into a frozen config. */
export function parseConfigText(text: string, options: ParseConfigOptions = {}): FerryConfig {
  let doc: unknown;
  try {
    // The core schema: YAML 1.2's types (no timestamps or !!binary), as the config needs.
    doc = yaml.load(text, { schema: yaml.CORE_SCHEMA, ...(options.source ? { filename: options.source } : {}) });
  } catch (err) {
    const where = options.source ?? 'config';
    const detail = err instanceof yaml.YAMLException ? yamlProblem(err) : messageOf(err);
    throw new InvalidConfigError(`invalid config ${where}: not valid YAML: ${detail}`, { cause: err });
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new InvalidConfigError(
      `invalid config ${options.source ?? ''}: expected a mapping with volume, source and regions`.replace('  ', ' '),
    );
  }
  return parseConfig(doc, options);
}

/** js-yaml's reason and where, in one line: `duplicated mapping key at line 4, column 3`. */
function yamlProblem(err: yaml.YAMLException): string {
  const at = err.mark ? ` at line ${err.mark.line + 1}, column ${err.mark.column + 1}` : '';
  return `${err.reason ?? err.message.split('\n')[0]}${at}`;
}

/** Read and validate a config file (`--config` or `FERRY_CONFIG`). */
export function loadConfig(
  path: string,
  // biome-ignore lint/style/noProcessEnv: known exception to "only services read process.env"; callers should pass env.
  env: NodeJS.ProcessEnv = process.env,
  options: Pick<ParseConfigOptions, 'onWarning'> = {},
): FerryConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const e = localIoError(err, 'cannot read config', path);
    throw new InvalidConfigError(e.message, { cause: err });
  }
  return parseConfigText(text, { source: path, env, ...options });
}

/**
 * The schema's defaults of every section, as a config that sets nothing but what is required
 * (one region `r` with cache, api and gc sections, a gateway): what code outside the composition
 * root (tests, benchmarks) takes when it needs a default, so no default is written twice.
 */
export function schemaDefaults(): FerryConfig {
  defaults ??= parseConfig({
    volume: 'defaults',
    source: 'r',
    regions: { r: { store: 'memory://defaults', redis: 'redis://127.0.0.1:6379/0', cache: {}, api: {}, gc: {}, scrub: {} } },
    gateway: {},
  });
  return defaults;
}

let defaults: FerryConfig | undefined;

function isFolderPath(s: string): boolean {
  try {
    return s !== '/' && s.startsWith('/') && normalizePath(s) === s;
  } catch {
    return false;
  }
}

/** The config of one region, or a clear error naming the known ones. */
export function regionConfig(config: FerryConfig, name: string): RegionConfig {
  const region = config.regions[name];
  if (!region) {
    throw new InvalidConfigError(`unknown region "${name}": the config has ${Object.keys(config.regions).join(', ')}`);
  }
  return region;
}
