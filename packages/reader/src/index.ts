export * from './chunk-reader.js';
export * from './file-stream.js';
export * from './memory-cache.js';
export * from './region-reader.js';
export * from './tier.js';
