import { createRequire } from 'node:module';
import { formatBytes } from '@ferry/core';
import type CliProgress from 'cli-progress';

export interface OutputOptions {
  json: boolean;
  stdout?: NodeJS.WriteStream;
  stderr?: NodeJS.WriteStream;
}

export interface Progress {
  /** Add done work (bytes). */
  tick(delta: number): void;
  /** Grow the total (bytes) when more work is discovered. */
  grow(delta: number): void;
  stop(): void;
}

const guarded = new WeakSet<NodeJS.WritableStream>();

/**
 * When whoever reads the output goes away (`ferry ls | head`, `ferry cat … | head -c 100`), stop
 * the way a Unix tool killed by SIGPIPE does: quietly, exit status 141. Node ignores SIGPIPE, so
 * without this the failed write is an unhandled EPIPE 'error' event: a stack trace on stderr.
 */
function exitOnBrokenPipe(stream: NodeJS.WritableStream): void {
  if (guarded.has(stream)) return;
  guarded.add(stream);
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(128 + 13);
    throw err;
  });
}

/**
 * Where commands report: human lines (and a progress bar on a terminal), or JSON lines with
 * `--json` — one object per line, progress events while working and a final result object.
 */
export class Output {
  readonly json: boolean;
  readonly #out: NodeJS.WriteStream;
  readonly #err: NodeJS.WriteStream;

  constructor(options: OutputOptions) {
    this.json = options.json;
    this.#out = options.stdout ?? process.stdout;
    this.#err = options.stderr ?? process.stderr;
    exitOnBrokenPipe(this.#out);
  }

  /**
   * Resolves once stdout has flushed what it buffered (at once when it has room): a long listing
   * waits here between pages, so memory holds one page, not the whole output of a slow reader.
   */
  drained(): Promise<void> {
    if (!this.#out.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.#out.off('drain', done);
        this.#out.off('close', done);
        resolve();
      };
      this.#out.once('drain', done);
      this.#out.once('close', done);
    });
  }

  /** A line of human output (suppressed with --json). */
  line(text: string): void {
    if (!this.json) this.#out.write(`${text}\n`);
  }

  /** One JSON object (only with --json). */
  event(obj: Record<string, unknown>): void {
    if (this.json) this.#out.write(`${JSON.stringify(obj)}\n`);
  }

  /** The command's result: JSON with --json, else the human lines given. */
  result(obj: Record<string, unknown>, human: string[]): void {
    if (this.json) this.#out.write(`${JSON.stringify(obj)}\n`);
    else for (const text of human) this.#out.write(`${text}\n`);
  }

  warn(text: string): void {
    if (this.json) this.#out.write(`${JSON.stringify({ event: 'warning', message: text })}\n`);
    else this.#err.write(`ferry: warning: ${text}\n`);
  }

  /**
   * Byte progress: a bar on a terminal; JSON `progress` events at most every 500 ms with --json;
   * nothing otherwise (logs and pipes stay clean).
   */
  progress(label: string, total: number): Progress {
    let done = 0;
    let all = total;
    if (this.json) {
      let last = 0;
      const emit = (force: boolean) => {
        const now = Date.now();
        if (!force && now - last < 500) return;
        last = now;
        this.event({ event: 'progress', label, bytes: done, total: all });
      };
      return {
        tick: (d) => {
          done += d;
          emit(false);
        },
        grow: (d) => {
          all += d;
        },
        stop: () => emit(true),
      };
    }
    // Nothing to show: not a terminal and no --json.
    if (!this.#err.isTTY) return { tick: () => {}, grow: () => {}, stop: () => {} };
    // Loaded only for a bar on a terminal: every other run (pipes, --json, logs) skips it.
    const cliProgress = createRequire(import.meta.url)('cli-progress') as typeof CliProgress;
    const bar = new cliProgress.SingleBar(
      {
        format: `${label} [{bar}] {percentage}% | {doneh} / {totalh} | {speed}`,
        stream: this.#err,
        hideCursor: true,
        clearOnComplete: true,
        barsize: 30,
      },
      cliProgress.Presets.shades_classic,
    );
    const started = Date.now();
    const payload = () => ({
      doneh: formatBytes(done),
      totalh: formatBytes(all),
      speed: `${formatBytes(done / Math.max(0.001, (Date.now() - started) / 1000))}/s`,
    });
    bar.start(Math.max(1, all), 0, payload());
    return {
      tick: (d) => {
        done += d;
        bar.update(done, payload());
      },
      grow: (d) => {
        all += d;
        bar.setTotal(Math.max(1, all));
      },
      stop: () => bar.stop(),
    };
  }
}
