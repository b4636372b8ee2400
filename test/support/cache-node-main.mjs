// `ferry cache-node …` for the tests, from the built CLI modules: the same command function the
// CLI registers, in a process of its own (so a test can SIGKILL it). Prints JSON lines on stdout
// (the `started` event carries the node's URL); logs go to stderr.
import { parseArgs } from 'node:util';
import { cacheNodeCommand } from '../../services/cli/dist/commands/cache-node.js';
import { Context } from '../../services/cli/dist/context.js';
import { createLogger } from '../../services/cli/dist/logger.js';
import { Output } from '../../services/cli/dist/output.js';

const { values } = parseArgs({
  options: {
    config: { type: 'string' },
    region: { type: 'string' },
    dir: { type: 'string' },
    capacity: { type: 'string' },
    weight: { type: 'string' },
    listen: { type: 'string', default: '127.0.0.1:0' },
    id: { type: 'string' },
  },
});
const logger = createLogger({ name: 'ferry-cache-node', level: process.env.FERRY_LOG_LEVEL ?? 'warn', destination: 2 });
const ctx = Context.load({ configPath: values.config, logger });
try {
  await cacheNodeCommand(
    ctx,
    new Output({ json: true }),
    { region: values.region, dir: values.dir, capacity: values.capacity, weight: values.weight, listen: values.listen, id: values.id },
    logger,
  );
} catch (err) {
  process.stderr.write(`ferry: ${err?.message ?? err}\n`);
  process.exitCode = 1;
} finally {
  await ctx.close();
}
