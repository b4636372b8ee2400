export * from './file-stream.js';
export * from './open-region.js';
export * from './region-reader.js';
