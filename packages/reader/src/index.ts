export * from './chunk-reader.js';
export * from './file-stream.js';
export * from './tier.js';
