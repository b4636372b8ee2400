#!/usr/bin/env node
// The AWS SDK warns on every start about Node 20's end of support, in several lines on stderr;
// Ferry's errors are one line, so the notice is left to the README.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const { main } = await import('./main.js');

process.exitCode = await main(process.argv);
