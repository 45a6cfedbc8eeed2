// `auth/client-credentials`: not written yet; refused like an unknown policy until it is.

import { pendingNamespace } from './fail-closed.ts';

export const authClientCredentials = pendingNamespace('auth/client-credentials', ['backend'], 400);
