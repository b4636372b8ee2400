import { InvalidArgumentError, LocalIoError, type Logger, MOUNT_LISTEN_DEFAULT, messageOf } from '@ferry/core';
import { listen, parseListenAddress } from '@ferry/runtime';
import type { FastifyInstance } from 'fastify';

/** Where the metrics and health address came from: it decides what a busy address does. */
export type ListenSetting = { from: 'flag' | 'config'; address: string } | { from: 'default' };

export interface Endpoint {
  app: FastifyInstance;
  /** The URL it serves on. */
  url: string;
  /** The default address it wanted and found busy (it took a free port of the same host instead). */
  busy?: string;
}

const NAMES = { flag: '--listen', config: 'mount.listen' } as const;

/** `host:0` of an address: any free port on the same host. */
function anyPortOf(address: string): string {
  const { host } = parseListenAddress(address);
  return host.includes(':') ? `[${host}]:0` : `${host}:0`;
}

/**
 * Serve the mount's metrics and health. An address someone chose (`--listen`, `mount.listen`)
 * is kept or the start fails in one line naming it and the setting; the default address gives
 * way to a free port of its host when another process (a second mount on the host) holds it, and
 * says so in the log.
 */
export async function serveEndpoint(make: () => FastifyInstance, setting: ListenSetting, logger: Logger): Promise<Endpoint> {
  const address = setting.from === 'default' ? MOUNT_LISTEN_DEFAULT : setting.address;
  const first = make();
  try {
    return { app: first, url: (await listen(first, address)).url };
  } catch (err) {
    await first.close().catch(() => {});
    if (err instanceof InvalidArgumentError) throw err; // a malformed address
    const code = ((err as Error).cause as NodeJS.ErrnoException | undefined)?.code;
    if (setting.from !== 'default' || code !== 'EADDRINUSE') {
      const where = setting.from === 'default' ? 'the default of mount.listen' : `set by ${NAMES[setting.from]}`;
      const why =
        code === 'EADDRINUSE'
          ? 'another process holds it; give each mount its own address with --listen host:port (or mount.listen), or --listen off'
          : messageOf((err as Error).cause ?? err);
      throw new LocalIoError(`cannot serve metrics and health on ${address} (${where}): ${why}`, { cause: err });
    }
  }
  const app = make();
  try {
    const { url } = await listen(app, anyPortOf(address));
    logger.warn(
      { busy: address, address: url },
      `${address} (the default of mount.listen) is held by another process: metrics and health on ${url} instead; set --listen or mount.listen to choose the address`,
    );
    return { app, url, busy: address };
  } catch (err) {
    await app.close().catch(() => {});
    throw new LocalIoError(`cannot serve metrics and health on ${anyPortOf(address)}: ${messageOf(err)}`, { cause: err });
  }
}
