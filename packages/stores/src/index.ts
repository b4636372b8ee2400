export { bodyLength, bodyStream, readAll } from './body.js';
export { createStore, parseStoreUrl, redactStoreUrl, type StoreUrl } from './create-store.js';
export { type FaultOptions, type FaultStats, FaultStore, type StoreOperation } from './fault-store.js';
export { FsStore, type FsStoreOptions } from './fs-store.js';
export { GcsStore, type GcsStoreOptions } from './gcs-store.js';
export { assertValidKey, compareKeys, resolveRange } from './keys.js';
export { MemoryStore } from './memory-store.js';
export { PrefixStore } from './prefix-store.js';
export { S3Store, type S3StoreOptions } from './s3-store.js';
export { StoresByUrl } from './stores-by-url.js';
export type {
  ByteRange,
  GetOptions,
  GetResult,
  ListOptions,
  ListPage,
  ObjectInfo,
  ObjectStore,
  PutBody,
  PutResult,
  StoreCapabilities,
} from './types.js';
