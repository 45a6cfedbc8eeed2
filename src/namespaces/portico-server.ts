// `portico/server` (service): Portico's own limits. The core reads them.

import { checkFields, expectObject, type ObjectRules } from '../config/fields.ts';
import * as D from '../config/defaults.ts';
import { int } from '../config/read.ts';
import type { Namespace } from './namespace.ts';

export interface ServerLimits {
  maxBodyBytes: number;
  maxBackendBodyBytes: number;
}

const RULES: ObjectRules = {
  max_body_bytes: { kind: 'integer', min: 1 },
  max_backend_body_bytes: { kind: 'integer', min: 1 },
};

export const porticoServer: Namespace<ServerLimits> = {
  name: 'portico/server',
  scopes: ['service'],
  order: 0,
  policy: false,
  parse(raw, path, c) {
    if (!expectObject(c, raw, path, 'an object')) return undefined;
    checkFields(c, raw, path, RULES, 'the "portico/server" namespace');
    return {
      maxBodyBytes: int(raw.max_body_bytes) ?? D.DEFAULT_MAX_BODY_BYTES,
      maxBackendBodyBytes: int(raw.max_backend_body_bytes) ?? D.DEFAULT_MAX_BACKEND_BODY_BYTES,
    };
  },
};
