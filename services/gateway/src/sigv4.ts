import { createHash, createHmac } from 'node:crypto';
import { sameSecret } from '@ferry/runtime';
import { S3Error } from './errors.js';

/**
 * AWS Signature Version 4 verification for S3 requests, both forms: the Authorization header and
 * a presigned URL (X-Amz-* query parameters). Pure: the caller hands in the request as received.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-authenticating-requests.html
 */

export const ALGORITHM = 'AWS4-HMAC-SHA256';
export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';
/** Largest X-Amz-Expires S3 accepts (7 days). */
export const MAX_EXPIRES_SECONDS = 604_800;
const DEFAULT_SKEW_MS = 15 * 60_000;

export interface SignedRequest {
  method: string;
  /** Path as received, still percent-encoded, without the query. */
  rawPath: string;
  /** Query string as received, without "?" ('' when none). */
  rawQuery: string;
  /** Node's `rawHeaders`: [name, value, name, value, …]. */
  rawHeaders: readonly string[];
}

export interface VerifyOptions {
  /** Secret of an access key id, or undefined when the id is unknown. */
  secretOf: (accessKeyId: string) => string | undefined;
  /** The region clients must sign for. */
  region: string;
  now?: number;
  maxSkewMs?: number;
}

export type AuthResult = { kind: 'anonymous' } | { kind: 'signed'; accessKeyId: string; presigned: boolean };

/** AWS URI encoding: every byte but A-Z a-z 0-9 - _ . ~ as %XX (upper-case hex). */
export function uriEncode(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** Decode one query component: "+" is a space (form encoding), then %XX. Throws URIError. */
export function decodeQueryComponent(value: string): string {
  return decodeURIComponent(value.replace(/\+/g, '%20'));
}

/** Each path segment decoded and encoded again, so every client's spelling of a key signs alike. */
export function canonicalUri(rawPath: string): string {
  return rawPath
    .split('/')
    .map((segment) => uriEncode(decodeURIComponent(segment)))
    .join('/');
}

/** Parameters sorted by encoded name then value, `name=value` joined by "&"; `skip` names are left out. */
export function canonicalQuery(rawQuery: string, skip: ReadonlySet<string> = new Set()): string {
  if (rawQuery === '') return '';
  const pairs: Array<[string, string]> = [];
  for (const part of rawQuery.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = decodeQueryComponent(eq < 0 ? part : part.slice(0, eq));
    if (skip.has(name)) continue;
    pairs.push([uriEncode(name), uriEncode(eq < 0 ? '' : decodeQueryComponent(part.slice(eq + 1)))]);
  }
  pairs.sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0));
  return pairs.map(([n, v]) => `${n}=${v}`).join('&');
}

/** `name:value\n` for each signed header: values trimmed, inner runs of spaces collapsed, repeats joined by ",". */
export function canonicalHeaders(rawHeaders: readonly string[], signed: readonly string[]): string {
  const values = new Map<string, string[]>();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = (rawHeaders[i] as string).toLowerCase();
    if (!signed.includes(name)) continue;
    const list = values.get(name) ?? [];
    list.push((rawHeaders[i + 1] as string).trim().replace(/\s+/g, ' '));
    values.set(name, list);
  }
  return signed.map((name) => `${name}:${(values.get(name) ?? []).join(',')}\n`).join('');
}

function sha256Hex(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('hex');
}

function hmac(key: Buffer | string, value: string): Buffer {
  return createHmac('sha256', key).update(value, 'utf8').digest();
}

export function signingKey(secret: string, date: string, region: string, service: string): Buffer {
  return hmac(hmac(hmac(hmac(`AWS4${secret}`, date), region), service), 'aws4_request');
}

export interface CanonicalParts {
  method: string;
  uri: string;
  query: string;
  headers: string;
  signedHeaders: string;
  payloadHash: string;
}

export function canonicalRequest(p: CanonicalParts): string {
  return [p.method, p.uri, p.query, p.headers, p.signedHeaders, p.payloadHash].join('\n');
}

export function stringToSign(amzDate: string, scope: string, canonical: string): string {
  return [ALGORITHM, amzDate, scope, sha256Hex(canonical)].join('\n');
}

