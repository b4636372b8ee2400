// Entry of the s3rver child process started by s3rver.ts. Plain JS so it runs without a build.
// Usage: node --openssl-legacy-provider s3rver-main.mjs <directory> <bucket>[,<bucket>…] [port]
// Prints one JSON line {"port","endpoint"} on stdout once listening; exits when stdin closes, so
// a crashed test runner never leaves it behind.
import S3rver from 's3rver';

const [directory, bucketList, portArg] = process.argv.slice(2);
if (!directory || !bucketList) {
  console.error('usage: s3rver-main.mjs <directory> <bucket>[,<bucket>…]');
  process.exit(2);
}

const server = new S3rver({
  address: '127.0.0.1',
  port: Number(portArg ?? 0),
  directory,
  silent: true,
  configureBuckets: bucketList.split(',').map((name) => ({ name })),
});

// s3rver stores `<segment>._S3rver_object`, so a key segment over ~240 bytes makes the file name
// too long for the filesystem and takes the whole process down. Real S3 allows it; here it is
// refused as a 400 so one odd key fails one request, not every test after it.
const MAX_SEGMENT_BYTES = 240;
server.middleware.unshift(async (ctx, next) => {
  let segments;
  try {
    segments = ctx.path.split('/').map((s) => decodeURIComponent(s));
  } catch {
    segments = [];
  }
  if (segments.some((s) => Buffer.byteLength(s) > MAX_SEGMENT_BYTES)) {
    ctx.status = 400;
    ctx.type = 'application/xml';
    ctx.body =
      '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>KeyTooLongError</Code>' +
      `<Message>s3rver cannot store a key segment over ${MAX_SEGMENT_BYTES} bytes</Message></Error>`;
    return;
  }
  await next();
});

const { port } = await server.run();
process.stdout.write(`${JSON.stringify({ port, endpoint: `http://127.0.0.1:${port}` })}\n`);

process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
