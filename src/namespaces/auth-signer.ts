// `auth/signer`: not written yet; refused like an unknown policy until it is.

import { pendingNamespace } from './fail-closed.ts';

export const authSigner = pendingNamespace('auth/signer', ['endpoint'], 440);
