// Preloaded into benchmarked Node processes (NODE_OPTIONS=--import=…): writes the process's peak
// resident set size in bytes to $FERRY_RSS_FILE when it exits. VmHWM of /proc/self/status, not
// getrusage's maxRSS: on Linux a spawned child's maxRSS starts from its parent's (the fork before
// the exec), so a benchmark process holding a large heap would be reported for every child.
import { readFileSync, writeFileSync } from 'node:fs';

const file = process.env.FERRY_RSS_FILE;

function peakBytes() {
  try {
    const kib = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    if (kib) return Number(kib) * 1024;
  } catch {}
  return process.resourceUsage().maxRSS * 1024;
}

if (file) {
  process.on('exit', () => {
    try {
      writeFileSync(file, String(peakBytes()));
    } catch {}
  });
}
