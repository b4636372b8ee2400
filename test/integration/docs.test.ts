import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildProgram } from '@ferry/cli';
import { type FerryConfig, parseConfig, parseConfigText, parseDuration, parseSize, schemaDefaults } from '@ferry/core';
import { type Command, CommanderError } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type CliWorkspace,
  cliWorkspace,
  type FerryProcess,
  runFerry,
  sourceOnlyConfig,
  spawnFerry,
  writeFerryConfig,
} from '../support/cli.js';
import { type CommandLine, commandLines, configExamples, docFiles, documentedDefaults } from '../support/doc-snippets.js';
import { uniqueName } from '../support/random.js';

/*
 * The docs, executed: every `ferry …` line of README.md, docs/*.md and the package READMEs is
 * parsed by the real command line program (an unknown command or flag, a missing or extra
 * argument, a bad flag value fails), every ferry.yaml example by the real config parser, every
 * default of the README's config reference is compared with the schema's, and the README's own
 * walk-through runs against a real Redis and store.
 */

const where = (w: { file: string; line: number }) => `${w.file}:${w.line}`;

/** The real program with every action replaced by nothing: parsing only. */
function parsingProgram(): { program: Command; errors: string[] } {
  const program = buildProgram();
  const errors: string[] = [];
  const quiet = (cmd: Command) => {
    cmd.configureOutput({ writeOut: () => {}, writeErr: () => {}, outputError: (text) => void errors.push(text.trim()) });
    cmd.exitOverride();
    // The root keeps no action of its own, so an unknown command stays one.
    if (cmd !== program) cmd.action(() => {});
    for (const sub of cmd.commands) quiet(sub);
  };
  quiet(program);
  return { program, errors };
}

/** The command a line names (`replicator retry-failed` is a command of `replicator`). */
function commandOf(program: Command, args: readonly string[]): Command | undefined {
  let cmd: Command | undefined = program;
  let found: Command | undefined;
  for (const word of args) {
    if (word.startsWith('-')) continue;
    const sub: Command | undefined = cmd?.commands.find((c) => c.name() === word || c.aliases().includes(word));
    if (!sub) break;
    found = sub;
    cmd = sub;
  }
  return found;
}

/** Why the program refuses a documented line, or undefined when it takes it. */
async function refusal(line: CommandLine): Promise<string | undefined> {
  const { program, errors } = parsingProgram();
  if (line.placeholder) {
    // `ferry import …`: check what is written, the command and each flag.
    const cmd = commandOf(program, line.args);
    if (!cmd && line.args.length > 0 && !line.args[0]?.startsWith('-')) return `unknown command "${line.args[0]}"`;
    const known = new Set<string>(['-h', '--help']);
    for (let c: Command | null = cmd ?? program; c; c = c.parent) {
      for (const o of c.options) for (const flag of [o.short, o.long]) if (flag) known.add(flag);
    }
    const flags = line.args.filter((w) => /^--?[A-Za-z]/.test(w)).map((w) => w.split('=')[0] as string);
    const unknown = flags.filter((f) => !known.has(f));
    return unknown.length > 0 ? `unknown option ${unknown.join(', ')}` : undefined;
  }
  try {
    await program.parseAsync(line.args, { from: 'user' });
    return undefined;
  } catch (err) {
    if (err instanceof CommanderError && err.exitCode === 0) return undefined; // --help, --version
    return errors.join(' ') || String(err);
  }
}

/** A dummy value for each `${NAME}` of an example: long enough for any secret the schema wants. */
function exampleEnv(text: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const m of text.matchAll(/\$\{(\w+)(?::-[^}]*)?\}/g)) env[m[1] as string] = `example-${(m[1] as string).toLowerCase()}-value`;
  return env;
}

/**
 * An example's `${file:/path}` references pointed at files under `dir`, each holding one dummy
 * value that every key taking a secret accepts (a token, a password, a whole Redis URL).
 */
async function withSecretFiles(text: string, dir: string): Promise<string> {
  const files = [...new Set([...text.matchAll(/\$\{file:([^}]+)\}/g)].map((m) => m[1] as string))];
  let out = text;
  for (const [i, file] of files.entries()) {
    const local = join(dir, `secret-${i}`);
    await writeFile(local, 'redis://example-secret@127.0.0.1:6379/0\n');
    out = out.replaceAll(`\${file:${file}}`, `\${file:${local}}`);
  }
  return out;
}

