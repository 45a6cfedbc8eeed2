// `qos/ratelimit/proxy`: not written yet; refused like an unknown policy until it is.

import { pendingNamespace } from './fail-closed.ts';

export const qosRatelimitProxy = pendingNamespace('qos/ratelimit/proxy', ['backend'], 510);
