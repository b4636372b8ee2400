import { randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startCacheNode } from '../support/cache-cluster.js';
import { waitFor } from '../support/regions.js';
import { useRegions } from '../support/scope.js';
import { freePort } from '../support/servers/free-port.js';

/*
 * Tokens kept in files (`${file:/path}`, a Kubernetes secret mounted as a file) are read again on
 * SIGHUP by the services that check them: the new token works, the old one is refused, with no
 * restart. Real processes (`ferry cache-node`, `ferry replicator`) on the run's Redis.
 */

const scope = useRegions();
const token = () => randomBytes(16).toString('hex');

async function status(url: string, bearer: string): Promise<number> {
  return (await fetch(url, { headers: { authorization: `Bearer ${bearer}` } })).status;
}

describe('secrets from files, reloaded on SIGHUP', () => {
  it('a cache node and the control API take the new tokens and refuse the old ones', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-secrets-'));
    const cacheRead = join(dir, 'cache-read');
    const apiRead = join(dir, 'api-read');
    const [oldCache, newCache, oldApi, newApi] = [token(), token(), token(), token()];
    await writeFile(cacheRead, `${oldCache}\n`);
    await writeFile(apiRead, `${oldApi}\n`);
    const listen = `127.0.0.1:${await freePort()}`;
    const regions = await scope.regions({
      mirrors: {
        eu: {
          cache: { replicas: 1, readToken: `\${file:${cacheRead}}`, writeToken: token() },
          api: { listen, readToken: `\${file:${apiRead}}`, adminToken: token() },
        },
      },
    });
    const node = await startCacheNode({
      configPath: regions.configPath,
      region: 'eu',
      dir: join(regions.dir, 'node'),
      id: 'n1',
      weight: 1,
      capacity: '16MiB',
    });
    scope.defer(() => node.stop());
    const daemon = scope.daemon(regions, 'eu');
    const inventory = `${node.url}/inventory`;
    const apiStatus = `http://${listen}/status`;
    await waitFor(async () => (await status(apiStatus, oldApi).catch(() => 0)) === 200, 20_000, 'the control API');
    expect(await status(inventory, oldCache)).toBe(200);
    expect(await status(inventory, newCache)).toBe(401);

    await writeFile(cacheRead, `${newCache}\n`);
    await writeFile(apiRead, `${newApi}\n`);
    node.proc.kill('SIGHUP');
    daemon.child.kill('SIGHUP');
    await waitFor(async () => (await status(inventory, newCache)) === 200, 5_000, 'the cache node to take the new token');
    expect(await status(inventory, oldCache)).toBe(401);
    await waitFor(async () => (await status(apiStatus, newApi)) === 200, 5_000, 'the control API to take the new token');
    expect(await status(apiStatus, oldApi)).toBe(401);

    // A secret file that is gone: the reload is refused in the log, the tokens in use stay.
    const { rm } = await import('node:fs/promises');
    await rm(apiRead);
    daemon.child.kill('SIGHUP');
    await waitFor(async () => (await daemon.output()).includes('control API tokens not reloaded'), 5_000, 'the refused reload in the log');
    expect(await daemon.output()).toMatch(/api-read/);
    expect(await status(apiStatus, newApi)).toBe(200);
    expect(node.proc.exitCode).toBeNull();
  });
});
