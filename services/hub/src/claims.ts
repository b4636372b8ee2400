import { type Entry, type Logger, sha256OfStream } from '@ferry/core';
import type { RegionReader } from '@ferry/reader';
import { HubError } from './errors.js';

const KEEP = 100_000;

/**
 * The sha256 an imported file's origin advertised (the Hub's `lfs.oid`) is a claim until the
 * file's bytes were hashed whole: the first download of such a file waits for that check and is
 * refused — before a byte is sent — when the bytes do not match. A confirmed file is remembered
 * by its origin object and etag, so the check runs once per
 * process; one check runs at a time per file, however many clients ask.
 */
export class Claims {
  readonly #reader: RegionReader;
  readonly #log: Logger;
  readonly #onRefused: () => void;
  readonly #confirmed = new Set<string>();
  readonly #running = new Map<string, Promise<void>>();

  constructor(options: { reader: RegionReader; logger: Logger; onRefused: () => void }) {
    this.#reader = options.reader;
    this.#log = options.logger;
    this.#onRefused = options.onRefused;
  }

  /** Whether the entry carries a claim to check: an imported file with a sha256 from its origin. */
  static claimed(entry: Entry): boolean {
    return entry.origin !== undefined && entry.sha256 !== undefined;
  }

  async confirm(entry: Entry, shown: string): Promise<void> {
    if (!Claims.claimed(entry)) return;
    // The origin object and its etag name the bytes (an external chunk's id binds the same three).
    const { store, key: object, etag } = entry.origin as NonNullable<Entry['origin']>;
    const key = `${entry.sha256}\0${store}\0${object}\0${etag}`;
    if (this.#confirmed.has(key)) return;
    let check = this.#running.get(key);
    if (!check) {
      check = this.#check(entry, key, shown).finally(() => this.#running.delete(key));
      this.#running.set(key, check);
    }
    await check;
  }

  async #check(entry: Entry, key: string, shown: string): Promise<void> {
    const { sha256 } = await sha256OfStream(this.#reader.stream(entry));
    if (sha256 !== entry.sha256) {
      this.#onRefused();
      this.#log.error(
        { path: entry.path, origin: entry.origin?.store, claimed: entry.sha256, got: sha256 },
        'refused a file whose bytes do not match its claim',
      );
      throw new HubError(
        502,
        undefined,
        `${shown}: the bytes its origin serves hash to sha256 ${sha256}, not the ${entry.sha256} it advertised; nothing was sent (ferry verify names such files)`,
      );
    }
    if (this.#confirmed.size >= KEEP) this.#confirmed.delete(this.#confirmed.values().next().value as string);
    this.#confirmed.add(key);
  }
}
