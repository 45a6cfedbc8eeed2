// `auth/api-keys`: not written yet; refused like an unknown policy until it is.

import { pendingNamespace } from './fail-closed.ts';

export const authApiKeys = pendingNamespace('auth/api-keys', ['service', 'endpoint'], 410);
