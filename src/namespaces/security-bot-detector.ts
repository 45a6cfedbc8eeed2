// `security/bot-detector`: not written yet; refused like an unknown policy until it is.

import { pendingNamespace } from './fail-closed.ts';

export const securityBotDetector = pendingNamespace('security/bot-detector', ['service', 'endpoint'], 300);
