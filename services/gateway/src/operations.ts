import type { Meta } from '@ferry/meta';
import { S3Error } from './errors.js';
import { decodeToken, encodeToken, listKeys } from './listing.js';
import { etagOf } from './objects.js';
import { listXml } from './xml.js';

/** Query parameters of ListObjects (v1) and ListObjectsV2. */
export const LIST_PARAMS = new Set([
  'list-type',
  'prefix',
  'delimiter',
  'max-keys',
  'encoding-type',
  'continuation-token',
  'start-after',
  'fetch-owner',
  'marker',
]);

const MAX_KEYS = 1000;

function maxKeys(value: string | undefined): number {
  if (value === undefined || value === '') return MAX_KEYS;
  if (!/^\d{1,10}$/.test(value)) throw new S3Error('InvalidArgument', 'max-keys must be a non-negative integer');
  return Math.min(Number(value), MAX_KEYS);
}

/**
 * ListObjectsV2 (`list-type=2`) and ListObjects (v1) of the volume's bucket, as S3's XML.
 * fetch-owner is accepted and ignored: a volume has no object owners.
 */
export async function handleList(meta: Meta, bucket: string, query: ReadonlyMap<string, string>): Promise<string> {
  const listType = query.get('list-type');
  if (listType !== undefined && listType !== '2') throw new S3Error('InvalidArgument', 'list-type must be 2 when given');
  const version = listType === '2' ? 2 : 1;
  const prefix = query.get('prefix') ?? '';
  const rawDelimiter = query.get('delimiter') ?? '';
  if (rawDelimiter !== '' && rawDelimiter !== '/') {
    throw new S3Error('NotImplemented', `delimiter "${rawDelimiter}" is not supported: a volume lists by "/" only`);
  }
  const delimiter = rawDelimiter === '/' ? '/' : undefined;
  const encoding = query.get('encoding-type');
  if (encoding !== undefined && encoding !== 'url') throw new S3Error('InvalidArgument', 'encoding-type must be "url" when given');
  const limit = maxKeys(query.get('max-keys'));

  let after: string | undefined;
  const token = version === 2 ? query.get('continuation-token') : undefined;
  if (token !== undefined) {
    after = decodeToken(token);
    if (after === undefined) throw new S3Error('InvalidArgument', 'the continuation token provided is incorrect');
  } else {
    after = version === 2 ? query.get('start-after') : query.get('marker');
    if (after === '') after = undefined;
  }

  const result = await listKeys((dir, options) => meta.list(dir, options), {
    prefix,
    maxKeys: limit,
    ...(delimiter ? { delimiter } : {}),
    ...(after !== undefined ? { after } : {}),
  });
  const next = result.truncated && result.last !== undefined ? result.last : undefined;
  return listXml({
    version,
    bucket,
    prefix,
    ...(delimiter ? { delimiter } : {}),
    maxKeys: limit,
    encodeUrl: encoding === 'url',
    contents: result.contents.map(({ key, entry }) => ({ key, lastModified: entry.mtime, etag: etagOf(entry), size: entry.size })),
    commonPrefixes: result.commonPrefixes,
    truncated: result.truncated,
    ...(version === 2
      ? {
          ...(token !== undefined ? { continuationToken: token } : {}),
          ...(next !== undefined ? { nextContinuationToken: encodeToken(next) } : {}),
          ...(query.has('start-after') ? { startAfter: query.get('start-after') ?? '' } : {}),
        }
      : { marker: query.get('marker') ?? '', ...(next !== undefined ? { nextMarker: next } : {}) }),
  });
}
