import { rootCertificates } from 'node:tls';
import {
  errorFromResponse,
  type FerryError,
  InvalidArgumentError,
  messageOf,
  tlsFailure,
  UnauthorizedError,
  UnavailableError,
} from '@ferry/core';
import { Agent, type Dispatcher, request } from 'undici';

export type HttpMethod = Dispatcher.HttpMethod;
export type HttpResponse = Dispatcher.ResponseData;

export interface HttpClientOptions {
  /** What the servers are called in messages ("cache node", "replicator API"). */
  service: string;
  /** Bearer token sent with every request unless a request gives its own. */
  token?: string;
  /** TCP (and TLS) connect timeout: a dead host costs one fast failure. */
  connectTimeoutMs: number;
  /** Longest wait for response headers, and for each piece of a body. */
  requestTimeoutMs: number;
  /** CA certificates (PEM) trusted besides the system store, for servers of a private CA. */
  ca?: string | Buffer;
  /** Connections kept per server. */
  connections: number;
  /** Tries of an idempotent request (GET, HEAD) that could not reach its server; 1 = no retry. */
  attempts?: number;
  /** What to check, by status, when a server refuses a request (the config key of a token), and when its certificate fails (`tls`). */
  hints?: Readonly<Partial<Record<number | 'tls', string>>>;
}

export interface SendOptions {
  headers?: Record<string, string>;
  body?: Buffer | string;
  signal?: AbortSignal;
  /** The token of this request (another role's), instead of the client's. */
  token?: string;
  /** Longest wait for this request's response headers, instead of the client's `requestTimeoutMs`. */
  headersTimeoutMs?: number;
}

/** A request that failed before any answer: the server could not be reached (or not trusted). */
export class Unreachable extends UnavailableError {
  /** The socket's code (ECONNREFUSED, UND_ERR_CONNECT_TIMEOUT…) or the message. */
  readonly reason: string;
  constructor(message: string, reason: string, options: { cause: unknown }) {
    super(message, options);
    this.reason = reason;
  }
}

const RETRY_DELAY_MS = 100;

/**
 * The one HTTP client of Ferry's own services (cache nodes, the replicators' control API), on
 * undici: a pooled agent per client with a short connect timeout, a private CA beside the system
 * roots, the bearer token, retries of idempotent requests that could not connect, and every error
 * answer turned back into the Ferry error the server meant (core's one status table).
 */
export class HttpClient {
  readonly service: string;
  readonly #agent: Agent;
  readonly #auth: string | undefined;
  readonly #attempts: number;
  readonly #hints: Readonly<Partial<Record<number | 'tls', string>>>;

  constructor(options: HttpClientOptions) {
    if (options.token === '') throw new InvalidArgumentError(`${options.service} client: an empty token`);
    this.service = options.service;
    this.#auth = options.token === undefined ? undefined : `Bearer ${options.token}`;
    this.#attempts = Math.max(1, options.attempts ?? 1);
    this.#hints = options.hints ?? {};
    this.#agent = new Agent({
      connect: {
        timeout: options.connectTimeoutMs,
        // Node's `ca` replaces the default store, so the default roots go along with the private CA.
        ...(options.ca ? { ca: [...rootCertificates, options.ca.toString()] } : {}),
      },
      headersTimeout: options.requestTimeoutMs,
      bodyTimeout: options.requestTimeoutMs,
      connections: options.connections,
      keepAliveTimeout: 10_000,
    });
  }

  /**
   * Send a request; any answer comes back (check its status). A server that cannot be reached is
   * an `Unreachable` (UnavailableError) naming `where`; one whose certificate cannot be verified an
   * UnauthorizedError; an abort is thrown as it is.
   */
  async send(url: string, method: HttpMethod, where: string, options: SendOptions = {}): Promise<HttpResponse> {
    const auth = options.token === undefined ? this.#auth : `Bearer ${options.token}`;
    const idempotent = method === 'GET' || method === 'HEAD';
    for (let attempt = 1; ; attempt++) {
      try {
        return await request(url, {
          method,
          dispatcher: this.#agent,
          headers: { ...(auth ? { authorization: auth } : {}), ...options.headers },
          ...(options.body !== undefined ? { body: options.body } : {}),
          ...(options.signal ? { signal: options.signal } : {}),
          ...(options.headersTimeoutMs !== undefined ? { headersTimeout: options.headersTimeoutMs } : {}),
        });
      } catch (err) {
        if ((err as Error).name === 'AbortError') throw err;
        const tls = tlsFailure(err);
        if (tls) throw new UnauthorizedError(`${where}: ${tls}${this.#hints.tls ? ` (${this.#hints.tls})` : ''}`, { cause: err });
        const reason = (err as NodeJS.ErrnoException).code ?? messageOf(err);
        if (idempotent && attempt < this.#attempts) {
          await new Promise((r) => setTimeout(r, RETRY_DELAY_MS * attempt));
          continue;
        }
        throw new Unreachable(`${where}: ${reason}`, reason, { cause: err });
      }
    }
  }

  /** The Ferry error an answer that is not a success stands for (its body read and consumed). */
  async failure(res: HttpResponse, where: string): Promise<FerryError> {
    const text = await res.body.text().catch(() => '');
    let body: unknown = { message: text.slice(0, 200) };
    try {
      body = JSON.parse(text);
    } catch {}
    const { tls: _tls, ...byStatus } = this.#hints;
    return errorFromResponse(res.statusCode, body, where, byStatus);
  }

  /** Send a JSON request (or none) and read a JSON answer; any other status than 2xx is its Ferry error. */
  async json<T>(url: string, method: HttpMethod, where: string, body?: unknown, options: Omit<SendOptions, 'body'> = {}): Promise<T> {
    const res = await this.send(url, method, where, {
      ...options,
      ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...options.headers } } : {}),
    });
    if (res.statusCode < 200 || res.statusCode >= 300) throw await this.failure(res, where);
    const text = await res.body.text();
    return (text === '' ? {} : JSON.parse(text)) as T;
  }

  close(): Promise<void> {
    return this.#agent.close();
  }
}
