// `qos/ratelimit/router`: not written yet; refused like an unknown policy until it is.

import { pendingNamespace } from './fail-closed.ts';

export const qosRatelimitRouter = pendingNamespace('qos/ratelimit/router', ['endpoint'], 500);
