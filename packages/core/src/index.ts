export * from './chunk-id.js';
export { forEachLimit } from './concurrency.js';
export * from './config.js';
export * from './errors.js';
export * from './hashing.js';
export * from './logger.js';
export * from './paths.js';
export * from './size.js';
export type * from './types.js';
