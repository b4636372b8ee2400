export { build, type HubOptions, listen } from './app.js';
export { Hub, type HubServiceOptions } from './hub.js';
export { createMetrics, type HubMetrics } from './metrics.js';
export { contentOf, type RepoKind, type RepoRef, repoFolder, repoRef, revisionId } from './repos.js';
export { type RepoSnapshot, readSnapshot, Snapshots } from './snapshots.js';
