import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface RunningS3rver {
  /** `http://127.0.0.1:<port>`; use path-style addressing and the access key `S3RVER`. */
  endpoint: string;
  /** The first configured bucket. */
  bucket: string;
  port: number;
  stop(): Promise<void>;
}

export interface S3rverOptions {
  /** Buckets that exist from the start (default: one, `ferry-test`). More can be made with CreateBucket. */
  buckets?: string[];
  /** Where the objects live (default: a temp directory removed by stop()); given, it stays, so a server can be started again on it. */
  directory?: string;
  /** Port to listen on (default: any free one), e.g. the port of a server stopped before, to bring "the same" endpoint back. */
  port?: number;
}

const MAIN = fileURLToPath(new URL('./s3rver-main.mjs', import.meta.url));
const STARTUP_MS = 20_000;

/**
 * s3rver in a child process, on a free loopback port (the child listens on port 0 and reports
 * what it got, so no other process can take the port in between), storing into a temp directory.
 * A child rather than in-process because s3rver needs `--openssl-legacy-provider` (its listing
 * continuation tokens use DES) and its md5-of-every-byte should not share the test's event loop.
 */
export async function startS3rver(options: S3rverOptions = {}): Promise<RunningS3rver> {
  const buckets = options.buckets ?? ['ferry-test'];
  const bucket = buckets[0];
  if (!bucket) throw new Error('startS3rver: at least one bucket');
  const dir = options.directory ?? (await mkdtemp(join(tmpdir(), 'ferry-s3rver-')));
  const owned = options.directory === undefined;
  const child = spawn(process.execPath, ['--openssl-legacy-provider', MAIN, dir, buckets.join(','), String(options.port ?? 0)], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (text: string) => {
    stderr = (stderr + text).slice(-4000);
  });
  let endpoint: string;
  try {
    endpoint = await readReady(child, () => stderr);
  } catch (err) {
    child.kill('SIGKILL');
    if (owned) await rm(dir, { recursive: true, force: true });
    throw err;
  }
  // The test runner's exit must not wait for the server; stop() (or stdin closing) ends it.
  child.unref();
  for (const stream of [child.stdin, child.stdout, child.stderr]) (stream as unknown as { unref?(): void } | null)?.unref?.();
  return {
    endpoint,
    bucket,
    port: Number(new URL(endpoint).port),
    async stop() {
      await stopChild(child);
      if (owned) await rm(dir, { recursive: true, force: true });
    },
  };
}

function readReady(child: ChildProcess, stderr: () => string): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => fail(new Error(`s3rver did not start within ${STARTUP_MS} ms: ${stderr()}`)), STARTUP_MS);
    const fail = (err: Error) => {
      clearTimeout(timer);
      reject(err);
    };
    child.once('error', fail);
    child.once('exit', (code, signal) => fail(new Error(`s3rver exited (${signal ?? code}) before listening: ${stderr().trim()}`)));
    child.stdout?.setEncoding('utf8').on('data', (text: string) => {
      out += text;
      const line = out.split('\n')[0];
      if (line === undefined || !out.includes('\n')) return;
      clearTimeout(timer);
      try {
        const { endpoint } = JSON.parse(line) as { endpoint: string };
        resolve(endpoint);
      } catch {
        reject(new Error(`s3rver printed something unexpected: ${line.slice(0, 200)}`));
      }
    });
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}
