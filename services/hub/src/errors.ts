/**
 * An answer in the Hub's error shape: the status, `X-Error-Code` when the Hub gives one
 * (RepoNotFound, RevisionNotFound, EntryNotFound — what huggingface_hub turns into its own
 * error classes), `X-Error-Message` and `{"error": message}`.
 */
export class HubError extends Error {
  readonly status: number;
  readonly errorCode: string | undefined;
  readonly headers: Record<string, string>;

  constructor(
    status: number,
    errorCode: string | undefined,
    message: string,
    options: { headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'HubError';
    this.status = status;
    this.errorCode = errorCode;
    this.headers = options.headers ?? {};
  }
}

export const repoNotFound = (what: string) =>
  new HubError(404, 'RepoNotFound', `Repository Not Found for ${what}. Check the name, and that it was put under the hub's root.`);

export const revisionNotFound = (revision: string) =>
  new HubError(404, 'RevisionNotFound', `Invalid rev id: ${revision} (this hub serves "main" and the 40-hex id of a revision it holds)`);

export const entryNotFound = (path: string, revision: string) =>
  new HubError(404, 'EntryNotFound', `${path} does not exist on "${revision}"`);

/** A header value holds printable ASCII only: a name from the URL may hold anything. */
export function headerSafe(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '?').slice(0, 500);
}
