// Summarise a `perf record` file by kind of work: CPU seconds and share of sha256, kernel copies
// (into the page cache, to user space, from user space), V8's garbage collection, user-space
// copies, and the rest. On-CPU samples, so a machine under load does not inflate them the way it
// inflates a wall-clock sampling profile (node --cpu-prof).
import { spawnSync } from 'node:child_process';

const KINDS = [
  ['sha256', (sym) => sym.includes('sha256')],
  ['kernel: copy into the page cache (file writes)', (sym) => sym.includes('copy_folio_from_iter')],
  ['kernel: copy to user space (socket and file reads)', (sym) => sym.includes('_copy_to_iter')],
  ['kernel: copy from user space (socket sends)', (sym) => sym.includes('_copy_from_iter')],
  ['V8 garbage collection', (sym) => /Marking|Sweep|Scaveng|MarkCompact|SizeFromMap|Evacuat|GCTracer/.test(sym)],
  ['user-space copies (memmove)', (sym) => /memmove|memcpy/.test(sym)],
];

/** Lines `seconds  share  kind` of one perf.data file sampled at `hz`. */
export function summarisePerf(file, hz = 1999) {
  const out = spawnSync('perf', ['report', '-i', file, '--no-children', '--sort', 'sym', '-n', '--stdio'], {
    encoding: 'utf8',
    maxBuffer: 64 * 2 ** 20,
  }).stdout;
  const by = new Map();
  let total = 0;
  for (const line of (out ?? '').split('\n')) {
    const m = /^\s+[\d.]+%\s+(\d+)\s+\[(.)\]\s+(.*)$/.exec(line);
    if (!m) continue;
    const samples = Number(m[1]);
    const sym = m[3];
    total += samples;
    const kind = KINDS.find(([, match]) => match(sym))?.[0] ?? (m[2] === 'k' ? 'kernel: other' : 'user: other (JS, V8, libuv, start-up)');
    by.set(kind, (by.get(kind) ?? 0) + samples);
  }
  const rows = [...by.entries()].sort((a, b) => b[1] - a[1]);
  return [
    `  ${(total / hz).toFixed(2).padStart(6)} s on CPU`,
    ...rows.map(([kind, n]) => `  ${(n / hz).toFixed(2).padStart(6)} s ${((100 * n) / total).toFixed(1).padStart(5)} %  ${kind}`),
  ].join('\n');
}