export function signatureOf(secret: string, amzDate: string, scope: Scope, canonical: string): string {
  const key = signingKey(secret, scope.date, scope.region, scope.service);
  return createHmac('sha256', key)
    .update(stringToSign(amzDate, scopeString(scope), canonical), 'utf8')
    .digest('hex');
}

export interface Scope {
  accessKeyId: string;
  date: string;
  region: string;
  service: string;
}

function scopeString(s: Scope): string {
  return `${s.date}/${s.region}/${s.service}/aws4_request`;
}

function parseCredential(value: string, bad: (why: string) => S3Error): Scope {
  const parts = value.split('/');
  const [accessKeyId, date, region, service, terminator] = parts;
  if (parts.length !== 5 || !accessKeyId || !date || !region || !service || terminator !== 'aws4_request' || !/^\d{8}$/.test(date)) {
    throw bad('the credential must look like <access key id>/<yyyymmdd>/<region>/s3/aws4_request');
  }
  return { accessKeyId, date, region, service };
}

/** 20130524T000000Z → ms since the epoch, or NaN. */
export function parseAmzDate(value: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (!m) return Number.NaN;
  const [, y, mo, d, h, mi, s] = m.map(Number) as number[];
  return Date.UTC(y as number, (mo as number) - 1, d, h, mi, s);
}

function headerValue(rawHeaders: readonly string[], name: string): string | undefined {
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) if ((rawHeaders[i] as string).toLowerCase() === name) return rawHeaders[i + 1];
  return undefined;
}

interface Claim {
  scope: Scope;
  amzDate: string;
  signedHeaders: string[];
  signature: string;
  payloadHash: string;
  presigned: boolean;
  skipQuery: ReadonlySet<string>;
}

function headerClaim(req: SignedRequest, header: string): Claim {
  const bad = (why: string) => new S3Error('AuthorizationHeaderMalformed', `the authorization header is malformed: ${why}`);
  if (!header.startsWith(`${ALGORITHM} `)) {
    throw new S3Error('InvalidRequest', `the authorization mechanism is not supported; use ${ALGORITHM}`);
  }
  const fields = new Map<string, string>();
  for (const item of header.slice(ALGORITHM.length + 1).split(',')) {
    const eq = item.indexOf('=');
    if (eq > 0) fields.set(item.slice(0, eq).trim(), item.slice(eq + 1).trim());
  }
  const credential = fields.get('Credential');
  const signedHeaders = fields.get('SignedHeaders');
  const signature = fields.get('Signature');
  if (!credential || !signedHeaders || !signature) throw bad('Credential, SignedHeaders and Signature are required');
  const amzDate = headerValue(req.rawHeaders, 'x-amz-date');
  if (!amzDate) throw new S3Error('AccessDenied', 'AWS authentication requires a valid x-amz-date header');
  const payloadHash = headerValue(req.rawHeaders, 'x-amz-content-sha256');
  if (!payloadHash) throw new S3Error('InvalidRequest', 'missing required header for this request: x-amz-content-sha256');
  const names = signedHeaders.split(';');
  for (const required of ['host', 'x-amz-date', 'x-amz-content-sha256']) {
    if (!names.includes(required)) throw bad(`SignedHeaders must include ${required}`);
  }
  return {
    scope: parseCredential(credential, bad),
    amzDate,
    signedHeaders: names,
    signature,
    payloadHash,
    presigned: false,
    skipQuery: new Set(),
  };
}

function queryClaim(query: URLSearchParams): Claim {
  const bad = (why: string) => new S3Error('AuthorizationQueryParametersError', `the presigned URL is malformed: ${why}`);
  const get = (name: string) => query.get(name) ?? undefined;
  if (get('X-Amz-Algorithm') !== ALGORITHM) throw bad(`X-Amz-Algorithm must be ${ALGORITHM}`);
  const credential = get('X-Amz-Credential');
  const amzDate = get('X-Amz-Date');
  const signedHeaders = get('X-Amz-SignedHeaders');
  const signature = get('X-Amz-Signature');
  const expires = get('X-Amz-Expires');
  if (!credential || !amzDate || !signedHeaders || !signature || !expires) {
    throw bad('X-Amz-Credential, X-Amz-Date, X-Amz-Expires, X-Amz-SignedHeaders and X-Amz-Signature are required');
  }
  if (!/^\d{1,7}$/.test(expires) || Number(expires) < 1 || Number(expires) > MAX_EXPIRES_SECONDS) {
    throw bad(`X-Amz-Expires must be 1..${MAX_EXPIRES_SECONDS} seconds`);
  }
  const names = signedHeaders.split(';');
  if (!names.includes('host')) throw bad('X-Amz-SignedHeaders must include host');
  return {
    scope: parseCredential(credential, bad),
    amzDate,
    signedHeaders: names,
    signature,
    payloadHash: get('X-Amz-Content-Sha256') ?? UNSIGNED_PAYLOAD,
    presigned: true,
    skipQuery: new Set(['X-Amz-Signature']),
  };
}

