// The upstream HTTP client: one undici Agent per plan, which keeps one
// keep-alive Pool per origin. Redirects are followed like Go's http.Client,
// which is what KrakenD users get.

import { Agent, interceptors, type Dispatcher } from 'undici';

export interface UpstreamOptions {
  /** Connections per origin (max_idle_connections_per_host). */
  connectionsPerHost: number;
}

export function createUpstream(opts: UpstreamOptions): Dispatcher {
  const agent = new Agent({
    connections: opts.connectionsPerHost,
    keepAliveTimeout: 30_000,
    keepAliveMaxTimeout: 90_000,
    // The endpoint deadline aborts calls; these are only a backstop.
    headersTimeout: 300_000,
    bodyTimeout: 300_000,
  });
  return agent.compose(interceptors.redirect({ maxRedirections: 10 }));
}
