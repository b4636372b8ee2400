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

export interface ReceiveOptions extends Omit<SendOptions, 'body'> {
  /** A piece of a success body, in order; false stops the read (see `HttpClient.receive`). */
  onBody(piece: Buffer): boolean;
}

export interface Received {
  statusCode: number;
  /** Lower-case names; a repeated header keeps its last value. */
  headers: Record<string, string>;
  /** The body of an answer that is not a success (its first 64 KiB). */
  text?: string;
}

/** A request whose answer began but whose body did not arrive whole (reset, timeout between pieces, fewer bytes than announced). */
export class BodyCutShort extends Error {
  constructor(cause: unknown) {
    super(messageOf(cause), { cause });
    this.name = 'BodyCutShort';
  }
}

const RETRY_DELAY_MS = 100;
/** Of an error answer's body, what is kept for its message. */
const ERROR_TEXT_BYTES = 64 * 1024;

function headersOf(raw: Buffer[] | string[] | null): Record<string, string> {
  const headers: Record<string, string> = {};
  for (let i = 0; raw && i + 1 < raw.length; i += 2) headers[String(raw[i]).toLowerCase()] = String(raw[i + 1]);
  return headers;
}

function abortError(reason: unknown): Error {
  if (reason instanceof Error && reason.name === 'AbortError') return reason;
  const err = new Error('This operation was aborted', { cause: reason });
  err.name = 'AbortError';
  return err;
}

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
    return this.#withRetries(method, where, () =>
      request(url, {
        method,
        dispatcher: this.#agent,
        headers: this.#headers(options),
        ...(options.body !== undefined ? { body: options.body } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.headersTimeoutMs !== undefined ? { headersTimeout: options.headersTimeoutMs } : {}),
      }),
    );
  }

  /**
   * A GET whose success body goes piece by piece to `onBody` as the socket delivers it, with no
   * stream between them: for chunk bodies copied into one buffer, where a Readable and its async
   * iteration cost more CPU than the copy. `onBody` returns false to stop the read (the body is
   * longer than wanted): the request is abandoned and the answer resolves with what came. Any other
   * status than 2xx resolves with its body as `text` (the first 64 KiB) for `failureOf`. Failures
   * before the headers are as for `send`; a failure after them (a body cut short) is thrown as it is.
   */
  async receive(url: string, where: string, options: ReceiveOptions): Promise<Received> {
    return this.#withRetries('GET', where, () => this.#dispatchGet(url, options));
  }

  #dispatchGet(url: string, options: ReceiveOptions): Promise<Received> {
    const { origin, pathname, search } = new URL(url);
    return new Promise<Received>((resolve, reject) => {
      let statusCode = 0;
      let headers: Record<string, string> = {};
      let abort: ((reason: Error) => void) | undefined;
      let settled = false;
      const errorText: Buffer[] = [];
      let errorBytes = 0;
      const finish = (err: Error | undefined) => {
        if (settled) return;
        settled = true;
        options.signal?.removeEventListener('abort', onAbort);
        if (err) return reject(err);
        const success = statusCode >= 200 && statusCode < 300;
        resolve({ statusCode, headers, ...(success ? {} : { text: Buffer.concat(errorText).toString() }) });
      };
      const onAbort = () => abort?.(abortError(options.signal?.reason));
      if (options.signal?.aborted) return finish(abortError(options.signal.reason));
      options.signal?.addEventListener('abort', onAbort, { once: true });
      this.#agent.dispatch(
        {
          origin,
          path: `${pathname}${search}`,
          method: 'GET',
          headers: this.#headers(options),
          ...(options.headersTimeoutMs !== undefined ? { headersTimeout: options.headersTimeoutMs } : {}),
        },
        {
          onConnect: (abortRequest) => {
            abort = abortRequest;
            if (options.signal?.aborted) abortRequest(abortError(options.signal.reason));
          },
          onHeaders: (status, rawHeaders) => {
            statusCode = status;
            headers = headersOf(rawHeaders);
            return true;
          },
          onData: (piece) => {
            if (statusCode >= 200 && statusCode < 300) {
              if (!options.onBody(piece)) {
                // Enough: what came proves the body too long; the connection is dropped, not drained.
                finish(undefined);
                abort?.(new Error('body longer than wanted'));
              }
            } else if (errorBytes < ERROR_TEXT_BYTES) {
              errorText.push(Buffer.from(piece.subarray(0, ERROR_TEXT_BYTES - errorBytes)));
              errorBytes += piece.length;
            }
            return true;
          },
          onComplete: () => finish(undefined),
          onError: (err) => finish(statusCode === 0 || err.name === 'AbortError' ? err : new BodyCutShort(err)),
          onUpgrade: () => finish(new Error('unexpected protocol upgrade')),
        },
      );
    });
  }

  #headers(options: { token?: string; headers?: Record<string, string> }): Record<string, string> {
    const auth = options.token === undefined ? this.#auth : `Bearer ${options.token}`;
    return { ...(auth ? { authorization: auth } : {}), ...options.headers };
  }

  /** Run one request, again for an idempotent one that could not reach its server, with its failure translated (see `send`). */
  async #withRetries<T>(method: HttpMethod, where: string, attempt: () => Promise<T>): Promise<T> {
    const idempotent = method === 'GET' || method === 'HEAD';
    for (let tries = 1; ; tries++) {
      try {
        return await attempt();
      } catch (err) {
        if ((err as Error).name === 'AbortError' || err instanceof BodyCutShort) throw err;
        const tls = tlsFailure(err);
        if (tls) throw new UnauthorizedError(`${where}: ${tls}${this.#hints.tls ? ` (${this.#hints.tls})` : ''}`, { cause: err });
        const reason = (err as NodeJS.ErrnoException).code ?? messageOf(err);
        if (idempotent && tries < this.#attempts) {
          await new Promise((r) => setTimeout(r, RETRY_DELAY_MS * tries));
          continue;
        }
        throw new Unreachable(`${where}: ${reason}`, reason, { cause: err });
      }
    }
  }

  /** The Ferry error an answer that is not a success stands for (its body read and consumed). */
  async failure(res: HttpResponse, where: string): Promise<FerryError> {
    return this.failureOf(res.statusCode, await res.body.text().catch(() => ''), where);
  }

  /** The Ferry error an answer of `statusCode` with body `text` stands for. */
  failureOf(statusCode: number, text: string, where: string): FerryError {
    let body: unknown = { message: text.slice(0, 200) };
    try {
      body = JSON.parse(text);
    } catch {}
    const { tls: _tls, ...byStatus } = this.#hints;
    return errorFromResponse(statusCode, body, where, byStatus);
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
