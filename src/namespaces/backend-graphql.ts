// `backend/graphql` (backend): the backend is a GraphQL server. The call
// carries a GraphQL request built from the configuration and the client's
// request, as KrakenD (lura's graphql middleware) builds it:
// - type "query": the configured variables, each "{param}" value replaced by
//   that endpoint parameter (missing: "");
// - type "mutation": the client's JSON body is the variables, the configured
//   ones filling what it leaves out;
// - method POST (default): a JSON body {query, operationName, variables};
//   method GET: query, operationName and variables (JSON) in the query string.
// The backend call (proxy/backend.ts, proxy/graphql.ts) reads the options.

import { readFileSync } from 'node:fs';
import { checkFields, expectObject, type ObjectRules } from '../config/fields.ts';
import { str } from '../config/read.ts';
import type { GraphqlOptions } from '../config/types.ts';
import type { Namespace } from './namespace.ts';

const NAME = 'backend/graphql';

/** The largest query file read (a query is text a person wrote). */
const MAX_QUERY_FILE_BYTES = 1024 * 1024;

const RULES: ObjectRules = {
  type: { kind: 'string', oneOf: ['query', 'mutation'] },
  query: 'string',
  query_path: 'string',
  variables: 'object',
  operationName: 'string',
  method: 'string',
};

export const backendGraphql: Namespace<GraphqlOptions> = {
  name: NAME,
  scopes: ['backend'],
  order: 0,
  policy: false,
  parse(raw, path, c, ctx) {
    if (!expectObject(c, raw, path, 'an object with GraphQL options ("type", "query" or "query_path", "variables", "operationName", "method")')) return undefined;
    const valid = checkFields(c, raw, path, RULES, `the "${NAME}" namespace`);
    if (!valid.has('type')) {
      if (raw.type === undefined) c.missing([...path, 'type'], '"query" or "mutation"');
      return undefined;
    }
    const method = (str(raw.method) ?? 'POST').toUpperCase();
    if (method !== 'GET' && method !== 'POST') c.invalid([...path, 'method'], '"GET" or "POST"', raw.method);

    let query = valid.has('query') ? (raw.query as string) : undefined;
    if (valid.has('query_path')) {
      if (query !== undefined) c.error([...path, 'query_path'], 'either "query" or "query_path", not both', 'both');
      // Read now (relative to the working directory, as KrakenD reads it): a missing file fails `check`.
      try {
        const text = readFileSync(raw.query_path as string);
        if (text.length > MAX_QUERY_FILE_BYTES) c.invalid([...path, 'query_path'], `a file of at most ${MAX_QUERY_FILE_BYTES} bytes`, `${text.length} bytes`);
        else query = text.toString('utf8');
      } catch (err) {
        c.invalid([...path, 'query_path'], 'a readable GraphQL file', `${raw.query_path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
        return undefined;
      }
    }
    if (query === undefined || query.trim() === '') {
      if (!valid.has('query_path')) c.missing([...path, 'query'], 'the GraphQL query or mutation text (or "query_path")');
      return undefined;
    }

    const variables = valid.has('variables') ? (raw.variables as Record<string, unknown>) : {};
    const placeholders: [string, string][] = [];
    const params = new Set([...(ctx.endpointPath ?? '').matchAll(/\{([^}]+)\}/g)].map((m) => m[1]));
    for (const [name, value] of Object.entries(variables)) {
      if (typeof value !== 'string' || value.length < 2 || value[0] !== '{' || value.at(-1) !== '}') continue;
      const param = value.slice(1, -1);
      placeholders.push([name, param]);
      if (raw.type === 'query' && !params.has(param)) {
        c.warning([...path, 'variables', name], `a parameter of the endpoint (${[...params].map((p) => `{${p}}`).join(', ') || 'none'}): this variable is always ""`, value);
      }
    }
    return {
      type: raw.type as GraphqlOptions['type'],
      method: method === 'GET' ? 'GET' : 'POST',
      query,
      operationName: valid.has('operationName') ? (raw.operationName as string) : undefined,
      variables,
      placeholders,
    };
  },
};
