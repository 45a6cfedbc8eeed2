// `auth/validator`: not written yet; refused like an unknown policy until it is.

import { pendingNamespace } from './fail-closed.ts';

export const authValidator = pendingNamespace('auth/validator', ['endpoint'], 430);
