export * from './app.js';
export * from './errors.js';
export * from './gateway.js';
export * from './listing.js';
export * from './metrics.js';
export * from './objects.js';
export * from './sigv4.js';
export * from './target.js';
