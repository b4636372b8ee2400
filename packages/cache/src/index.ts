export * from './client.js';
export * from './membership.js';
export * from './placement.js';
export * from './tier.js';
export * from './warm.js';
