import { createHmac } from 'node:crypto';
import { sameSecret } from '@ferry/runtime';
import { S3Error } from './errors.js';
import { canonicalUri, decodeQueryComponent, type SignedRequest } from './sigv4.js';

/**
 * AWS Signature Version 2 in its presigned-URL form (`?AWSAccessKeyId=…&Expires=…&Signature=…`),
 * what the aws CLI v1 and older SDKs make for `presign` in us-east-1. Only for GET and HEAD (all a
 * read-only gateway serves); the header form (`Authorization: AWS …`) is not taken.
 * https://docs.aws.amazon.com/AmazonS3/latest/userguide/RESTAuthentication.html#RESTAuthenticationQueryStringAuth
 */

/** Query parameters that are part of the resource a V2 signature covers (the rest are not signed). */
const SUB_RESOURCES = new Set([
  'acl',
  'cors',
  'delete',
  'lifecycle',
  'location',
  'logging',
  'notification',
  'partNumber',
  'policy',
  'requestPayment',
  'response-cache-control',
  'response-content-disposition',
  'response-content-encoding',
  'response-content-language',
  'response-content-type',
  'response-expires',
  'restore',
  'tagging',
  'torrent',
  'uploadId',
  'uploads',
  'versionId',
  'versioning',
  'versions',
  'website',
]);

/** True when the query carries a V2 presigned signature. */
export function isV2Presigned(query: URLSearchParams): boolean {
  return query.has('AWSAccessKeyId') || (query.has('Signature') && query.has('Expires'));
}

/** The signed sub-resources of a query, sorted by name, values decoded: `?response-content-type=x&versionId=1`. */
function subResources(rawQuery: string): string {
  const pairs: Array<[string, string | undefined]> = [];
  for (const part of rawQuery.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = decodeQueryComponent(eq < 0 ? part : part.slice(0, eq));
    if (SUB_RESOURCES.has(name)) pairs.push([name, eq < 0 ? undefined : decodeQueryComponent(part.slice(eq + 1))]);
  }
  pairs.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return pairs.length === 0 ? '' : `?${pairs.map(([n, v]) => (v === undefined ? n : `${n}=${v}`)).join('&')}`;
}

/** `x-amz-*` headers, lower-cased and sorted, `name:value\n` each (repeats joined by ","). */
function amzHeaders(rawHeaders: readonly string[]): string {
  const values = new Map<string, string[]>();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = (rawHeaders[i] as string).toLowerCase();
    if (!name.startsWith('x-amz-')) continue;
    values.set(name, [...(values.get(name) ?? []), (rawHeaders[i + 1] as string).trim()]);
  }
  return [...values.keys()]
    .sort()
    .map((name) => `${name}:${(values.get(name) ?? []).join(',')}\n`)
    .join('');
}

function headerValue(rawHeaders: readonly string[], name: string): string {
  for (let i = 0; i + 1 < rawHeaders.length; i += 2)
    if ((rawHeaders[i] as string).toLowerCase() === name) return rawHeaders[i + 1] as string;
  return '';
}

/** The V2 signature of a string to sign: base64 of its HMAC-SHA1 under the secret. */
export function signatureV2(secret: string, stringToSign: string): string {
  return createHmac('sha1', secret).update(stringToSign, 'utf8').digest('base64');
}

/**
 * The access key id of a valid V2 presigned GET or HEAD, or an S3Error with S3's code: an unknown
 * key is InvalidAccessKeyId, a passed `Expires` AccessDenied, a wrong signature
 * SignatureDoesNotMatch.
 */
export function verifyV2Presigned(
  req: SignedRequest,
  query: URLSearchParams,
  options: { secretOf: (accessKeyId: string) => string | undefined; now?: number },
): string {
  const accessKeyId = query.get('AWSAccessKeyId');
  const signature = query.get('Signature');
  const expires = query.get('Expires');
  if (!accessKeyId || !signature || !expires) {
    throw new S3Error('AccessDenied', 'a presigned URL of signature version 2 needs AWSAccessKeyId, Expires and Signature');
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    throw new S3Error('AccessDenied', 'signature version 2 is taken for GET and HEAD only; sign with AWS4-HMAC-SHA256');
  }
  const secret = options.secretOf(accessKeyId);
  if (secret === undefined) throw new S3Error('InvalidAccessKeyId', 'the access key id you provided does not exist in our records');
  if (!/^\d{1,12}$/.test(expires)) throw new S3Error('AccessDenied', 'Expires must be seconds since the epoch');
  if ((options.now ?? Date.now()) > Number(expires) * 1000) throw new S3Error('AccessDenied', 'request has expired');
  let resources: string[];
  let sub: string;
  try {
    // As received and in AWS's own spelling: clients differ in how they encode a key.
    resources = [...new Set([req.rawPath, canonicalUri(req.rawPath)])];
    sub = subResources(req.rawQuery);
  } catch {
    throw new S3Error('InvalidArgument', 'the request URI is not valid percent-encoding');
  }
  const head = [req.method, headerValue(req.rawHeaders, 'content-md5'), headerValue(req.rawHeaders, 'content-type'), expires, ''].join(
    '\n',
  );
  for (const resource of resources) {
    if (sameSecret(signature, signatureV2(secret, `${head}${amzHeaders(req.rawHeaders)}${resource}${sub}`))) return accessKeyId;
  }
  throw new S3Error('SignatureDoesNotMatch', 'the request signature we calculated does not match the signature you provided');
}
