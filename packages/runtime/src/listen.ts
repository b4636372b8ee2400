import { InvalidArgumentError, LocalIoError, messageOf } from '@ferry/core';
import type { FastifyInstance } from 'fastify';

/** Where a service ended up listening: the port is the bound one, so `:0` tells the port it got. */
export interface BoundAddress {
  host: string;
  port: number;
  url: string;
}

/** `host:port`, with an IPv6 host in brackets (`[::1]:9000`). */
export function parseListenAddress(address: string): { host: string; port: number } {
  const match = /^\[?([^\]]+)\]?:(\d+)$/.exec(address);
  const port = Number(match?.[2]);
  if (!match || port > 65_535) throw new InvalidArgumentError(`invalid listen address "${address}": expected host:port`);
  return { host: match[1] as string, port };
}

/**
 * Bind a service's app to `host:port` (port 0: any free port). `setBy` names what chose the
 * address (`--listen or regions.us.api.listen`): a busy or unusable address is one line that says
 * which address, what sets it, and why.
 */
export async function listen(app: FastifyInstance, address: string, setBy?: string): Promise<BoundAddress> {
  const { host, port } = parseListenAddress(address);
  let url: string;
  try {
    url = await app.listen({ host, port });
  } catch (err) {
    // A socket error (busy, not allowed, no such address) is the operator's to fix; anything else is ours.
    if (typeof (err as NodeJS.ErrnoException).syscall === 'string') throw listenError(err, address, setBy);
    throw err;
  }
  const bound = app.server.address();
  return { host, port: typeof bound === 'object' && bound ? bound.port : port, url };
}

/** Why a service could not listen on `address`, as one line naming the address and what set it. */
export function listenError(err: unknown, address: string, setBy?: string): LocalIoError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const why =
    code === 'EADDRINUSE'
      ? 'another process holds it'
      : code === 'EACCES'
        ? 'permission denied (ports below 1024 need privileges)'
        : code === 'EADDRNOTAVAIL'
          ? 'no interface of this host has that address'
          : messageOf(err);
  return new LocalIoError(`cannot listen on ${address}${setBy ? ` (set by ${setBy})` : ''}: ${why}`, { cause: err });
}
