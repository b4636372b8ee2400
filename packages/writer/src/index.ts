export { type BytesFile, type ChunkFileOptions, chunkFile, type FileChunk, type PutInput } from './chunking.js';
export { ChunkHolds } from './holds.js';
export { type LocalFile, planPut } from './local-files.js';
export { type PutOptions, type PutSummary, putFiles } from './put-files.js';
export { type Staged, type StageFigures, type StageOptions, stageFiles } from './stage.js';
