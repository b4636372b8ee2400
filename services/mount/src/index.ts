export { buildApp, type MountAppOptions } from './app.js';
export { Errno, errnoOf, wantsWrite } from './errno.js';
export {
  bindingReplies,
  detachLazily,
  type FuseAttr,
  type FuseHandler,
  type FuseMountOptions,
  FuseOp,
  type FuseReplies,
  type FuseRequest,
  FuseSession,
  loadFuse,
  type UnmountOutcome,
  unmountPath,
} from './fuse.js';
export { type ChunkContext, OpenFiles, type OpenFilesOptions } from './handles.js';
export { type Inode, type InodeNode, Inodes, ROOT_INO } from './inodes.js';
export { createMetrics, type MountMetrics } from './metrics.js';
export { type MountOptions, MountService, type StopResult } from './mount.js';
export { inspectMountpoint, type MountInfo, type MountpointState, mountAt, parseMountInfo, prepareMountpoint } from './mountpoint.js';
export { type MountNode, Namespace, type NamespaceMeta, type NamespaceOptions } from './namespace.js';
export { createOps, type OpsOptions } from './ops.js';
