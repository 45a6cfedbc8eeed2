// `backend/http` (backend): how a failed backend answer is reported. The
// backend call (proxy/backend.ts) reads the options.

import { checkFields, expectObject, type ObjectRules } from '../config/fields.ts';
import { bool, str } from '../config/read.ts';
import type { Namespace } from './namespace.ts';

export interface BackendHttpOptions {
  returnErrorDetails?: string;
  returnErrorCode: boolean;
}

const RULES: ObjectRules = {
  return_error_details: 'string',
  return_error_code: 'boolean',
};

export const backendHttp: Namespace<BackendHttpOptions> = {
  name: 'backend/http',
  scopes: ['backend'],
  order: 0,
  policy: false,
  parse(raw, path, c) {
    if (!expectObject(c, raw, path, 'an object with backend/http options')) return undefined;
    checkFields(c, raw, path, RULES, 'the "backend/http" namespace');
    return { returnErrorDetails: str(raw.return_error_details) || undefined, returnErrorCode: bool(raw.return_error_code) };
  },
};
