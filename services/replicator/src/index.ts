export * from './api.js';
export * from './copy-worker.js';
export * from './metrics.js';
export * from './replicator.js';
export * from './status.js';
export * from './throttle.js';
export * from './warmup.js';
export * from './watcher.js';
