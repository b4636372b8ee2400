// Child process of stores-rss.test.ts: one streamed put and one streamed get of `size` bytes
// through the store a URL names, then one JSON line on stdout with the process's peak RSS.
// Plain JS on the built packages (`npm run build` first), so what is measured is the real
// library and nothing of the test runner. Credentials for s3:// URLs come from the environment.
// Usage: node rss-roundtrip.mjs <store-url> <size-bytes>
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { createStore } from '@ferry/stores';

const [url, sizeArg] = process.argv.slice(2);
const size = Number(sizeArg);
if (!url || !Number.isSafeInteger(size) || size <= 0) {
  console.error('usage: rss-roundtrip.mjs <store-url> <size-bytes>');
  process.exit(2);
}

// 64 KiB, as a file read stream delivers them.
const BLOCK = 64 * 1024;
const key = `rss/${process.pid}-${Date.now()}.bin`;
const store = createStore(url);

/** Random bytes made as they are read: the source holds one block at a time. */
function source(length, hash) {
  let left = length;
  return new Readable({
    read() {
      if (left === 0) {
        this.push(null);
        return;
      }
      const block = randomBytes(Math.min(BLOCK, left));
      left -= block.length;
      hash.update(block);
      this.push(block);
    },
  });
}

try {
  const written = createHash('sha256');
  const t0 = performance.now();
  const { etag } = await store.put(key, { stream: source(size, written), length: size });
  const t1 = performance.now();
  const got = await store.get(key, { ifMatch: etag });
  const read = createHash('sha256');
  let length = 0;
  for await (const part of got.body) {
    read.update(part);
    length += part.length;
  }
  const t2 = performance.now();
  await store.delete(key);
  await store.close?.();
  const [put, get] = [written.digest('hex'), read.digest('hex')];
  process.stdout.write(
    `${JSON.stringify({
      url: store.url,
      size,
      length,
      sha256Match: put === get,
      putMiBps: Math.round(size / 2 ** 20 / ((t1 - t0) / 1000)),
      getMiBps: Math.round(size / 2 ** 20 / ((t2 - t1) / 1000)),
      // resourceUsage() reports kilobytes.
      maxRssBytes: process.resourceUsage().maxRSS * 1024,
    })}\n`,
  );
} catch (err) {
  console.error(`${err?.code ?? 'ERROR'}: ${err?.message ?? err}`);
  process.exit(1);
}
