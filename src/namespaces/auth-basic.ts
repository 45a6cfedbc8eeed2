// `auth/basic`: not written yet; refused like an unknown policy until it is.

import { pendingNamespace } from './fail-closed.ts';

export const authBasic = pendingNamespace('auth/basic', ['service', 'endpoint'], 420);
