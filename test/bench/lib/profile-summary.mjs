// Summarise `node --cpu-prof` profiles by self time: per process and thread, the busy seconds, the
// idle share, garbage collection, and the functions that took most of the busy time.
// Usage: node test/bench/lib/profile-summary.mjs <dir with .cpuprofile files> [--top 10]
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '10' } } });
const dir = positionals[0];
if (!dir) {
  console.error('usage: profile-summary.mjs <dir> [--top N]');
  process.exit(2);
}

/** Self time in seconds by function (name, file:line) of one profile. */
function selfTimes(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const { samples, timeDeltas } = profile;
  for (let i = 0; i < samples.length; i++) {
    const node = byId.get(samples[i]);
    const f = node.callFrame;
    const where = f.url ? `${basename(f.url)}:${f.lineNumber + 1}` : '';
    const key = `${f.functionName || '(anonymous)'}${where ? ` ${where}` : ''}`;
    self.set(key, (self.get(key) ?? 0) + (timeDeltas[i] ?? 0) / 1e6);
  }
  return self;
}

const files = readdirSync(dir)
  .filter((f) => f.endsWith('.cpuprofile'))
  .sort();
for (const file of files) {
  const profile = JSON.parse(readFileSync(join(dir, file), 'utf8'));
  const self = selfTimes(profile);
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const idle = self.get('(idle)') ?? 0;
  const busy = total - idle;
  // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile
  const [, , , pid, thread] = file.split('.');
  console.log(
    `\n${file}: pid ${pid} thread ${thread}: ${total.toFixed(2)} s sampled, busy ${busy.toFixed(2)} s (idle ${((idle / total) * 100).toFixed(0)} %)`,
  );
  const rows = [...self.entries()].filter(([k]) => k !== '(idle)').sort((a, b) => b[1] - a[1]);
  for (const [name, s] of rows.slice(0, Number(values.top))) {
    console.log(`  ${s.toFixed(2).padStart(7)} s ${((s / busy) * 100).toFixed(1).padStart(5)} %  ${name}`);
  }
}
