import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { UnavailableError } from './errors.js';

/**
 * The thread's code, as source: a file beside this one would not exist when the TypeScript
 * sources run untranspiled (tests), and the worker needs nothing but node:crypto. A session is a
 * hash whose state lives in one thread, fed in order.
 */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const sessions = new Map();
// Bytes that were moved here (not shared memory) go back with the answer: this thread keeps no
// garbage, and the sender may reuse them.
function reply(message, bytes) {
  if (bytes && !(bytes.buffer instanceof SharedArrayBuffer)) {
    message.back = bytes;
    parentPort.postMessage(message, [bytes.buffer]);
  } else parentPort.postMessage(message);
}
parentPort.on('message', (m) => {
  try {
    if (m.op === 'hash') {
      reply({ id: m.id, hex: createHash('sha256').update(m.bytes).digest('hex') }, m.bytes);
    } else if (m.op === 'update') {
      let hash = sessions.get(m.session);
      if (!hash) sessions.set(m.session, (hash = createHash('sha256')));
      hash.update(m.bytes);
      reply({ id: m.id }, m.bytes);
    } else if (m.op === 'digest') {
      const hash = sessions.get(m.session) || createHash('sha256');
      sessions.delete(m.session);
      reply({ id: m.id, hex: hash.digest('hex') });
    } else if (m.op === 'drop') {
      sessions.delete(m.session);
    }
  } catch (err) {
    reply({ id: m.id, error: String((err && err.message) || err) }, m.bytes);
  }
});
`;

export interface HashPoolOptions {
  /** Threads (default: the cores this process may use). */
  threads?: number;
  /**
   * Inputs smaller than this are hashed on the calling thread (default 64 KiB): a message to a
   * thread and back costs about what hashing that much costs.
   */
  inlineBelow?: number;
}

/** A thread's answer: the digest (hash, digest) and the moved bytes handed back. */
interface Answer {
  hex?: string;
  back?: Uint8Array;
}

interface Pending {
  resolve(answer: Answer): void;
  reject(err: Error): void;
}

interface Thread {
  worker: Worker;
  /** Tasks sent and not answered: the load that picks a thread, and whether it keeps the process up. */
  busy: number;
  /** Bytes sent and not answered (the tie-breaker between threads with as many tasks). */
  bytes: number;
}

/** One hash fed in order; its state lives in one thread. */
export interface HashSession {
  /**
   * Feed bytes. Bytes backed by a SharedArrayBuffer are read where they are (no copy): the
   * promise says when the thread is done with them, so the buffer may be reused (the owner
   * should reuse it: shared memory is freed late). Other bytes are copied into a staging buffer
   * first and the promise only waits while much is queued.
   */
  update(bytes: Uint8Array): Promise<void>;
  /** The hex sha256 of everything fed; the session is finished. */
  digest(): Promise<string>;
  /** Forget the session (a stream that failed); nothing waits on it. */
  abort(): void;
}

/** Non-shared inputs are copied into staging buffers of this size, each moved to the thread in one message. */
const STAGE = 1 << 20;
/** Staged bytes in flight per session before `update` makes the caller wait. */
const STAGED_IN_FLIGHT = 4 * STAGE;

/**
 * sha256 on a pool of worker threads, so hashing never runs on the event loop of a busy process
 * and one process can use every core. Buffers backed by a SharedArrayBuffer are handed over
 * without a copy (two threads may read one chunk at once: its own hash and the file's); other
 * buffers are copied by the message. Threads do not keep the process alive while idle.
 *
 * worker_threads directly rather than a pool library: a session must stay on the thread that
 * holds its hash state, which general pools (piscina) do not offer, and the whole pool is one
 * message type.
 */
export class HashPool {
  readonly threads: number;
  readonly #inlineBelow: number;
  readonly #pool: Thread[] = [];
  readonly #pending = new Map<number, Pending & { thread: Thread; bytes: number }>();
  #nextId = 1;
  #nextSession = 1;
  #closed = false;

  constructor(options: HashPoolOptions = {}) {
    this.threads = Math.max(1, Math.floor(options.threads ?? availableParallelism()));
    this.#inlineBelow = options.inlineBelow ?? 64 * 1024;
  }

  /** The hex sha256 of `bytes` (shared memory is read in place; other bytes are copied once). */
  async sha256(bytes: Uint8Array): Promise<string> {
    if (bytes.byteLength < this.#inlineBelow) return createHash('sha256').update(bytes).digest('hex');
    return (await this.#send(this.#pick(), { op: 'hash', bytes }, bytes.byteLength)).hex as string;
  }

  /**
   * The hex sha256 of a buffer the caller alone holds, without a copy: its memory moves to a
   * thread and comes back as the returned `bytes`. Until then, and for good afterwards, the given
   * Buffer is empty (detached): only the returned one may be used.
   */
  async sha256Moving(bytes: Buffer): Promise<{ hex: string; bytes: Buffer }> {
    if (bytes.byteLength < this.#inlineBelow || bytes.buffer instanceof SharedArrayBuffer) return { hex: await this.sha256(bytes), bytes };
    const answer = await this.#send(this.#pick(), { op: 'hash', bytes }, bytes.byteLength, true);
    const back = answer.back as Uint8Array;
    return { hex: answer.hex as string, bytes: Buffer.from(back.buffer, back.byteOffset, back.byteLength) };
  }

  /** An incremental hash on one thread, for bytes that arrive in order (a whole file, a stream). */
  session(): HashSession {
    const thread = this.#pick();
    const session = this.#nextSession++;
    let stage: Buffer | undefined;
    let staged = 0;
    // Staging buffers come back from the thread and are filled again.
    const spare: Buffer[] = [];
    let inFlight = 0;
    const waiters: Array<() => void> = [];
    let failure: Error | undefined;
    const flush = () => {
      if (!stage || staged === 0) return;
      const bytes = stage.subarray(0, staged);
      const length = staged;
      stage = undefined;
      staged = 0;
      inFlight += length;
      this.#send(thread, { op: 'update', session, bytes }, length, true).then(
        ({ back }) => {
          if (back && spare.length < 2) spare.push(Buffer.from(back.buffer));
          inFlight -= length;
          while (inFlight <= STAGED_IN_FLIGHT && waiters.length > 0) waiters.shift()?.();
        },
        (err: Error) => {
          failure = err;
          for (const wake of waiters.splice(0)) wake();
        },
      );
    };
    return {
      update: async (bytes) => {
        if (failure) throw failure;
        if (bytes.buffer instanceof SharedArrayBuffer && bytes.byteLength >= STAGE / 4) {
          flush();
          await this.#send(thread, { op: 'update', session, bytes }, bytes.byteLength);
          return;
        }
        for (let at = 0; at < bytes.byteLength; ) {
          stage ??= spare.pop() ?? Buffer.allocUnsafeSlow(STAGE);
          const take = Math.min(STAGE - staged, bytes.byteLength - at);
          stage.set(bytes.subarray(at, at + take), staged);
          staged += take;
          at += take;
          if (staged === STAGE) flush();
        }
        while (inFlight > STAGED_IN_FLIGHT && !failure) await new Promise<void>((resolve) => waiters.push(resolve));
        if (failure) throw failure;
      },
      digest: async () => {
        flush();
        if (failure) throw failure;
        return (await this.#send(thread, { op: 'digest', session }, 0)).hex as string;
      },
      abort: () => {
        stage = undefined;
        if (!this.#closed && thread.worker.threadId >= 0) thread.worker.postMessage({ op: 'drop', session });
      },
    };
  }

  /** Stop the threads; tasks still waiting fail. */
  async close(): Promise<void> {
    this.#closed = true;
    const threads = this.#pool.splice(0);
    await Promise.all(threads.map((t) => t.worker.terminate()));
  }

  /** The least loaded thread, starting one while fewer than `threads` run. */
  #pick(): Thread {
    if (this.#closed) throw new UnavailableError('hash pool is closed');
    let best: Thread | undefined;
    for (const t of this.#pool) if (!best || t.busy < best.busy || (t.busy === best.busy && t.bytes < best.bytes)) best = t;
    if (best && (best.busy === 0 || this.#pool.length >= this.threads)) return best;
    return this.#start();
  }

  #start(): Thread {
    const worker = new Worker(WORKER_SOURCE, { eval: true, name: 'ferry-hash' });
    const thread: Thread = { worker, busy: 0, bytes: 0 };
    worker.unref();
    worker.on('message', (m: Answer & { id: number; error?: string }) => {
      const task = this.#pending.get(m.id);
      if (!task) return;
      this.#settle(m.id, task);
      if (m.error !== undefined) task.reject(new UnavailableError(`hashing failed: ${m.error}`));
      else task.resolve(m);
    });
    const fail = (err: unknown) => {
      const index = this.#pool.indexOf(thread);
      if (index >= 0) this.#pool.splice(index, 1);
      for (const [id, task] of this.#pending) {
        if (task.thread !== thread) continue;
        this.#settle(id, task);
        task.reject(new UnavailableError(`hashing thread stopped: ${err instanceof Error ? err.message : String(err)}`, { cause: err }));
      }
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`exit code ${code}`)));
    this.#pool.push(thread);
    return thread;
  }

  /** `owned`: the bytes' ArrayBuffer is ours alone and moves to the thread as it is. */
  #send(thread: Thread, message: { op: string; session?: number; bytes?: Uint8Array }, bytes: number, owned = false): Promise<Answer> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, thread, bytes });
      // A thread with work keeps the process alive until the answer is in.
      if (thread.busy === 0) thread.worker.ref();
      thread.busy += 1;
      thread.bytes += bytes;
      const input = message.bytes;
      if (input && !(input.buffer instanceof SharedArrayBuffer)) {
        // A message would copy the view's whole ArrayBuffer (all of a large file for a chunk of
        // it): copy just the view, once, and move that copy over. (Not into shared memory: a
        // SharedArrayBuffer made per call is freed too late by the garbage collector.)
        const copy = owned ? input : new Uint8Array(input);
        thread.worker.postMessage({ ...message, bytes: copy, id }, [copy.buffer as ArrayBuffer]);
      } else thread.worker.postMessage({ ...message, id });
    });
  }

  #settle(id: number, task: { thread: Thread; bytes: number }): void {
    this.#pending.delete(id);
    task.thread.busy -= 1;
    task.thread.bytes -= task.bytes;
    if (task.thread.busy === 0) task.thread.worker.unref();
  }
}

let shared: HashPool | undefined;

/** The process's hash pool, started on first use (threads start as work arrives). */
export function hashPool(): HashPool {
  shared ??= new HashPool();
  return shared;
}

/** Bytes in memory shared with the hashing threads: handed to them without a copy. */
export function sharedBuffer(size: number): Buffer {
  return Buffer.from(new SharedArrayBuffer(size));
}
