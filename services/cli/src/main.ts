import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import type { MountCommandOptions } from './commands/mount.js';
import { Context } from './context.js';
import { describeFailure, EXIT_USAGE } from './errors.js';
import { createLogger } from './logger.js';
import { positiveInt } from './options.js';
import { Output } from './output.js';

const version = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

interface CommonOptions {
  config?: string;
  json?: boolean;
}

/** Options every command takes. */
function common(cmd: Command): Command {
  return cmd
    .option('-c, --config <file>', 'config file (default: $FERRY_CONFIG, then ./ferry.yaml)')
    .option('--json', 'print JSON lines instead of text', false);
}

function regionOption(cmd: Command): Command {
  return cmd.option('-r, --region <name>', 'region to read from (default: the source region)');
}

function writeRegionOption(cmd: Command): Command {
  return cmd.option('-r, --region <name>', 'region to write to; only the source region accepts writes (default: the source)');
}

/** A daemon's root logger: JSON lines on stdout (where a supervisor collects them), `info` unless FERRY_LOG_LEVEL says otherwise. */
function serviceLogger(name: string) {
  return createLogger({ name, kind: 'service', destination: 1 });
}

function bestEffortOption(cmd: Command): Command {
  return cmd.option('--best-effort', 'read around cache nodes that refuse the token (a warning) instead of failing', false);
}

function concurrencyOption(cmd: Command, fallback: number): Command {
  return cmd.addOption(
    new Option('-j, --concurrency <n>', 'chunks in flight at once').default(fallback).argParser((v) => positiveInt(v, '--concurrency')),
  );
}

/**
 * Run one action with a loaded config and an output; the context is always closed so the
 * process exits promptly, and any failure becomes one line and an exit code.
 */
function action<A extends unknown[]>(run: (ctx: Context, out: Output, ...args: A) => Promise<void>) {
  return async (...args: unknown[]) => {
    const cmd = args.at(-1) as Command;
    const opts = cmd.optsWithGlobals<CommonOptions>();
    const out = new Output({ json: Boolean(opts.json) });
    const logger = createLogger({ name: 'ferry', kind: 'command', json: Boolean(opts.json) });
    const ctx = Context.load({ configPath: opts.config, logger });
    try {
      await run(ctx, out, ...(args.slice(0, -1) as A));
    } finally {
      await ctx.close();
    }
  };
}

