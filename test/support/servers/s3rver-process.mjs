// An s3rver child process (s3rver-main.mjs next to this file), for the scripts that run outside
// vitest: the benchmarks and the chaos run. It prints its endpoint as the first JSON line.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('./s3rver-main.mjs', import.meta.url));

/**
 * Start s3rver serving `dir` with `buckets` on `port` (0: a free one); resolves with the child
 * and its endpoint once it listens.
 */
export async function spawnS3rver(dir, buckets, port = 0) {
  const child = spawn(process.execPath, ['--openssl-legacy-provider', MAIN, dir, buckets.join(','), String(port)], {
    stdio: ['pipe', 'pipe', 'ignore'],
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  const endpoint = await new Promise((resolve, reject) => {
    let out = '';
    child.once('exit', (code) => reject(new Error(`s3rver exited ${code}`)));
    child.stdout.setEncoding('utf8').on('data', (t) => {
      out += t;
      if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]).endpoint);
    });
  });
  return { child, endpoint };
}
