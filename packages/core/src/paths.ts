import { InvalidPathError } from './errors.js';

/** Longest volume path, in UTF-8 bytes. */
export const MAX_PATH_BYTES = 1024;

// Control characters (C0, DEL, C1) are refused: they break listings, logs and terminals.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * Normalise a volume path: absolute, `/`-separated, no trailing slash (except the root `/`).
 * Rejects `.`/`..`/empty segments, NUL and control characters, and paths over 1024 bytes, each
 * with its own message. A leading `/` is added when missing; nothing else is rewritten, so a
 * path that is accepted means exactly what the caller typed.
 */
export function normalizePath(input: string): string {
  if (typeof input !== 'string') throw new InvalidPathError('path must be a string');
  if (input.length === 0) throw new InvalidPathError('invalid path "": path is empty');
  const shown = JSON.stringify(input.length > 80 ? `${input.slice(0, 77)}...` : input);
  if (input.includes('\0')) throw new InvalidPathError(`invalid path ${shown}: contains a NUL byte`);
  if (CONTROL.test(input)) throw new InvalidPathError(`invalid path ${shown}: contains a control character`);
  if (input.includes('\\')) throw new InvalidPathError(`invalid path ${shown}: contains a backslash; use "/"`);
  let path = input.startsWith('/') ? input : `/${input}`;
  if (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1);
  if (path !== '/') {
    const segments = path.slice(1).split('/');
    for (const segment of segments) {
      if (segment === '') throw new InvalidPathError(`invalid path ${shown}: empty segment ("//")`);
      if (segment === '.') throw new InvalidPathError(`invalid path ${shown}: "." segment`);
      if (segment === '..') throw new InvalidPathError(`invalid path ${shown}: ".." segment`);
    }
  }
  const bytes = Buffer.byteLength(path, 'utf8');
  if (bytes > MAX_PATH_BYTES) {
    throw new InvalidPathError(`invalid path ${shown}: ${bytes} bytes, longer than ${MAX_PATH_BYTES}`);
  }
  return path;
}

/** `true` when `input` is accepted by normalizePath. */
export function isValidPath(input: string): boolean {
  try {
    normalizePath(input);
    return true;
  } catch {
    return false;
  }
}

/** Join a normalised directory path and a relative name (which may contain `/`). */
export function joinPath(dir: string, name: string): string {
  return normalizePath(dir === '/' ? `/${name}` : `${dir}/${name}`);
}

/** Parent directory of a normalised path (`/` for top-level entries and for `/`). */
export function parentPath(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

/** Last segment of a normalised path (`''` for `/`). */
export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** Prefix that every path strictly under directory `dir` starts with. */
export function dirPrefix(dir: string): string {
  return dir === '/' ? '/' : `${dir}/`;
}

/** True when `path` is `dir` itself or lies under it. */
export function isWithin(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dirPrefix(dir));
}