export function buildProgram(): Command {
  const program = new Command('ferry')
    .description('Mirror large model files between clouds, keep edge caches warm, read from the nearest copy.')
    .version(version, '-V, --version')
    .exitOverride()
    // Usage mistakes are one line, like every other error.
    .configureOutput({
      outputError: (text, write) =>
        write(
          `ferry: ${text
            .replace(/^error: /, '')
            .split('\n')[0]
            ?.trim()} (see ferry --help)\n`,
        ),
    });

  common(writeRegionOption(concurrencyOption(program.command('put <local> <path>'), 8)))
    .description('upload a local file or folder to the volume (only missing chunks), committed in one atomic step')
    .action(
      action(async (ctx, out, local: string, path: string, opts: { concurrency: number; region?: string }) =>
        (await import('./commands/files.js')).putCommand(ctx, out, local, path, opts),
      ),
    );

  common(regionOption(concurrencyOption(bestEffortOption(program.command('get <path> <local>')), 8)))
    .description('download a file or folder, sha256 verified, written under a temporary name and renamed')
    .option('--verify-file', 'also hash each whole file and compare it with the sha256 recorded at put or import')
    .action(
      action(
        async (
          ctx,
          out,
          path: string,
          local: string,
          opts: { region?: string; concurrency: number; bestEffort: boolean; verifyFile?: boolean },
        ) => (await import('./commands/files.js')).getCommand(ctx, out, path, local, opts),
      ),
    );

  common(regionOption(bestEffortOption(program.command('cat <path>'))))
    .description('write a file to stdout')
    .action(
      action(async (ctx, out, path: string, opts: { region?: string; bestEffort: boolean }) =>
        (await import('./commands/files.js')).catCommand(ctx, out, path, opts),
      ),
    );

  common(regionOption(program.command('ls [path]').option('-R, --recursive', 'list everything below', false)))
    .description('list a directory')
    .action(
      action(async (ctx, out, path: string | undefined, opts: { recursive: boolean; region?: string }) =>
        (await import('./commands/namespace.js')).lsCommand(ctx, out, path ?? '/', opts),
      ),
    );

  common(regionOption(program.command('stat <path>')))
    .description('size, version, sha256, chunks and mtime of a file')
    .action(
      action(async (ctx, out, path: string, opts: { region?: string }) =>
        (await import('./commands/namespace.js')).statCommand(ctx, out, path, opts),
      ),
    );

  common(regionOption(program.command('revisions <repo>')))
    .description('the retained revisions of a repo under hub.root (id, time, files, bytes; main marked); read one with <path>@<id>')
    .action(
      action(async (ctx, out, path: string, opts: { region?: string }) =>
        (await import('./commands/namespace.js')).revisionsCommand(ctx, out, path, opts),
      ),
    );

  common(writeRegionOption(program.command('rm <path>').option('-R, --recursive', 'remove a directory and everything below', false)))
    .description('remove a file (or a directory with -R) in one atomic step')
    .action(
      action(async (ctx, out, path: string, opts: { recursive: boolean; region?: string }) =>
        (await import('./commands/namespace.js')).rmCommand(ctx, out, path, opts),
      ),
    );

  common(writeRegionOption(program.command('mv <from> <to>')))
    .description('rename a file or directory in one atomic step')
    .action(
      action(async (ctx, out, from: string, to: string, opts: { region?: string }) =>
        (await import('./commands/namespace.js')).mvCommand(ctx, out, from, to, opts),
      ),
    );

  common(
    program
      .command('import <store-url> <path>')
      .option('--delete', 'also remove files imported from this origin whose object is gone', false)
      .option('--dry-run', 'report what would change, write nothing', false)
      .addOption(
        new Option('-j, --concurrency <n>', 'batches committed at once').default(4).argParser((v) => positiveInt(v, '--concurrency')),
      ),
  )
    .description(
      'reference the objects under a bucket prefix (or the files of a Hugging Face repo, hf://org/name[@revision]) as files under <path>, without copying; re-runs commit only changes',
    )
    .action(
      action(async (ctx, out, storeUrl: string, path: string, opts: { delete: boolean; dryRun: boolean; concurrency: number }) =>
        (await import('./commands/import.js')).importCommand(ctx, out, storeUrl, path, opts),
      ),
    );

  const replicator = common(program.command('replicator'))
    .description('run the replication daemon of a region (watcher, copy workers, control API)')
    .requiredOption('-r, --region <name>', 'the region this daemon serves')
    .option('--listen <host:port>', "control API address (default: the region's api.listen)")
    .action(
      action(async (ctx, out, opts: { region: string; listen?: string }) =>
        (await import('./commands/replication.js')).replicatorCommand(ctx, out, opts, serviceLogger('ferry-replicator')),
      ),
    );
  // `--region` belongs to `replicator` (commander gives it to the parent), so read it from there.
  common(replicator.command('retry-failed'))
    .description('queue the copy jobs that failed for good again (ferry replicator --region R retry-failed)')
    .action(
      action(async (ctx, out) =>
        (await import('./commands/replication.js')).retryFailedCommand(ctx, out, { region: replicator.opts<{ region: string }>().region }),
      ),
    );

  common(program.command('gateway'))
    .description('serve the volume of a region as a read-only S3 bucket (SigV4, ListObjectsV2, GetObject with ranges)')
    .requiredOption('-r, --region <name>', 'the region whose store and Redis the gateway reads')
    .option('--listen <host:port>', 'address to listen on (default: gateway.listen of the config)')
    .action(
      action(async (ctx, out, opts: { region: string; listen?: string }) =>
        (await import('./commands/gateway.js')).gatewayCommand(ctx, out, opts, serviceLogger('ferry-gateway')),
      ),
    );

  common(program.command('hub'))
    .description("serve the Hugging Face Hub's read API over a region's repos (HF_ENDPOINT for huggingface_hub, transformers, vLLM)")
    .requiredOption('-r, --region <name>', 'the region whose store and Redis the hub reads')
    .option('--listen <host:port>', 'address to listen on (default: hub.listen of the config)')
    .action(
      action(async (ctx, out, opts: { region: string; listen?: string }) =>
        (await import('./commands/hub.js')).hubCommand(ctx, out, opts, serviceLogger('ferry-hub')),
      ),
    );

  common(program.command('mount <mountpoint>'))
    .description('serve the volume of a region as a read-only file system (FUSE) on <mountpoint> until SIGTERM/SIGINT')
    .requiredOption('-r, --region <name>', 'the region whose metadata and chunks the mount reads')
    .option('--path <dir>', 'volume directory to show as the root of the mount', '/')
    .option('--foreground', 'stay in the foreground (logs on stdout); otherwise run in the background once mounted', false)
    .option('--force', 'detach a stale (or live) mount left on <mountpoint> first', false)
    .option('--allow-other', 'let other users read the mount (FUSE allow_other)', false)
    .option('--direct-io', 'bypass the kernel page cache: every read reaches the mount (no shared mmap, no kernel read-ahead)', false)
    .option(
      '--listen <host:port>',
      "metrics and health address (default: mount.listen of the config, else 127.0.0.1:9400 or a free port when that is busy; 'off' for none)",
    )
    .option('--log <file>', 'log file of the background mount, appended (default: a new file in the temp dir, named in the output)')
    .action(
      action(async (ctx, out, mountpoint: string, opts: MountCommandOptions) =>
        (await import('./commands/mount.js')).mountCommand(ctx, out, mountpoint, opts, serviceLogger('ferry-mount')),
      ),
    );

  common(program.command('cache-node'))
    .description('run a cache node of a region: chunks on local disk up to --capacity (LRU), read-through from the region')
    .requiredOption('-r, --region <name>', 'the region this node serves')
    .requiredOption('--dir <dir>', 'directory for cached chunks (local NVMe)')
    .requiredOption('--capacity <size>', 'bytes the node may hold, e.g. 200GiB')
    .option('--weight <n>', 'share of chunks relative to the other nodes (1:2:3 for 8/16/24 TB)', '1')
    .requiredOption('--listen <host:port>', 'address to serve on')
    .option('--id <id>', 'stable node id (default: the one recorded in --dir, else <hostname>-<port>)')
    .option('--advertise <url>', 'URL other hosts reach this node at (default: from --listen)')
    .action(
      action(
        async (
          ctx,
          out,
          opts: { region: string; dir: string; capacity: string; weight: string; listen: string; id?: string; advertise?: string },
        ) => (await import('./commands/cache-node.js')).cacheNodeCommand(ctx, out, opts, serviceLogger('ferry-cache-node')),
      ),
    );

  common(regionOption(concurrencyOption(program.command('warmup <path>'), 8)))
    .description(
      "put a file or folder on its owners among the region's cache nodes, then print the verified residency. When the region config has an api section (listen + token or open) the warmup is queued on the region's replicator (POST /warmup; warmed behind the copy in a mirror); without one, this command warms through the nodes directly",
    )
    .option(
      '--wait',
      'until residency is 100%: follow the queued warmup, or (direct) warm again what is still missing; fails if it cannot get there',
      false,
    )
    .action(
      action(async (ctx, out, path: string, opts: { region?: string; wait: boolean; concurrency: number }) =>
        (await import('./commands/warmup.js')).warmupCommand(ctx, out, path, opts),
      ),
    );

  common(program.command('gc'))
    .description(
      "delete from a region's store the chunks nothing references for at least --grace (in the source, only once every mirror has applied the change that dropped them), orphan objects and temp files older than --grace",
    )
    .option('-r, --region <name>', 'region whose store to collect (default: the source region)')
    .option('--grace <duration>', "keep what became garbage less than this long ago (default: the region's gc.grace)")
    .option('--dry-run', 'report what would be deleted; delete nothing', false)
    .action(
      action(async (ctx, out, opts: { region?: string; grace?: string; dryRun: boolean }) =>
        (await import('./commands/gc.js')).gcCommand(ctx, out, opts),
      ),
    );

  common(regionOption(program.command('verify [path]')))
    .description(
      "check that every chunk of a path (or the volume) is in a region's store and hashes to its id; exits 1 naming each bad or missing chunk and the files that use it",
    )
    .option('--repair', 'copy bad and missing chunks again (from the source, or in the source from a mirror) and wait for them', false)
    .option('--sample <percent>', 'check this percent of the chunks, chosen at random')
    .action(
      action(async (ctx, out, path: string | undefined, opts: { region?: string; repair: boolean; sample?: string }) =>
        (await import('./commands/verify.js')).verifyCommand(ctx, out, path, opts),
      ),
    );

  common(regionOption(program.command('status [path]')))
    .description('replication state per region: lag, missing chunks, queues, failures; for a path, how complete each region is')
    .action(
      action(async (ctx, out, path: string | undefined, opts: { region?: string }) =>
        (await import('./commands/replication.js')).statusCommand(ctx, out, path, opts),
      ),
    );

  common(program.command('redis-acl'))
    .description(
      "print the Redis users of a region, one per role (writer, replicator, reader, cache node, and on the source one per mirror), with rules made from Ferry's key schema; passwords are read from, or made in, --secrets",
    )
    .requiredOption('-r, --region <name>', 'the region whose Redis the users are for')
    .option('--format <format>', 'acl-file (lines for an aclfile) or commands (ACL SETUSER)', 'acl-file')
    .requiredOption('--secrets <dir>', 'directory with a password file per user (<dir>/<user>); missing ones are made')
    .action(
      action(async (ctx, out, opts: { region: string; format: string; secrets: string }) =>
        (await import('./commands/redis-acl.js')).redisAclCommand(ctx, out, opts),
      ),
    );

  program
    .command('demo')
    .description('run Ferry end to end on local disk with a private redis-server (no config needed)')
    .option('--dir <dir>', 'working directory', '.ferry-demo')
    .option('--json', 'print JSON lines instead of text', false)
    .action(async (opts: { dir: string; json: boolean }) =>
      (await import('./commands/demo.js')).demoCommand(new Output({ json: opts.json }), opts),
    );

  return program;
}

/** Run the CLI; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version exit 0; usage mistakes were already printed by commander.
      return err.exitCode === 0 ? 0 : EXIT_USAGE;
    }
    const failure = describeFailure(err);
    process.stderr.write(`${failure.line}\n`);
    if (!failure.expected && process.env.FERRY_DEBUG) process.stderr.write(`${(err as Error).stack}\n`);
    return failure.exitCode;
  }
}
