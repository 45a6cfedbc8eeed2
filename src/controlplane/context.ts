// What every API handler gets.

import type { AuthOptions } from './auth.ts';
import type { ConfigStore } from './store.ts';
import type { WatchHub } from './watch-hub.ts';

export interface ApiContext {
  store: ConfigStore;
  hub: WatchHub;
  auth: AuthOptions;
  /** How long GET /v1/watch holds a request when nothing is newer (WATCH_HOLD_MS by default). */
  watchHoldMs: number;
  /** What GET /v1/health says about the transport and what --insecure left open. */
  security: { tls: boolean; client_certs: boolean; insecure: string[] | null };
}
