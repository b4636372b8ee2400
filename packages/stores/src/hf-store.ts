import type { IncomingMessage } from 'node:http';
import {
  AccessDeniedError,
  InvalidArgumentError,
  NotFoundError,
  PreconditionFailedError,
  TransientError,
  UnauthorizedError,
} from '@ferry/core';
import { type Agents, createAgents, exchange } from './gcs-http.js';
import type { GetOptions, GetResult, ListPage, ObjectInfo, ObjectStore, PutResult, StoreCapabilities } from './types.js';

/**
 * A Hugging Face Hub repo as a read-only origin (`hf+https://huggingface.co/<org>/<name>`, or
 * `…/datasets/<org>/<name>`; `hf+http://` for a local endpoint). A key is `<commit>/<path>`:
 * the file at an immutable commit, read through the commit's resolve URL on every read — the
 * signed CDN location it redirects to expires, so it is never kept. The Authorization header is
 * sent to the Hub's own host only, never to the host a redirect leads to. The etag of an LFS file
 * is its sha256 (`X-Linked-Etag`), so an origin read checks it like an S3 etag.
 *
 * Beside the ObjectStore methods, the few API calls an import needs: the commit a revision names,
 * the tree at a commit, and a small file's bytes.
 */

export interface HfStoreOptions {
  /** `http(s)://host[:port]` of the Hub (HF_ENDPOINT). */
  endpoint: string;
  /** `org/name`, or `datasets/org/name`. */
  repo: string;
  /** Bearer token (HF_TOKEN, hub.token): gated and private repos. */
  token?: string;
}

export interface HfTreeFile {
  path: string;
  size: number;
  /** Git blob id (of the bytes, or of the LFS pointer). */
  oid: string;
  lfs?: { oid: string; size: number };
}

const MAX_REDIRECTS = 5;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

