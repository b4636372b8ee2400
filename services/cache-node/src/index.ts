export * from './app.js';
export * from './disk-cache.js';
export * from './metrics.js';
export * from './node.js';
export * from './upstream.js';