/** A partial example (a `regions:` or `mount:` section) inside the smallest config that parses. */
function asWholeConfig(text: string): string {
  const filled = text.replaceAll('…', '"file:///var/lib/ferry/example"');
  const keys = new Set(filled.split('\n').flatMap((l) => /^([A-Za-z]\w*):/.exec(l)?.[1] ?? []));
  const base: Record<string, string> = {
    volume: 'volume: models',
    source: 'source: src',
    regions: 'regions:\n  src: { store: "file:///var/lib/ferry/src", redis: "redis://127.0.0.1:6379/0" }',
  };
  const missing = Object.entries(base)
    .filter(([k]) => !keys.has(k))
    .map(([, v]) => v);
  return [...missing, filled].join('\n');
}

/** The schema's value at a documented key (`regions.<r>.gc.grace` → the defaults' region `r`). */
function schemaValue(defaults: FerryConfig, key: string): unknown {
  let value: unknown = defaults;
  for (const part of key.replace(/^regions\.(<r>|R)\./, 'regions.r.').split('.')) {
    value = (value as Record<string, unknown> | undefined)?.[part];
  }
  return value;
}

/** A documented default in the schema's terms: a size, a duration or a number. */
function documentedValue(text: string, schema: unknown): unknown {
  if (typeof schema === 'boolean') return text === 'true';
  if (typeof schema !== 'number') return text;
  if (/^\d+$/.test(text.replaceAll(',', ''))) return Number(text.replaceAll(',', ''));
  if (/[KMGT]i?B$/.test(text)) return parseSize(text);
  return parseDuration(text);
}

describe('the docs, checked against the code', () => {
  const lines = commandLines();

  it('finds what it checks: command lines and config examples in every doc that has them', () => {
    const files = new Set(lines.map((l) => l.file));
    expect(files).toContain('README.md');
    expect(files).toContain('docs/operations.md');
    expect(files).toContain('services/mount/README.md');
    expect(lines.length).toBeGreaterThan(40);
    expect(docFiles().length).toBeGreaterThan(10);
  });

  it('every documented `ferry …` line is a command the CLI knows, with flags it takes', async () => {
    const refused: string[] = [];
    for (const line of lines) {
      const why = await refusal(line);
      if (why) refused.push(`${where(line)}: ${line.text}: ${why}`);
    }
    expect(refused).toEqual([]);
  });

  it('a line with an unknown command or flag is refused (the check can fail)', async () => {
    const line = (text: string): CommandLine => ({
      file: 'x',
      line: 1,
      text,
      args: text.split(' ').slice(1),
      minimal: [],
      placeholder: text.includes('…'),
    });
    expect(await refusal(line('ferry gc --dry-run'))).toBeUndefined();
    expect(await refusal(line('ferry gc --dry-rnu'))).toMatch(/unknown option/);
    expect(await refusal(line('ferry collect'))).toMatch(/unknown command/);
    expect(await refusal(line('ferry import … --delte'))).toMatch(/unknown option --delte/);
    expect(await refusal(line('ferry rm'))).toMatch(/missing required argument/);
  });

  it('every ferry.yaml example parses with the real config parser', async () => {
    const topLevel = new Set(Object.keys(schemaDefaults()));
    for (const k of ['volume', 'source', 'regions', 'gateway', 'mount', 'replicator', 'log', 'reader', 'chunkSize']) topLevel.add(k);
    const examples = configExamples(topLevel);
    expect(examples.map((e) => e.file)).toEqual(expect.arrayContaining(['README.md', 'docs/operations.md']));
    const secrets = await mkdtemp(join(tmpdir(), 'ferry-docs-secrets-'));
    const refused: string[] = [];
    try {
      for (const example of examples) {
        try {
          const text = await withSecretFiles(asWholeConfig(example.text), secrets);
          parseConfigText(text, { source: where(example), env: exampleEnv(example.text) });
        } catch (err) {
          refused.push((err as Error).message);
        }
      }
    } finally {
      await rm(secrets, { recursive: true, force: true });
    }
    expect(refused).toEqual([]);
    // And the parser does refuse a key the schema does not have.
    expect(() => parseConfigText(asWholeConfig('mount:\n  stopTimeot: 10s'), {})).toThrow(/stopTimeot/);
  });

  it("every default in the README's config reference is the schema's", () => {
    const rows = documentedDefaults();
    // The main table's keys and the limits named in the credentials table.
    expect(rows.length).toBeGreaterThanOrEqual(14);
    expect(rows.map((r) => r.key)).toEqual(expect.arrayContaining(['replicator.leaseTtl', 'regions.R.cache.limits.headersTimeout']));
    const defaults = schemaDefaults();
    const wrong: string[] = [];
    for (const row of rows) {
      const schema = schemaValue(defaults, row.key);
      if (schema === undefined) {
        wrong.push(`${where(row)}: ${row.key} is not a key of the schema`);
        continue;
      }
      const documented = documentedValue(row.documented, schema);
      if (documented !== schema) wrong.push(`${where(row)}: ${row.key} documented ${row.documented}, the schema says ${String(schema)}`);
    }
    expect(wrong).toEqual([]);
    // A wrong default is found.
    expect(documentedValue('5s', schemaValue(defaults, 'replicator.leaseTtl'))).not.toBe(schemaValue(defaults, 'replicator.leaseTtl'));
    // The README's mount example says its values are the defaults.
    const mount = parseConfig({
      volume: 'v',
      source: 's',
      regions: { s: { store: 'file:///x', redis: 'redis://h:1/0' } },
      mount: {},
    }).mount;
    expect([mount.attrTimeout, mount.opTimeout, mount.stopTimeout, mount.open]).toEqual([
      parseDuration('1s'),
      parseDuration('60s'),
      parseDuration('10s'),
      false,
    ]);
  });
});

