// Preloaded (`node --import`) into a `ferry` process that a test measures (see cli.ts): when the
// process exits, one marker line with its peak resident set size goes to stderr, where the test
// harness takes it out again. Plain JS so it needs no build. process.resourceUsage().maxRSS is
// getrusage(2)'s ru_maxrss (KiB on Linux), the figure `/usr/bin/time -f %M` prints, without
// depending on GNU time being installed. stderr on a pipe is synchronous on Linux, so the line is
// written even though the process is exiting.
process.on('exit', () => {
  process.stderr.write(`\nferry-test-max-rss-kib=${process.resourceUsage().maxRSS}\n`);
});
