// `qos/http-cache`: not written yet; refused like an unknown policy until it is.

import { pendingNamespace } from './fail-closed.ts';

export const qosHttpCache = pendingNamespace('qos/http-cache', ['backend'], 505);
