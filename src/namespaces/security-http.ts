// `security/http`: not written yet; refused like an unknown policy until it is.

import { pendingNamespace } from './fail-closed.ts';

export const securityHttp = pendingNamespace('security/http', ['service'], 100);
