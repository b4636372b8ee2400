// Preloaded into benchmarked Node processes (NODE_OPTIONS=--import=…): writes the process's peak
// resident set size in bytes to $FERRY_RSS_FILE when it exits.
import { writeFileSync } from 'node:fs';

const file = process.env.FERRY_RSS_FILE;
if (file) {
  process.on('exit', () => {
    try {
      writeFileSync(file, String(process.resourceUsage().maxRSS * 1024));
    } catch {}
  });
}