/**
 * Who signed the request, or `anonymous` when it carries no signature at all (the caller decides
 * whether that is allowed). Throws S3Error with S3's codes: InvalidAccessKeyId,
 * SignatureDoesNotMatch, RequestTimeTooSkewed, AccessDenied (expired), *Malformed.
 */
export function verifyRequest(req: SignedRequest, options: VerifyOptions): AuthResult {
  const header = headerValue(req.rawHeaders, 'authorization');
  // Decoded only to read the X-Amz-* values; the canonical query is built from the raw string.
  const query = new URLSearchParams(req.rawQuery);
  const presigned = query.has('X-Amz-Signature') || query.has('X-Amz-Credential') || query.has('X-Amz-Algorithm');
  if (header !== undefined && presigned) throw new S3Error('InvalidArgument', 'only one auth mechanism allowed');
  if (header === undefined && !presigned) return { kind: 'anonymous' };
  const claim = header !== undefined ? headerClaim(req, header) : queryClaim(query);
  const { scope } = claim;
  const secret = options.secretOf(scope.accessKeyId);
  if (secret === undefined) throw new S3Error('InvalidAccessKeyId', 'the access key id you provided does not exist in our records');
  if (scope.service !== 's3') throw new S3Error('AuthorizationHeaderMalformed', `the service "${scope.service}" is wrong; expecting "s3"`);
  if (scope.region !== options.region) {
    throw new S3Error('AuthorizationHeaderMalformed', `the region "${scope.region}" is wrong; expecting "${options.region}"`);
  }
  const signedAt = parseAmzDate(claim.amzDate);
  if (Number.isNaN(signedAt)) throw new S3Error('AccessDenied', 'X-Amz-Date must look like 20130524T000000Z');
  if (claim.amzDate.slice(0, 8) !== scope.date) {
    throw new S3Error('SignatureDoesNotMatch', 'the date of the credential scope does not match X-Amz-Date');
  }
  const now = options.now ?? Date.now();
  const skew = options.maxSkewMs ?? DEFAULT_SKEW_MS;
  if (claim.presigned) {
    const expires = Number(query.get('X-Amz-Expires'));
    if (signedAt - skew > now) throw new S3Error('AccessDenied', 'request is not valid yet');
    if (now > signedAt + expires * 1000) throw new S3Error('AccessDenied', 'request has expired');
  } else if (Math.abs(now - signedAt) > skew) {
    throw new S3Error('RequestTimeTooSkewed', 'the difference between the request time and the current time is too large');
  }
  let uris: string[];
  let canonicalQ: string;
  try {
    // Clients that spell a key's characters differently from AWS's rules (e.g. "%2e") sign the
    // path as they sent it; both forms name the same bytes, so either signature is genuine.
    uris = [...new Set([canonicalUri(req.rawPath), req.rawPath])];
    canonicalQ = canonicalQuery(req.rawQuery, claim.skipQuery);
  } catch {
    throw new S3Error('InvalidArgument', 'the request URI is not valid percent-encoding');
  }
  const signedNames = claim.signedHeaders.join(';');
  const headers = canonicalHeaders(req.rawHeaders, claim.signedHeaders);
  for (const uri of uris) {
    const canonical = canonicalRequest({
      method: req.method,
      uri,
      query: canonicalQ,
      headers,
      signedHeaders: signedNames,
      payloadHash: claim.payloadHash,
    });
    if (sameSecret(claim.signature, signatureOf(secret, claim.amzDate, scope, canonical))) {
      return { kind: 'signed', accessKeyId: scope.accessKeyId, presigned: claim.presigned };
    }
  }
  throw new S3Error('SignatureDoesNotMatch', 'the request signature we calculated does not match the signature you provided');
}
