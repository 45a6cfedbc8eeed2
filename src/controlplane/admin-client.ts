// A small client of the admin API for `portico ctl`.

export interface ApiAnswer {
  status: number;
  /** Parsed JSON body (undefined when empty). */
  body: any;
}

/** The control plane could not be reached (or answered something that is not the API). */
export class UnreachableError extends Error {}

export class AdminClient {
  readonly base: string;
  readonly #token: string | undefined;

  constructor(base: string, token?: string) {
    this.base = base.replace(/\/+$/, '');
    this.#token = token;
  }

  async call(method: string, path: string, opts: { body?: string; headers?: Record<string, string>; query?: Record<string, string | undefined> } = {}): Promise<ApiAnswer> {
    const url = new URL(this.base + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, v);
    const headers: Record<string, string> = { accept: 'application/json', ...opts.headers };
    if (this.#token) headers.authorization = `Bearer ${this.#token}`;
    let res: Response;
    try {
      res = await fetch(url, { method, headers, body: opts.body, signal: AbortSignal.timeout(30_000) });
    } catch (err) {
      const cause = (err as { cause?: Error }).cause;
      throw new UnreachableError(`cannot reach ${this.base}: ${cause?.message ?? (err as Error).message}`);
    }
    const text = await res.text();
    if (!text) return { status: res.status, body: undefined };
    try {
      return { status: res.status, body: JSON.parse(text) };
    } catch {
      throw new UnreachableError(`${url.origin} answered ${res.status} with something that is not JSON: is it a Portico control plane?`);
    }
  }
}
