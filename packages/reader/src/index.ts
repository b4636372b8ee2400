export { piecesOf, type ReadRangeOptions, readRange } from './file-stream.js';
export { RegionReader, type RegionReaderOptions } from './region-reader.js';
