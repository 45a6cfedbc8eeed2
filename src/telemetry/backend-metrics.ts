// Backend-call metrics as a wrapper around one backend call: its count by
// outcome and its duration. The label children are made once per backend
// when the plan is compiled; a call costs two clock reads and two updates.

import type { Proxy } from '../proxy/types.ts';
import { backendCalls, backendDuration, backendOutcome } from './metrics.ts';

export function meteredBackend(call: Proxy, endpoint: string, backend: string): Proxy {
  const ok = backendCalls.labels(endpoint, backend, 'ok');
  const duration = backendDuration.labels(endpoint, backend);
  return async (req) => {
    const started = performance.now();
    try {
      const r = await call(req);
      ok.inc();
      return r;
    } catch (err) {
      backendCalls.labels(endpoint, backend, backendOutcome(err)).inc();
      throw err;
    } finally {
      duration.observe((performance.now() - started) / 1000);
    }
  };
}
