import { execFile, spawn } from 'node:child_process';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect } from 'vitest';

/*
 * The real Hugging Face client (Python `huggingface_hub` and its `hf` CLI) for tests: found or
 * created by hf-venv.sh (one venv per machine and version; .ci/run makes it before the tests),
 * and run against a local endpoint with a private HF_HOME and a minimal environment: no proxy
 * variables (a proxy would be asked for 127.0.0.1), no token unless given, and none of the
 * client's calls home:
 *   HF_HUB_DISABLE_TELEMETRY=1      no telemetry, and no agent detection in the User-Agent
 *                                    (which fetches {endpoint}/api/agent-harnesses);
 *   HF_HUB_DISABLE_UPDATE_CHECK=1   the CLI does not ask PyPI for a newer version;
 *   HF_HUB_DISABLE_XET=1            never Xet, even if a server sent X-Xet-Hash (constants.py);
 *   HF_HUB_ENABLE_HF_TRANSFER=0     hf_transfer is gone in 2.x (only a deprecation warning
 *                                    when set true); kept explicit for older clients.
 */

const VENV_SCRIPT = fileURLToPath(new URL('./hf-venv.sh', import.meta.url));
const run = promisify(execFile);

export interface HfClient {
  venv: string;
  python: string;
  hf: string;
  version: string;
}

export type HfClientLookup = { client: HfClient; reason?: undefined } | { client?: undefined; reason: string };

/**
 * The client, creating its venv when missing (about a minute the first time); or why it cannot
 * be had, for a test to skip with.
 */
export async function findHfClient(): Promise<HfClientLookup> {
  try {
    const { stdout } = await run('bash', [VENV_SCRIPT], { timeout: 300_000, maxBuffer: 1 << 20 });
    const venv = stdout.trim().split('\n').pop() ?? '';
    const python = join(venv, 'bin', 'python');
    const { stdout: version } = await run(python, ['-c', 'import huggingface_hub; print(huggingface_hub.__version__)']);
    return { client: { venv, python, hf: join(venv, 'bin', 'hf'), version: version.trim() } };
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    const why = (e.stderr ?? '').trim().split('\n').filter(Boolean).pop() ?? e.message.split('\n')[0];
    return { reason: `no huggingface_hub client (${why}); run bash test/support/hf-venv.sh` };
  }
}

export interface HfRunOptions {
  /** HF_ENDPOINT: the Hub (or stand-in) to talk to. */
  endpoint: string;
  /** A temporary folder: HOME, with HF_HOME under it. */
  home: string;
  /** HF_TOKEN. */
  token?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
}

export interface HfRunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function hfEnv(options: HfRunOptions): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: options.home,
    LANG: 'C.UTF-8',
    HF_ENDPOINT: options.endpoint,
    HF_HOME: join(options.home, 'hf'),
    HF_HUB_DISABLE_TELEMETRY: '1',
    HF_HUB_DISABLE_UPDATE_CHECK: '1',
    HF_HUB_DISABLE_XET: '1',
    HF_HUB_ENABLE_HF_TRANSFER: '0',
    HF_HUB_DISABLE_PROGRESS_BARS: '1',
    ...(options.token ? { HF_TOKEN: options.token } : {}),
    ...options.env,
  };
}

function spawnCollect(command: string, args: string[], options: HfRunOptions): Promise<HfRunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: hfEnv(options), cwd: options.home, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The `hf` CLI with these arguments. */
export function runHfCli(client: HfClient, args: string[], options: HfRunOptions): Promise<HfRunResult> {
  return spawnCollect(client.hf, args, options);
}

/** What a Python exception looked like: its class, the classes it derives from, the HTTP status. */
export interface PyError {
  type: string;
  mro: string[];
  status: number | null;
  message: string;
}

const RESULT_MARK = '@@ferry-result@@';

// Runs the script, then prints what it left in `result` (or the exception it raised) as JSON
// on one marked line, so what the client prints itself cannot be mistaken for it.
const PRELUDE = `
import json, sys
def describe_error(e):
    response = getattr(e, "response", None)
    return {"type": type(e).__name__, "mro": [c.__name__ for c in type(e).__mro__],
            "status": getattr(response, "status_code", None), "message": str(e)}
def attempt(fn):
    """fn() → {"ok": value} or {"error": {...}}, for scripts that try several things."""
    try:
        return {"ok": fn()}
    except Exception as e:
        return {"error": describe_error(e)}
scope = {"attempt": attempt, "describe_error": describe_error}
try:
    exec(compile(sys.argv[1], "<test script>", "exec"), scope)
    out = {"ok": scope.get("result")}
except Exception as e:
    out = {"error": describe_error(e)}
print("${RESULT_MARK}" + json.dumps(out, default=str))
`;

export type PyOutcome<T> = { ok: T; error?: undefined } | { ok?: undefined; error: PyError };

/**
 * Runs a Python script with the client's environment; the script sets `result` (anything JSON
 * can carry). It may call `attempt(lambda: …)` to try something that may raise.
 */
export async function runPython<T = unknown>(client: HfClient, script: string, options: HfRunOptions): Promise<PyOutcome<T>> {
  const r = await spawnCollect(client.python, ['-c', PRELUDE, script], options);
  const line = r.stdout.split('\n').find((l) => l.startsWith(RESULT_MARK));
  if (r.code !== 0 || line === undefined) {
    throw new Error(`python exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  }
  return JSON.parse(line.slice(RESULT_MARK.length)) as PyOutcome<T>;
}

/** Every file under `dir` (following the cache's symlinks), by repo path; `.cache` left out. */
export async function filesUnder(dir: string): Promise<Record<string, Buffer>> {
  const out: Record<string, Buffer> = {};
  for (const name of (await readdir(dir, { recursive: true })) as string[]) {
    if (name === '.cache' || name.startsWith('.cache/')) continue;
    const path = join(dir, name);
    if ((await stat(path)).isFile()) out[name] = await readFile(path);
  }
  return out;
}

export function expectSameFiles(got: Record<string, Buffer>, want: Record<string, Buffer>): void {
  expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
  for (const [path, bytes] of Object.entries(want)) expect((got[path] as Buffer).equals(bytes), path).toBe(true);
}

/** The Python error an outcome carries, checked to be of `type` (and `status`). */
export function expectError<T>(outcome: { ok?: T; error?: PyError }, type: string, status?: number): PyError {
  expect(outcome.error, `expected ${type}, got ${JSON.stringify(outcome.ok)}`).toBeDefined();
  const error = outcome.error as PyError;
  expect(error.type, error.message).toBe(type);
  if (status !== undefined) expect(error.status, error.message).toBe(status);
  return error;
}

/**
 * `snapshot_download` and `model_info` of a repo (at a revision) with these options: the
 * snapshot's folder and the sha the server named, or the client's error.
 */
export async function snapshotThrough(
  client: HfClient,
  options: HfRunOptions,
  repo: string,
  revision?: string,
): Promise<{ path: string; sha: string } | { error: PyError }> {
  const r = await runPython<{ ok?: { path: string; sha: string }; error?: PyError }>(
    client,
    `
from huggingface_hub import snapshot_download, HfApi
rev = ${revision ? JSON.stringify(revision) : 'None'}
result = attempt(lambda: {"path": snapshot_download(${JSON.stringify(repo)}, revision=rev), "sha": HfApi().model_info(${JSON.stringify(repo)}, revision=rev).sha})
`,
    options,
  );
  const out = r.ok as { ok?: { path: string; sha: string }; error?: PyError };
  return out.ok ?? { error: out.error as PyError };
}
