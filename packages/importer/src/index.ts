export { type CheckpointState, emptyCounts, type ImportCounts } from './checkpoint.js';
export { importedEntry, importedFrom, sameFingerprint } from './entries.js';
export { type HubImportOptions, type HubImportSummary, importHub } from './hub-import.js';
export { type ImportOptions, type ImportProgress, type ImportSummary, importPrefix } from './importer.js';
export { importId, type MappedKey, mapKey, originStoreUrl, SKIP_REASONS, type SkipReason } from './keys.js';