function unquote(tag: string | string[] | undefined): string | undefined {
  const t = Array.isArray(tag) ? tag[0] : tag;
  return t?.replace(/^W\//, '').replace(/^"|"$/g, '');
}

async function text(res: IncomingMessage): Promise<string> {
  let out = '';
  for await (const part of res) if (out.length < 4096) out += String(part);
  return out;
}

export class HfStore implements ObjectStore {
  readonly url: string;
  readonly capabilities: StoreCapabilities = { scheme: 'hf', serverSideIfMatch: false, maxObjectSize: 0 };
  readonly #o: HfStoreOptions;
  readonly #agents: Agents = createAgents();

  constructor(options: HfStoreOptions) {
    this.#o = { ...options, endpoint: options.endpoint.replace(/\/+$/, '') };
    this.url = `hf+${this.#o.endpoint}/${options.repo}`;
  }

  get #kind(): 'models' | 'datasets' {
    return this.#o.repo.startsWith('datasets/') ? 'datasets' : 'models';
  }

  get #id(): string {
    return this.#o.repo.replace(/^datasets\//, '');
  }

  #resolveUrl(key: string): string {
    const slash = key.indexOf('/');
    if (slash <= 0) throw new InvalidArgumentError(`${this.url}: key "${key}" is not <commit>/<path>`);
    const path = key
      .slice(slash + 1)
      .split('/')
      .map(encodeURIComponent)
      .join('/');
    return `${this.#o.endpoint}/${this.#o.repo}/resolve/${key.slice(0, slash)}/${path}`;
  }

  #auth(url: string): Record<string, string> {
    return this.#o.token && new URL(url).host === new URL(this.#o.endpoint).host ? { authorization: `Bearer ${this.#o.token}` } : {};
  }

  async #send(method: string, url: string, headers: Record<string, string> = {}): Promise<IncomingMessage> {
    try {
      return await exchange(this.#agents, this.url, method, url, { ...this.#auth(url), ...headers });
    } catch (err) {
      throw new TransientError(`${this.url}: ${method} ${new URL(url).host}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** The Hub's answer as one of Ferry's errors, naming the repo (and what to do about a token). */
  async #failure(res: IncomingMessage, what: string): Promise<Error> {
    const body = await text(res);
    const code = unquote(res.headers['x-error-code']);
    const said = unquote(res.headers['x-error-message']) ?? body.slice(0, 200);
    const where = `${what} in ${this.#o.repo} at ${this.#o.endpoint}`;
    const status = res.statusCode ?? 0;
    // Like the Hub, a private repo answers a caller without a token as a missing one.
    if (code === 'RepoNotFound') {
      return new NotFoundError(`no repo ${this.#o.repo} at ${this.#o.endpoint}${this.#o.token ? '' : ' (or it is private: set HF_TOKEN)'}`);
    }
    if (code === 'GatedRepo' || status === 401) {
      return this.#o.token
        ? new UnauthorizedError(`${where}: the Hub refused the token (HF_TOKEN or hub.token): ${said}`)
        : new UnauthorizedError(`${where}: the repo needs a token with access; set HF_TOKEN (or hub.token)`);
    }
    if (status === 403) return new AccessDeniedError(`${where}: the token has no access: ${said}`);
    if (code === 'RevisionNotFound') return new NotFoundError(`${where}: no such revision`);
    if (status === 404) return new NotFoundError(`${where}: not found`);
    return new TransientError(`${where}: HTTP ${status}: ${said}`);
  }

  async #json<T>(path: string, what: string): Promise<{ body: T; res: IncomingMessage }> {
    const res = await this.#send('GET', `${this.#o.endpoint}${path}`);
    if (res.statusCode !== 200) throw await this.#failure(res, what);
    return { body: JSON.parse(await text(res)) as T, res };
  }

  /** The 40-hex commit a revision (branch, or commit id) names, and its date (ms). */
  async commit(revision: string): Promise<{ sha: string; date: number }> {
    const rev = encodeURIComponent(revision);
    const { body } = await this.#json<{ sha?: string; lastModified?: string }>(
      `/api/${this.#kind}/${this.#id}/revision/${rev}`,
      `revision ${revision}`,
    );
    if (typeof body.sha !== 'string' || !/^[0-9a-f]{40}$/.test(body.sha)) {
      throw new TransientError(`${this.url}: the Hub named no commit for revision ${revision}`);
    }
    return { sha: body.sha, date: body.lastModified ? Date.parse(body.lastModified) || 0 : 0 };
  }

  /** Every file of the repo at a commit, page by page (`Link: <…>; rel="next"`). */
  async *files(sha: string): AsyncIterable<HfTreeFile[]> {
    let path: string | undefined = `/api/${this.#kind}/${this.#id}/tree/${sha}?recursive=true`;
    while (path) {
      const page: { body: Array<HfTreeFile & { type: string }>; res: IncomingMessage } = await this.#json(path, `the tree of ${sha}`);
      yield page.body
        .filter((e) => e.type === 'file')
        .map(({ path: p, size, oid, lfs }) => ({ path: p, size, oid, ...(lfs ? { lfs } : {}) }));
      const next: string | undefined = /<([^>]+)>;\s*rel="next"/.exec(String(page.res.headers.link ?? ''))?.[1];
      // The next page on the Hub's own host (the token goes nowhere else).
      path = next ? `${new URL(next, this.#o.endpoint).pathname}${new URL(next, this.#o.endpoint).search}` : undefined;
    }
  }

  async head(key: string): Promise<ObjectInfo> {
    const res = await this.#send('HEAD', this.#resolveUrl(key));
    res.resume();
    if (res.statusCode !== 200 && !REDIRECTS.has(res.statusCode ?? 0)) throw await this.#failure(res, key);
    const size = Number(res.headers['x-linked-size'] ?? res.headers['content-length']);
    return { key, size, etag: unquote(res.headers['x-linked-etag'] ?? res.headers.etag) ?? '', lastModified: 0 };
  }

  async get(key: string, options: GetOptions = {}): Promise<GetResult> {
    const { range, ifMatch } = options;
    const headers: Record<string, string> = range ? { range: `bytes=${range.start}-${range.end ?? ''}` } : {};
    let url = this.#resolveUrl(key);
    let info: ObjectInfo | undefined;
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const res = await this.#send('GET', url, headers);
      const status = res.statusCode ?? 0;
      if (!info) {
        if (status !== 200 && status !== 206 && !REDIRECTS.has(status)) throw await this.#failure(res, key);
        const etag = unquote(res.headers['x-linked-etag'] ?? res.headers.etag) ?? '';
        const size = Number(res.headers['x-linked-size'] ?? res.headers['content-range']?.split('/')[1] ?? res.headers['content-length']);
        info = { key, size, etag, lastModified: 0 };
        if (ifMatch !== undefined && etag !== ifMatch) {
          res.resume();
          throw new PreconditionFailedError(`${this.url} ${key}: etag is ${etag}, expected ${ifMatch} (the repo changed the file)`);
        }
      }
      if (REDIRECTS.has(status) && res.headers.location) {
        res.resume();
        url = new URL(res.headers.location, url).href;
        continue;
      }
      if (status !== 200 && status !== 206) throw await this.#failure(res, key);
      const served = /bytes (\d+)-(\d+)\//.exec(String(res.headers['content-range'] ?? ''));
      const start = served ? Number(served[1]) : 0;
      const end = served ? Number(served[2]) : info.size - 1;
      if (range && status === 200 && range.start > 0) {
        res.resume();
        throw new TransientError(`${this.url} ${key}: the server ignored the range`);
      }
      return { info, start, end, body: res };
    }
    throw new TransientError(`${this.url} ${key}: more than ${MAX_REDIRECTS} redirects`);
  }

  /** A small file's bytes, whole. */
  async bytes(key: string): Promise<Buffer> {
    const { body } = await this.get(key);
    const parts: Buffer[] = [];
    for await (const part of body) parts.push(part as Buffer);
    return Buffer.concat(parts);
  }

  async put(): Promise<PutResult> {
    throw new AccessDeniedError(`${this.url} is read-only: Hugging Face repos are imported, never written`);
  }

  async delete(): Promise<void> {
    throw new AccessDeniedError(`${this.url} is read-only: Hugging Face repos are imported, never written`);
  }

  // biome-ignore lint/correctness/useYield: a repo is listed by commit (files()), not by key prefix
  async *list(): AsyncIterable<ListPage> {
    throw new InvalidArgumentError(`${this.url}: a Hub repo is listed by commit (ferry import hf://…), not by prefix`);
  }

  async close(): Promise<void> {
    this.#agents.http.destroy();
    this.#agents.https.destroy();
  }
}
