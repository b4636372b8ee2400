// The plain baseline: a static-file server in its own process, nothing but node:http and large
// positional reads. Serves files under the root given as argv[2] (GET, HEAD, one Range), prints
// {"port": N} on stdout when listening. Small ranges are one read and one write; large bodies
// stream in 4 MiB reads with backpressure.
import { createReadStream, openSync, readSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { join, normalize } from 'node:path';

const root = process.argv[2];
const fds = new Map();
const fdOf = (path) => {
  let fd = fds.get(path);
  if (fd === undefined) {
    fd = openSync(path, 'r');
    fds.set(path, fd);
  }
  return fd;
};

const server = createServer((req, res) => {
  const path = join(root, normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname)));
  let size;
  try {
    size = statSync(path).size;
  } catch {
    res.writeHead(404).end();
    return;
  }
  const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  const start = m ? Number(m[1]) : 0;
  const end = m && m[2] !== '' ? Math.min(Number(m[2]), size - 1) : size - 1;
  const length = end - start + 1;
  const headers = { 'content-length': length, 'content-type': 'application/octet-stream', 'accept-ranges': 'bytes' };
  if (m) headers['content-range'] = `bytes ${start}-${end}/${size}`;
  res.writeHead(m ? 206 : 200, headers);
  if (req.method === 'HEAD') return res.end();
  if (length <= 1 << 20) {
    const buf = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) done += readSync(fdOf(path), buf, done, length - done, start + done);
    res.end(buf);
    return;
  }
  createReadStream(path, { start, end, highWaterMark: 4 << 20 }).pipe(res);
});
server.keepAliveTimeout = 30_000;
server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: server.address().port })));
process.on('SIGTERM', () => process.exit(0));
