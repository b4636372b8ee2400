export { piecesOf, type ReadRangeOptions, readRange } from './file-stream.js';
export { RegionReader, type RegionReaderOptions } from './region-reader.js';
export {
  hashesWholeFile,
  randomStart,
  WHOLE_FILE_WINDOW,
  type WholeFileRead,
  wholeFileOrder,
  wholeFileRead,
  wholeFileWindow,
} from './whole-file.js';