describe("the README's walk-through, run", () => {
  let ws: CliWorkspace;
  let config: string;
  let cwd: string;

  beforeAll(async () => {
    ws = await cliWorkspace('docs');
    const doc = sourceOnlyConfig(uniqueName('docs'), `file://${join(ws.work, 'store')}`, ws.redisUrl, {
      chunkSize: '1MiB',
      gateway: { listen: '127.0.0.1:0', accessKeys: [{ accessKeyId: 'ferry-reader', secretAccessKey: 'docs-gateway-secret' }] },
    });
    (doc.regions.src as unknown as Record<string, unknown>).cache = { readToken: 'docs-read-token', writeToken: 'docs-write-token' };
    config = await writeFerryConfig(ws.work, doc);
    cwd = join(ws.work, 'cwd');
    await mkdir(join(cwd, 'llama-3-8b'), { recursive: true });
    await writeFile(join(cwd, 'llama-3-8b', 'config.json'), '{"architectures":["Llama"]}\n');
    await writeFile(join(cwd, 'llama-3-8b', 'model.safetensors'), Buffer.alloc(3 << 20, 7));
  });

  afterAll(async () => {
    await ws?.close();
  });

  it('its commands and daemons, as the README shows them, run against a real Redis, store and cache node', async () => {
    // The "Using it" lines that need no other cloud, in an order that works: writes, reads, the
    // daemons (started, then stopped with SIGTERM; a warmup while the cache node runs), then the
    // moves and removals. Regions become the one region here, listen addresses free ports.
    const order = [
      'put',
      'ls',
      'stat',
      'get',
      'cat',
      'status',
      'verify',
      'gc',
      'cache-node',
      'warmup',
      'gateway',
      'replicator',
      'mv',
      'rm',
    ];
    const readme = commandLines(['README.md']).filter((l) => !l.placeholder && l.minimal[1] !== 'retry-failed');
    const byCommand = new Map<string, CommandLine>();
    for (const l of readme)
      if (order.includes(l.minimal[0] as string) && !byCommand.has(l.minimal[0] as string)) byCommand.set(l.minimal[0] as string, l);
    expect([...byCommand.keys()].sort()).toEqual([...order].sort());
    const daemons: FerryProcess[] = [];
    try {
      for (const name of order) {
        const line = byCommand.get(name) as CommandLine;
        const args = line.minimal.map((w, i) => {
          const flag = line.minimal[i - 1];
          return flag === '--region' ? 'src' : flag === '--listen' ? '127.0.0.1:0' : flag === '--dir' ? join(ws.work, 'node') : w;
        });
        const shown = `${where(line)}: ferry ${args.join(' ')}`;
        if (name === 'cache-node' || name === 'gateway' || name === 'replicator') {
          const daemon = spawnFerry([...args, '--json'], { config, cwd, env: { FERRY_LOG_LEVEL: 'warn' } });
          await new Promise<void>((resolve, reject) => {
            daemon.onLine((text) => {
              if (text.includes('"event":"started"')) resolve();
            });
            void daemon.result.then((r) => reject(new Error(`${shown} exited ${r.code}: ${r.stderr}`)));
          });
          if (name === 'cache-node') daemons.push(daemon);
          else {
            daemon.child.kill('SIGTERM');
            expect((await daemon.result).code, shown).toBe(0);
          }
          continue;
        }
        const result = await runFerry(args, { config, cwd });
        expect(result.code, `${shown}: ${result.stderr}`).toBe(0);
        expect(result.stderr, shown).toBe('');
      }
    } finally {
      for (const d of daemons) d.child.kill('SIGTERM');
      for (const d of daemons) expect((await d.result).code).toBe(0);
    }
    await rm(join(cwd, 'out'), { recursive: true, force: true });
  });
});
