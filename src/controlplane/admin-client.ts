// A small client of the admin API for `portico ctl`.

import { ControlPlaneHttp } from './tls-client.ts';

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
  readonly #http: ControlPlaneHttp;

  /** `ca`: the only CA trusted for an https:// control plane (default: the system's). Throws on a bad URL or CA file. */
  constructor(base: string, token?: string, ca?: string) {
    this.base = base.replace(/\/+$/, '');
    this.#token = token;
    this.#http = new ControlPlaneHttp(this.base, { ca }, { ca: '--ca', cert: '--cert', key: '--key' });
  }

  async call(method: string, path: string, opts: { body?: string; headers?: Record<string, string>; query?: Record<string, string | undefined> } = {}): Promise<ApiAnswer> {
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) query.set(k, v);
    const headers: Record<string, string> = { accept: 'application/json', ...opts.headers };
    if (this.#token) headers.authorization = `Bearer ${this.#token}`;
    let res;
    try {
      res = await this.#http.call(query.size ? `${path}?${query}` : path, { method, headers, body: opts.body, signal: AbortSignal.timeout(30_000) });
    } catch (err) {
      throw new UnreachableError(`cannot reach ${this.base}: ${(err as Error).message}`);
    }
    if (!res.body) return { status: res.status, body: undefined };
    try {
      return { status: res.status, body: JSON.parse(res.body) };
    } catch {
      throw new UnreachableError(`${this.base} answered ${res.status} with something that is not JSON: is it a Portico control plane?`);
    }
  }

  close(): void {
    this.#http.close();
  }
}
