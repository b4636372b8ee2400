import { createHash } from 'node:crypto';
import { mkdir, realpath, unlink } from 'node:fs/promises';
import { createConnection, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { LocalIoError, messageOf } from '@ferry/core';

/** What the holder of a cache dir answers whoever asks (another node starting on the same dir). */
export interface DirHolder {
  pid: number;
  /** Node id, once known. */
  id?: string;
  url?: string;
}

/** A cache dir held by this process; `release()` lets the next node have it. */
export interface DirLock {
  /** Tell later askers who holds the dir (once the node knows its id and URL). */
  describe(holder: Omit<DirHolder, 'pid'>): void;
  release(): Promise<void>;
}

const SOCKET = '.lock';
/** A Unix socket path is at most 107 bytes on Linux; a longer dir uses the abstract namespace. */
const MAX_SOCKET_PATH = 100;

/** Who listens on `path`: the holder's answer, or undefined when nobody does (a stale socket file). */
function ask(path: string): Promise<DirHolder | undefined> {
  return new Promise((resolve) => {
    const socket = createConnection(path);
    let text = '';
    socket.setEncoding('utf8');
    socket.setTimeout(2000, () => socket.destroy());
    socket.on('data', (d: string) => {
      text += d;
    });
    socket.on('end', () => {
      try {
        resolve(JSON.parse(text) as DirHolder);
      } catch {
        resolve({ pid: 0 });
      }
    });
    // Refused or gone: no live holder. A holder that does not answer in time still holds it.
    socket.on('error', (err: NodeJS.ErrnoException) =>
      resolve(err.code === 'ECONNREFUSED' || err.code === 'ENOENT' ? undefined : { pid: 0 }),
    );
    socket.on('close', () => resolve({ pid: 0 }));
  });
}

function listenOn(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function inUse(dir: string, holder: DirHolder): LocalIoError {
  const who = holder.id ? `cache node ${holder.id}` : 'another cache node';
  const detail = [holder.pid ? `pid ${holder.pid}` : undefined, holder.url].filter(Boolean).join(', ');
  return new LocalIoError(
    `cache dir ${dir} is in use by ${who}${detail ? ` (${detail})` : ''}; one node serves one dir: stop it first or give this node a --dir of its own`,
  );
}

/**
 * Hold a cache node's dir for the life of this process: a Unix socket in the dir (`.lock`) that
 * this process listens on. The kernel ends the listening with the process, so a node that was
 * killed leaves no lock behind (its socket file refuses connections and is replaced), and no pid
 * or host name is trusted (a container restarted as pid 1 is still told apart). A second node on
 * the same dir connects, gets the holder's id, pid and URL, and refuses to start.
 */
export async function lockCacheDir(dir: string): Promise<DirLock> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    throw new LocalIoError(`cannot create cache dir ${dir}: ${messageOf(err)}`, { cause: err });
  }
  const file = join(dir, SOCKET);
  const path =
    file.length <= MAX_SOCKET_PATH
      ? file
      : `\0ferry-cache-dir-${createHash('sha256')
          .update(await realpath(dir))
          .digest('hex')
          .slice(0, 32)}`;
  let holder: DirHolder = { pid: process.pid };
  const server = createServer((socket) => socket.end(JSON.stringify(holder)));
  for (let attempt = 0; ; attempt++) {
    try {
      await listenOn(server, path);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt > 0) {
        throw new LocalIoError(`cannot lock cache dir ${dir}: ${messageOf(err)}`, { cause: err });
      }
      const live = await ask(path);
      if (live) throw inUse(dir, live);
      // The socket of a node that is gone: nobody listens; take its place.
      await unlink(path).catch(() => {});
    }
  }
  server.unref();
  return {
    describe(more) {
      holder = { ...more, pid: process.pid };
    },
    async release() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
