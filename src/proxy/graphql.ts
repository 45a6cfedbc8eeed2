// The GraphQL request of a `backend/graphql` backend (see
// namespaces/backend-graphql.ts for the rules), built per request. What
// depends only on the configuration is built once.

import type { GraphqlOptions } from '../config/types.ts';
import { GatewayError } from './errors.ts';
import type { ProxyRequest } from './types.ts';

export interface GraphqlCall {
  /** The JSON body (POST), or undefined (GET). */
  body: Buffer | undefined;
  /** Query-string pairs to add (GET), or ''. */
  query: string;
}

type Variables = Record<string, unknown>;

export function compileGraphql(o: GraphqlOptions): (req: ProxyRequest) => GraphqlCall {
  const encode = (variables: Variables): GraphqlCall => {
    const hasVariables = Object.keys(variables).length > 0;
    if (o.method === 'POST') {
      // lura's GraphQLRequest: operationName and variables are left out when empty.
      const doc: Record<string, unknown> = { query: o.query };
      if (o.operationName) doc.operationName = o.operationName;
      if (hasVariables) doc.variables = variables;
      return { body: Buffer.from(JSON.stringify(doc)), query: '' };
    }
    // Go's url.Values.Encode: keys in order, spaces as '+'.
    const q = new URLSearchParams();
    if (o.operationName) q.append('operationName', o.operationName);
    q.append('query', o.query);
    if (hasVariables) q.append('variables', JSON.stringify(variables));
    return { body: undefined, query: q.toString() };
  };

  if (o.type === 'mutation') {
    return (req) => {
      const own = clientVariables(req.body);
      for (const k in o.variables) if (!(k in own)) own[k] = o.variables[k];
      return encode(own);
    };
  }
  if (o.placeholders.length === 0) {
    const fixed = encode(o.variables);
    return () => fixed;
  }
  return (req) => {
    const variables: Variables = { ...o.variables };
    for (const [name, param] of o.placeholders) variables[name] = req.params[param] ?? '';
    return encode(variables);
  };
}

/** A mutation's variables: the client's body, a JSON object. */
function clientVariables(body: Buffer | undefined): Variables {
  let value: unknown;
  try {
    value = JSON.parse(body === undefined ? '' : body.toString('utf8'));
  } catch {
    throw new GatewayError(400, 'graphql: the request body must be a JSON object of mutation variables', { code: 'GRAPHQL_VARIABLES' });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new GatewayError(400, 'graphql: the request body must be a JSON object of mutation variables', { code: 'GRAPHQL_VARIABLES' });
  }
  return value as Variables;
}
