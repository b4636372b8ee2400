import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Readable } from 'node:stream';
import { TransientError } from '@ferry/core';

/** A request whose socket stays silent this long is given up (the caller may retry). */
const IDLE_TIMEOUT_MS = 120_000;

/** Keep-alive agents for one store's own requests; destroyed when the store closes. */
export interface Agents {
  http: HttpAgent;
  https: HttpsAgent;
}

export function createAgents(): Agents {
  return { http: new HttpAgent({ keepAlive: true }), https: new HttpsAgent({ keepAlive: true }) };
}

/**
 * One HTTP exchange on the store's agents, resolved when the response headers arrive. A body
 * is sent with its exact length and the request is destroyed (so nothing is committed) when the
 * body fails: the reason the uploads are not the SDK's, which leave such a request hanging open.
 * `label` (the store's URL) starts the message of a body that closed before it was sent.
 */
export function exchange(
  agents: Agents,
  label: string,
  method: string,
  url: string,
  headers: Record<string, string>,
  upload?: { body: Readable; length: number },
): Promise<IncomingMessage> {
  const target = new URL(url);
  const https = target.protocol === 'https:';
  return new Promise((resolve, reject) => {
    const req = (https ? httpsRequest : httpRequest)(
      target,
      {
        method,
        agent: https ? agents.https : agents.http,
        headers: upload ? { ...headers, 'content-type': 'application/octet-stream', 'content-length': String(upload.length) } : headers,
      },
      (res) => {
        // A slow reader of a download is not a dead connection.
        if (!upload) req.setTimeout(0);
        // An answer before the whole body was sent (an error) ends the request: never left half-sent.
        else res.once('end', () => req.writableFinished || req.destroy());
        resolve(res);
      },
    );
    req.setTimeout(IDLE_TIMEOUT_MS, () => req.destroy(Object.assign(new Error('request timed out'), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    if (!upload) {
      req.end();
      return;
    }
    const { body } = upload;
    const bodyFailed = (err: unknown) => {
      reject(err); // the body's own error wins over the abort it causes
      req.destroy();
    };
    // The body may have started flowing (and failed) before this request existed.
    if (body.errored || body.destroyed) return bodyFailed(body.errored ?? new TransientError(`${label}: upload body closed early`));
    body.on('error', bodyFailed);
    body.pipe(req);
  });
}

/** An HTTP error status with the server's message, for responses to requests this store sends itself. */
export function httpError(status: number, body: string): Error & { status: number } {
  return Object.assign(new Error(serverMessage(body)), { status });
}

export function firstLine(text: string): string {
  return (text.split('\n')[0] ?? '').trim().slice(0, 200);
}

/** The `error.message` of a JSON API error body, else its first line. */
function serverMessage(text: string): string {
  try {
    const parsed = JSON.parse(text) as { error?: { message?: unknown } };
    if (typeof parsed.error?.message === 'string') return firstLine(parsed.error.message);
  } catch {}
  return firstLine(text) || 'no message';
}
