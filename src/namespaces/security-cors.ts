// `security/cors`: not written yet; refused like an unknown policy until it is.

import { pendingNamespace } from './fail-closed.ts';

export const securityCors = pendingNamespace('security/cors', ['service'], 200);
