export * from './payloads.js';
export * from './queues.js';
