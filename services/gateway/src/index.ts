export { build, type GatewayOptions, listen } from './app.js';
export { S3Error, type S3ErrorCode, toS3Error } from './errors.js';
export { Gateway, type GatewayServiceOptions } from './gateway.js';
export {
  compareKeys,
  decodeToken,
  encodeToken,
  type ListedObject,
  type ListFn,
  type ListRequest,
  type ListResult,
  listKeys,
  prefixDir,
} from './listing.js';
export { createMetrics, type GatewayMetrics } from './metrics.js';
export {
  checkPreconditions,
  etagOf,
  OBJECT_PARAMS,
  type ObjectPlan,
  parseRange,
  planObject,
  type RequestHeaders,
} from './objects.js';
export {
  ALGORITHM,
  type AuthResult,
  type CanonicalParts,
  canonicalHeaders,
  canonicalQuery,
  canonicalRequest,
  canonicalUri,
  decodeQueryComponent,
  MAX_EXPIRES_SECONDS,
  parseAmzDate,
  type Scope,
  type SignedRequest,
  signatureOf,
  signingKey,
  stringToSign,
  UNSIGNED_PAYLOAD,
  uriEncode,
  type VerifyOptions,
  verifyRequest,
} from './sigv4.js';
export { INTERNAL_PREFIX, keyToPath, type ParsedUrl, parseUrl, type Target } from './target.js';
