import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseConfig, silentLogger } from '@ferry/core';
import { Hub } from '@ferry/hub';
import type { Regions } from './regions.js';

export interface RunningHubs {
  /** `ferry hub` of each region, on a free port. */
  hubs: Record<string, Hub>;
  /** The regions' config with the hub section, for the CLI. */
  configPath: string;
  stop(): Promise<void>;
}

/** A hub in each of the regions, with `hub` as the config's hub section (also written to `dir`/ferry-hub.yaml). */
export async function startHubs(regions: Regions, hub: Record<string, unknown>, dir: string): Promise<RunningHubs> {
  const doc = { ...JSON.parse(await readFile(regions.configPath, 'utf8')), hub };
  const configPath = join(dir, 'ferry-hub.yaml');
  await writeFile(configPath, JSON.stringify(doc));
  const config = parseConfig(doc);
  const hubs: Record<string, Hub> = {};
  for (const region of [regions.source.name, ...Object.keys(regions.mirrors)]) {
    const h = new Hub({ config, region, logger: silentLogger, listen: '127.0.0.1:0' });
    await h.start();
    hubs[region] = h;
  }
  return {
    hubs,
    configPath,
    async stop() {
      for (const h of Object.values(hubs)) await h.stop();
    },
  };
}
