// `npm run bench`: runs the scenarios side by side with their peers in one run and writes a
// report (markdown table, JSON, SVG chart of the ratios) to test/bench/results/.
// Flags: --scenario id[,id…]  --size <factor> (1 = the defaults; 0.25 for a quick look)  --out <dir>
// --readers n[,n…] (cold-start: reader processes per round, default 1,4,16)
// (and the flags of the fan-out simulation, scenarios/fanout.mjs: --hosts, --model-size, …)
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { renderMarkdown, renderSvg } from './lib/report.mjs';
import { machine, ROOT, startRedis } from './lib/util.mjs';
import { coldStart } from './scenarios/cold-start.mjs';
import { FANOUT_FLAGS, fanout } from './scenarios/fanout.mjs';
import { hub } from './scenarios/hub.mjs';
import { importScenario } from './scenarios/import.mjs';
import { memory } from './scenarios/memory.mjs';
import { metadataLag } from './scenarios/metadata-lag.mjs';
import { mirrorFile, mirrorS3 } from './scenarios/mirror.mjs';
import { mirrorSmall } from './scenarios/mirror-small.mjs';
import { mountScenario } from './scenarios/mount.mjs';
import { reads } from './scenarios/reads.mjs';
import { scale } from './scenarios/scale.mjs';

const SCENARIOS = [
  mirrorFile,
  mirrorS3,
  mirrorSmall,
  metadataLag,
  importScenario,
  reads,
  coldStart,
  mountScenario,
  hub,
  memory,
  fanout,
  scale,
];

const { values } = parseArgs({
  options: {
    scenario: { type: 'string' },
    size: { type: 'string', default: '1' },
    out: { type: 'string', default: join(ROOT, 'test/bench/results') },
    work: { type: 'string', default: join(tmpdir(), 'ferry-bench') },
    // cold-start: the reader counts, e.g. 1,16 (default 1,4,16)
    readers: { type: 'string' },
    ...FANOUT_FLAGS,
  },
});
const size = Number(values.size);
if (!(size > 0)) throw new Error(`--size must be a positive number, got ${values.size}`);
const wanted = values.scenario ? values.scenario.split(',') : SCENARIOS.map((s) => s.id);
const unknown = wanted.filter((id) => !SCENARIOS.some((s) => s.id === id));
if (unknown.length) {
  console.error(`unknown scenario ${unknown.join(', ')}; known: ${SCENARIOS.map((s) => s.id).join(', ')}`);
  process.exit(2);
}

process.env.AWS_EC2_METADATA_DISABLED = 'true';
const report = { date: new Date().toISOString(), machine: machine(), size, scenarios: [] };
console.log(
  `Ferry benchmarks, ${report.date}, ${report.machine.cores} cores, ${report.machine.memoryGiB} GiB, Node ${report.machine.node}, size ×${size}`,
);
const redis = await startRedis();
try {
  for (const scenario of SCENARIOS.filter((s) => wanted.includes(s.id))) {
    const work = join(values.work, scenario.id);
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    const started = Date.now();
    console.log(`\n== ${scenario.title}`);
    let result;
    try {
      result =
        scenario.available && !scenario.available()
          ? { rows: [], notes: [`not available: ${scenario.unavailableReason}`] }
          : await scenario.run({ work, redis, size, flags: values });
    } catch (err) {
      result = { rows: [], notes: [`failed: ${err.message}`] };
      if (process.env.FERRY_BENCH_STACK) console.error(err);
    }
    rmSync(work, { recursive: true, force: true });
    const entry = { id: scenario.id, title: scenario.title, seconds: (Date.now() - started) / 1000, ...result };
    report.scenarios.push(entry);
    console.log(renderMarkdown({ ...report, scenarios: [entry] }, { header: false }));
  }
} finally {
  await redis.stop();
}
mkdirSync(values.out, { recursive: true });
writeFileSync(join(values.out, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
writeFileSync(join(values.out, 'report.md'), renderMarkdown(report, { header: true }));
writeFileSync(join(values.out, 'ratios.svg'), renderSvg(report));
console.log(`\nreport: ${join(values.out, 'report.md')} (and report.json, ratios.svg)`);
if (!existsSync(join(values.out, 'report.md'))) process.exit(1);
