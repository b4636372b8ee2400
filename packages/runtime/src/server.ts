import { readFileSync } from 'node:fs';
import { InvalidConfigError, type Logger, localIoError, messageOf, silentLogger } from '@ferry/core';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';

/** PEM files a service presents over TLS (`gateway.tls`, `regions.<r>.api.tls`, `regions.<r>.cache.tls`). */
export interface ServerTlsFiles {
  cert: string;
  key: string;
}

/** What every service enforces on its connections (config `limits`, durations in ms). */
export interface ServerLimits {
  /** Request line and headers must arrive within this (slowloris). */
  headersTimeout: number;
  /** The whole request (not the response) must arrive within this. */
  requestTimeout: number;
  /** No bytes either way for this long closes the connection; also the keep-alive idle time. */
  idleTimeout: number;
  /** Largest request line plus headers (431 beyond it). */
  maxHeaderBytes: number;
}

export interface ServiceAppOptions
  extends Omit<FastifyServerOptions, 'https' | 'http' | 'http2' | 'connectionTimeout' | 'keepAliveTimeout' | 'requestTimeout'> {
  /** Serve HTTPS only; the files are read now and again on every SIGHUP. */
  tls?: ServerTlsFiles;
  /** The service's `limits` section (its defaults are the config schema's). */
  limits: ServerLimits;
  /** Where a TLS reload is reported (fastify's own `logger` option keeps its meaning). */
  log?: Logger;
}

/** The certificate and key of a service, or one config error naming the file that could not be read. */
export function readServerTls(files: ServerTlsFiles): { cert: Buffer; key: Buffer } {
  const read = (path: string, what: string) => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new InvalidConfigError(localIoError(err, `cannot read the TLS ${what}`, path).message, { cause: err });
    }
  };
  return { cert: read(files.cert, 'certificate'), key: read(files.key, 'key') };
}

/**
 * A service's fastify app with the timeouts and header limit every service enforces, over HTTPS
 * when `tls` is given (a plain-HTTP request on that port is refused by the TLS handshake). On
 * SIGHUP the certificate and key are read again and used for new connections, so a renewed
 * certificate needs no restart; a reload that fails keeps the old pair and says why.
 */
export function serviceApp(options: ServiceAppOptions): FastifyInstance {
  const { tls, limits, log, ...fastifyOptions } = options;
  // Node refuses a headers timeout longer than the request timeout.
  const headersTimeout = Math.min(limits.headersTimeout, limits.requestTimeout);
  const server = {
    maxHeaderSize: limits.maxHeaderBytes,
    headersTimeout,
    requestTimeout: limits.requestTimeout,
    keepAliveTimeout: limits.idleTimeout,
    // How often Node looks for connections past those timeouts (its default is 30 s).
    connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(headersTimeout / 2))),
  };
  const app = Fastify({
    ...fastifyOptions,
    connectionTimeout: limits.idleTimeout,
    keepAliveTimeout: limits.idleTimeout,
    requestTimeout: limits.requestTimeout,
    ...(tls ? { https: { ...server, ...readServerTls(tls) } } : { http: server }),
  } as FastifyServerOptions) as unknown as FastifyInstance;
  if (tls) reloadOnHangup(app, tls, log ?? silentLogger);
  return app;
}

function reloadOnHangup(app: FastifyInstance, files: ServerTlsFiles, log: Logger): void {
  const reload = () => {
    try {
      (app.server as unknown as { setSecureContext(o: object): void }).setSecureContext(readServerTls(files));
      log.info({ cert: files.cert }, 'TLS certificate reloaded');
    } catch (err) {
      log.error({ err, cert: files.cert, reason: messageOf(err) }, 'TLS reload failed; keeping the certificate in use');
    }
  };
  process.on('SIGHUP', reload);
  app.addHook('onClose', async () => {
    process.off('SIGHUP', reload);
  });
}
