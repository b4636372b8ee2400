/**
 * The few S3 XML documents the gateway writes, by hand: they are flat, fixed shapes, and
 * escaping five characters is all they need (a library would add a dependency for no gain).
 */

const NS = 'http://s3.amazonaws.com/doc/2006-03-01/';
const HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n';

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };

// biome-ignore lint/suspicious/noControlCharactersInRegex: escaping them is the point
const UNSAFE = /[&<>"']|[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g;

/**
 * Text safe inside an element. C0 controls XML 1.0 cannot carry become character references, as
 * S3 writes them; a lone surrogate (not UTF-8 encodable) becomes U+FFFD. Volume paths refuse
 * control characters, so these only guard against a bad entry breaking a whole listing.
 */
export function escapeXml(value: string): string {
  return value
    .replace(UNSAFE, (c) => {
      return ENTITIES[c] ?? `&#x${c.charCodeAt(0).toString(16).toUpperCase()};`;
    })
    .replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
}

function el(name: string, value: string | number | boolean): string {
  return `<${name}>${escapeXml(String(value))}</${name}>`;
}

export function errorXml(e: { code: string; message: string; resource: string; requestId: string }): string {
  return `${HEAD}<Error>${el('Code', e.code)}${el('Message', e.message)}${el('Resource', e.resource)}${el('RequestId', e.requestId)}</Error>`;
}

export interface ObjectXml {
  key: string;
  lastModified: number;
  etag: string;
  size: number;
}

export interface ListXml {
  version: 1 | 2;
  bucket: string;
  prefix: string;
  delimiter?: string;
  maxKeys: number;
  /** With encoding-type=url every key-like value is URL-encoded and the response says so. */
  encodeUrl: boolean;
  contents: ObjectXml[];
  commonPrefixes: string[];
  truncated: boolean;
  /** v2 */
  continuationToken?: string;
  nextContinuationToken?: string;
  startAfter?: string;
  /** v1 */
  marker?: string;
  nextMarker?: string;
}

/** S3's encoding for encoding-type=url: percent-encoding, with "/" left readable as S3 does. */
export function urlEncodeKey(value: string): string {
  return encodeURIComponent(value).replace(/%2F/g, '/');
}

export function listXml(l: ListXml): string {
  const k = (value: string) => (l.encodeUrl ? urlEncodeKey(value) : value);
  const out: string[] = [`${HEAD}<ListBucketResult xmlns="${NS}">`, el('Name', l.bucket), el('Prefix', k(l.prefix))];
  if (l.version === 2) {
    if (l.startAfter !== undefined) out.push(el('StartAfter', k(l.startAfter)));
    if (l.continuationToken !== undefined) out.push(el('ContinuationToken', l.continuationToken));
    if (l.nextContinuationToken !== undefined) out.push(el('NextContinuationToken', l.nextContinuationToken));
    out.push(el('KeyCount', l.contents.length + l.commonPrefixes.length));
  } else {
    out.push(el('Marker', k(l.marker ?? '')));
    if (l.nextMarker !== undefined) out.push(el('NextMarker', k(l.nextMarker)));
  }
  out.push(el('MaxKeys', l.maxKeys));
  if (l.delimiter !== undefined) out.push(el('Delimiter', k(l.delimiter)));
  if (l.encodeUrl) out.push(el('EncodingType', 'url'));
  out.push(el('IsTruncated', l.truncated));
  for (const c of l.contents) {
    out.push(
      `<Contents>${el('Key', k(c.key))}${el('LastModified', new Date(c.lastModified).toISOString())}${el('ETag', c.etag)}${el('Size', c.size)}${el('StorageClass', 'STANDARD')}</Contents>`,
    );
  }
  for (const p of l.commonPrefixes) out.push(`<CommonPrefixes>${el('Prefix', k(p))}</CommonPrefixes>`);
  out.push('</ListBucketResult>');
  return out.join('');
}

export function listBucketsXml(buckets: Array<{ name: string; created: number }>): string {
  const items = buckets.map((b) => `<Bucket>${el('Name', b.name)}${el('CreationDate', new Date(b.created).toISOString())}</Bucket>`);
  return `${HEAD}<ListAllMyBucketsResult xmlns="${NS}"><Owner>${el('ID', 'ferry')}${el('DisplayName', 'ferry')}</Owner><Buckets>${items.join('')}</Buckets></ListAllMyBucketsResult>`;
}

/** us-east-1 is an empty constraint in S3, and clients expect exactly that. */
export function locationXml(region: string): string {
  return `${HEAD}<LocationConstraint xmlns="${NS}">${region === 'us-east-1' ? '' : escapeXml(region)}</LocationConstraint>`;
}
