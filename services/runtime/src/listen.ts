import { InvalidArgumentError } from '@ferry/core';
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

/** Bind a service's app to `host:port` (port 0: any free port). */
export async function listen(app: FastifyInstance, address: string): Promise<BoundAddress> {
  const { host, port } = parseListenAddress(address);
  const url = await app.listen({ host, port });
  const bound = app.server.address();
  return { host, port: typeof bound === 'object' && bound ? bound.port : port, url };
}
