// `qos/circuit-breaker/http`: not written yet; refused like an unknown policy until it is.

import { pendingNamespace } from './fail-closed.ts';

export const qosCircuitBreakerHttp = pendingNamespace('qos/circuit-breaker/http', ['backend'], 521);
