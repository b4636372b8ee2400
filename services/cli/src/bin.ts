#!/usr/bin/env node
// The AWS SDK warns on every start about Node 20's end of support, in several lines on stderr;
// Ferry's errors are one line, so the notice is left to the README.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
// File system calls run on libuv's pool of 4 threads by default: a put or a copy keeps several
// fsyncs of whole chunks in flight, and the reads queued behind them would stall the pipeline.
// Set before the pool's first use; an operator's own UV_THREADPOOL_SIZE wins.
process.env.UV_THREADPOOL_SIZE ??= '16';
const { main } = await import('./main.js');

process.exitCode = await main(process.argv);
