// The S3 and GCS backends are their own entry points (`@ferry/stores/s3`, `@ferry/stores/gcs`):
// importing this one does not load a cloud SDK.
export { bodyLength, bodyStream, readAll } from './body.js';
export { createStore, parseStoreUrl, redactStoreUrl, type StoreCredentials, type StoreUrl } from './create-store.js';
export { type FaultOptions, type FaultStats, FaultStore, type StoreOperation } from './fault-store.js';
export { FsStore, type FsStoreOptions } from './fs-store.js';
export { HfStore, type HfStoreOptions, type HfTreeFile } from './hf-store.js';
export { assertValidKey, compareKeys, resolveRange } from './keys.js';
export { LazyStore, type LazyStoreOptions } from './lazy-store.js';
export { MemoryStore } from './memory-store.js';
export { PrefixStore } from './prefix-store.js';
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
  PutOptions,
  PutResult,
  StoreCapabilities,
} from './types.js';
