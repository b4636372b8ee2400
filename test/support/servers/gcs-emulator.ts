import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export interface RunningGcsEmulator {
  /** `http://127.0.0.1:<port>`: pass as the Storage `apiEndpoint` / the store URL's `endpoint`. */
  endpoint: string;
  /** Buckets are implicit in the emulator: any valid name works; this one is for shared use. */
  bucket: string;
  projectId: string;
  stop(): Promise<void>;
}

const MAIN = fileURLToPath(new URL('./gcs-emulator-main.cjs', import.meta.url));
const STARTUP_TIMEOUT_MS = 30_000;

/**
 * The firebase-tools Cloud Storage emulator in a child Node process on a free loopback port, so
 * its CPU and memory (it holds whole objects in memory) stay out of the test workers. No Java, no
 * network beyond loopback. See gcs-emulator-main.cjs for what is patched and why.
 */
export async function startGcsEmulator(
  options: { /** Must start with `demo-` (offline). */ projectId?: string } = {},
): Promise<RunningGcsEmulator> {
  const projectId = options.projectId ?? 'demo-ferry';
  const env = { ...process.env };
  // Test runners' loader flags are not for this plain-JS child.
  delete env.NODE_OPTIONS;
  const child = spawn(process.execPath, [MAIN, '--project', projectId, '--exit-with-stdin'], {
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (text: string) => {
    stderr = (stderr + text).slice(-4000);
  });
  let endpoint: string;
  try {
    endpoint = await firstLine(child, () => stderr);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  // Keep draining stdout so a chatty emulator never blocks on a full pipe. The runner's exit must
  // not wait for the emulator: stop() ends it, and so does its stdin closing when we exit.
  child.stdout?.resume();
  child.unref();
  for (const stream of [child.stdin, child.stdout, child.stderr]) (stream as unknown as { unref?(): void } | null)?.unref?.();
  return {
    endpoint,
    bucket: 'ferry-test',
    projectId,
    stop: () => stopChild(child),
  };
}

function firstLine(child: ChildProcess, stderr: () => string): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => fail(new Error(`GCS emulator did not start within ${STARTUP_TIMEOUT_MS} ms: ${stderr()}`)),
      STARTUP_TIMEOUT_MS,
    );
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    const fail = (err: Error) => {
      clearTimeout(timer);
      lines.close();
      reject(err);
    };
    child.once('error', fail);
    child.once('exit', (code, signal) => fail(new Error(`GCS emulator exited (${code ?? signal}) before it listened: ${stderr()}`)));
    lines.on('line', (line) => {
      try {
        const { endpoint } = JSON.parse(line) as { endpoint?: unknown };
        if (typeof endpoint !== 'string') return;
        clearTimeout(timer);
        lines.close();
        resolve(endpoint);
      } catch {
        // not the announcement line
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
