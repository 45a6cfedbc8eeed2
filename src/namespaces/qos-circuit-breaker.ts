// `qos/circuit-breaker`: not written yet; refused like an unknown policy until it is.

import { pendingNamespace } from './fail-closed.ts';

export const qosCircuitBreaker = pendingNamespace('qos/circuit-breaker', ['backend'], 520);
