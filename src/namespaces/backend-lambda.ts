// `backend/lambda` (backend): KrakenD's krakend-lambda. The backend is an AWS
// Lambda function, invoked synchronously (RequestResponse) through the Lambda
// Invoke API with @aws-sdk/client-lambda; the backend's host and url_pattern
// are not used.
// - The function: `function_name`, or the value of the endpoint parameter that
//   `function_param_name` names (default "function").
// - The payload: for a GET backend, the endpoint parameters as a JSON object
//   (keys lower-cased); for other methods, the request body as it is; with
//   `aws_api_gateway_format.enabled`, an API Gateway (REST, v1) proxy event.
// - The answer: the function's payload is the backend's body, decoded with its
//   encoding. A function error (X-Amz-Function-Error) is not a failure, as in
//   KrakenD: the error object the function answered is the data. An error of
//   the API (unknown function, throttling, credentials) or of the network
//   fails the backend (500).
// Credentials come from the SDK's default chain and are never logged. The SDK
// is imported when a configuration first uses this namespace (never under
// `check`); one client per region, endpoint and retry count, kept in the
// policy state so an unchanged configuration keeps it across reloads.

import { pipeline, Readable, Transform } from 'node:stream';
import type { InvokeCommandOutput, LambdaClient } from '@aws-sdk/client-lambda';
import { checkFields, expectObject, type ObjectRules } from '../config/fields.ts';
import { abortReason, untilAborted } from '../proxy/abort.ts';
import { bodyTooLarge } from '../proxy/backend-body.ts';
import { GatewayError } from '../proxy/errors.ts';
import { canonicalHeaderKey } from '../proxy/headers.ts';
import type { BackendCall, BufferedResponse, ProxyRequest } from '../proxy/types.ts';
import type { Namespace } from './namespace.ts';
import { stateKey } from './state.ts';

const NAME = 'backend/lambda';
const SDK = '@aws-sdk/client-lambda';

export interface LambdaOptions {
  /** The function, when `function_name` fixes it. */
  functionName: string | undefined;
  /** Otherwise the parameter naming it, as the endpoint writes it (or a sequential `resp0_x` one). */
  functionParam: string;
  /** undefined: the SDK's chain (AWS_REGION, the shared config file). */
  region: string | undefined;
  endpoint: string | undefined;
  /** Attempts per call (max_retries + 1); undefined: the SDK's default (max_retries -1). */
  maxAttempts: number | undefined;
  apiGatewayFormat: boolean;
}

/** Stable codes of the failures. */
export const LAMBDA_CODES = {
  api: 'LAMBDA_API_ERROR',
  credentials: 'LAMBDA_CREDENTIALS',
  region: 'LAMBDA_REGION',
  functionName: 'LAMBDA_FUNCTION_NAME',
  status: 'LAMBDA_STATUS',
  unreachable: 'BACKEND_UNREACHABLE',
} as const;

const RULES: ObjectRules = {
  function_name: 'string',
  function_param_name: 'string',
  region: 'string',
  max_retries: { kind: 'integer', min: -1 },
  endpoint: 'string',
  aws_api_gateway_format: 'object',
};

// What the Invoke API accepts as FunctionName: a name, with an optional version or
// alias, a partial ARN (account:function:name) or a full ARN.
const NAME_PART = '[A-Za-z0-9_-]{1,64}(:(\\$LATEST|[A-Za-z0-9_-]{1,128}))?';
const FUNCTION_NAME = new RegExp(`^((arn:aws[A-Za-z-]*:lambda:[a-z]{2}(-[a-z]+)+-\\d{1,2}:)?\\d{12}:function:)?${NAME_PART}$`);
const REGION = /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/;
/** A parameter set by an earlier backend of a sequential endpoint ({resp0_id}). */
const SEQUENTIAL_PARAM = /^[Rr]esp\d+_/;

const lowerFirst = (s: string): string => (s === '' ? s : s[0].toLowerCase() + s.slice(1));
const upperFirst = (s: string): string => (s === '' ? s : s[0].toUpperCase() + s.slice(1));

let sdkInstalled: boolean | undefined;
function sdkResolvable(): boolean {
  if (sdkInstalled === undefined) {
    try {
      import.meta.resolve(SDK);
      sdkInstalled = true;
    } catch {
      sdkInstalled = false;
    }
  }
  return sdkInstalled;
}

export const backendLambda: Namespace<LambdaOptions> = {
  name: NAME,
  scopes: ['backend'],
  order: 0,
  policy: false,
  parse(raw, path, c, ctx) {
    if (!expectObject(c, raw, path, 'an object with "function_name" (or "function_param_name") and "region"')) return undefined;
    const before = c.errors.length;
    const valid = checkFields(c, raw, path, RULES, `the "${NAME}" namespace`);
    if (!sdkResolvable()) c.error(path, `the ${SDK} package installed (it invokes the function)`, 'it is missing from this installation');

    let functionName: string | undefined;
    let functionParam = 'function';
    const params = [...(ctx.endpointPath ?? '').matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
    if (valid.has('function_name')) {
      functionName = raw.function_name as string;
      if (!FUNCTION_NAME.test(functionName)) {
        c.invalid([...path, 'function_name'], 'a Lambda function name, version or alias ("my-function", "my-function:v1") or ARN ("123456789012:function:my-function", "arn:aws:lambda:...")', functionName);
      }
      if ('function_param_name' in raw) c.warning([...path, 'function_param_name'], '"function_name" or "function_param_name", not both', 'both ("function_name" is used, as in KrakenD)');
    } else if (!('function_name' in raw) && (valid.has('function_param_name') || !('function_param_name' in raw))) {
      // Neither name is mistyped (checkFields reported that): the parameter, or the default {function}.
      const asked = valid.has('function_param_name') ? (raw.function_param_name as string) : undefined;
      const wanted = lowerFirst(asked ?? 'function');
      // KrakenD keys the parameters with a capital first letter ({bar} is "Bar"): either spelling names it.
      const found = params.find((p) => lowerFirst(p) === wanted);
      if (found !== undefined) functionParam = found;
      else if (asked !== undefined && SEQUENTIAL_PARAM.test(asked)) functionParam = wanted;
      else if (asked === undefined) {
        c.missing([...path, 'function_name'], `the function to invoke, or "function_param_name" naming the endpoint parameter that holds it (the default {function} is not in ${JSON.stringify(ctx.endpointPath ?? '')})`);
      } else c.invalid([...path, 'function_param_name'], `a parameter of the endpoint (${params.map((p) => `{${p}}`).join(', ') || 'none'})`, asked);
    }

    const region = valid.has('region') ? (raw.region as string) : undefined;
    if (region !== undefined && !REGION.test(region)) c.invalid([...path, 'region'], 'an AWS region such as "us-east-1" or "eu-west-2"', region);

    let endpoint: string | undefined;
    if (valid.has('endpoint')) {
      endpoint = endpointUrl(raw.endpoint as string);
      if (endpoint === undefined) c.invalid([...path, 'endpoint'], 'an http(s) URL of the Lambda API, such as "http://localhost:4566" (no user, query or fragment)', raw.endpoint);
    }

    const retries = valid.has('max_retries') ? (raw.max_retries as number) : 0;

    let apiGatewayFormat = false;
    if (valid.has('aws_api_gateway_format')) {
      const at = [...path, 'aws_api_gateway_format'];
      const fmt = raw.aws_api_gateway_format as Record<string, unknown>;
      if (checkFields(c, fmt, at, { enabled: 'boolean' }, '"aws_api_gateway_format"').has('enabled')) apiGatewayFormat = fmt.enabled as boolean;
    }

    if (c.errors.length > before) return undefined;
    return { functionName, functionParam, region, endpoint, maxAttempts: retries === -1 ? undefined : retries + 1, apiGatewayFormat };
  },

  transport(options, ctx) {
    const b = ctx.backend!;
    // `check` compiles too: nothing is imported or created then.
    if (ctx.checkOnly) return () => Promise.reject(new GatewayError(500, 'Lambda backends are not called under check', { code: LAMBDA_CODES.unreachable }));
    const maxSockets = ctx.service.maxIdleConnectionsPerHost;
    const conn = ctx.state.get(
      stateKey(NAME, options.region ?? null, options.endpoint ?? null, options.maxAttempts ?? null, maxSockets),
      () => new LambdaConnection(options, maxSockets),
      (c) => c.close(),
    );
    const functionOf = functionResolver(options);
    // The host is not called; its scheme is the event's requestContext.protocol (KrakenD: the backend URL's).
    const protocol = /^([a-z][a-z0-9+.-]*):\/\//i.exec(b.host[0] ?? '')?.[1].toLowerCase() ?? 'http';
    const payloadOf = payloadBuilder(options, b.method.toUpperCase() === 'GET', protocol);

    return async (call, req, maxBodyBytes) => {
      const signal = req.signal;
      if (signal.aborted) throw signal.reason;
      const functionName = functionOf(req);
      // The SDK's call is aborted with the request; the answer does not wait for it to notice.
      const ctl = new AbortController();
      const onAbort = () => ctl.abort(abortReason(signal));
      signal.onAbort(onAbort);
      try {
        return await untilAborted(invoke(conn, functionName, payloadOf(call, req), maxBodyBytes, ctl.signal), signal);
      } finally {
        signal.offAbort(onAbort);
      }
    };
  },
};

/** KrakenD's `endpoint`: a URL; a bare host[:port] gets https://, as the Go SDK gives it. */
function endpointUrl(text: string): string | undefined {
  let u: URL;
  try {
    u = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `https://${text}`);
  } catch {
    return undefined;
  }
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.username !== '' || u.password !== '' || u.search !== '' || u.hash !== '') return undefined;
  return u.href;
}

function functionResolver(options: LambdaOptions): (req: ProxyRequest) => string {
  const fixed = options.functionName;
  if (fixed !== undefined) return () => fixed;
  const param = options.functionParam;
  return (req) => {
    const name = req.params[param] ?? req.extraParams?.[param] ?? '';
    // The client chooses the function here: nothing that is not a function name reaches the API.
    if (!FUNCTION_NAME.test(name)) throw new GatewayError(500, `aws lambda: ${JSON.stringify(name.slice(0, 80))} (parameter {${param}}) is not a function name`, { code: LAMBDA_CODES.functionName });
    return name;
  };
}

type PayloadBuilder = (call: BackendCall, req: ProxyRequest) => Uint8Array | undefined;

function payloadBuilder(options: LambdaOptions, get: boolean, protocol: string): PayloadBuilder {
  if (options.apiGatewayFormat) return (call, req) => apiGatewayEvent(call, req, protocol);
  if (get) return (_call, req) => paramsPayload(req);
  return (call) => call.body;
}

/** KrakenD's GET payload: every parameter (sequential ones too), keys lower-cased, as Go encodes a map (sorted, then a newline). */
function paramsPayload(req: ProxyRequest): Buffer {
  const out: Record<string, string> = {};
  const add = (from: Record<string, string> | undefined) => {
    if (from) for (const k in from) out[k.toLowerCase()] = from[k];
  };
  add(req.params);
  add(req.extraParams);
  const sorted: Record<string, string> = {};
  for (const k of Object.keys(out).sort()) sorted[k] = out[k];
  return Buffer.from(JSON.stringify(sorted) + '\n');
}

/** KrakenD's aws_api_gateway_format: the call as an API Gateway REST (v1) proxy event. */
function apiGatewayEvent(call: BackendCall, req: ProxyRequest, protocol: string): Buffer {
  const q = call.path.indexOf('?');
  const path = q < 0 ? call.path : call.path.slice(0, q);
  const multiQuery: Record<string, string[]> = {};
  for (const [k, v] of new URLSearchParams(q < 0 ? '' : call.path.slice(q + 1))) (multiQuery[k] ??= []).push(v);
  const query: Record<string, string> = {};
  for (const k in multiQuery) query[k] = multiQuery[k][0];
  const multiHeaders: Record<string, string[]> = {};
  for (const [name, value] of Object.entries(call.headers)) (multiHeaders[canonicalHeaderKey(name)] ??= []).push(...(Array.isArray(value) ? value : [value]));
  const headers: Record<string, string> = {};
  for (const k in multiHeaders) headers[k] = multiHeaders[k][0];
  // Lura's parameter names: the first letter upper-cased.
  const pathParameters: Record<string, string> = {};
  for (const k in req.params) pathParameters[upperFirst(k)] = req.params[k];
  if (req.extraParams) for (const k in req.extraParams) pathParameters[upperFirst(k)] = req.extraParams[k];
  const event = {
    version: '1.0',
    path,
    httpMethod: call.method,
    headers,
    multiValueHeaders: multiHeaders,
    queryStringParameters: query,
    multiValueQueryStringParameters: multiQuery,
    pathParameters,
    requestContext: { path, protocol, httpMethod: call.method, identity: { userAgent: headers['User-Agent'] ?? '' } },
    body: call.body === undefined ? '' : call.body.toString('utf8'),
  };
  return Buffer.from(JSON.stringify(event));
}

type Sdk = typeof import('@aws-sdk/client-lambda');

/** Keeps the SDK's structured logs and socket warnings off the console. */
const SILENT = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };

/** One Lambda client: the SDK is imported and the client built in the background, once. */
class LambdaConnection {
  readonly ready: Promise<{ sdk: Sdk; client: LambdaClient }>;

  constructor(options: LambdaOptions, maxSockets: number) {
    this.ready = import(SDK).then((sdk: Sdk) => ({
      sdk,
      client: new sdk.LambdaClient({
        region: options.region,
        endpoint: options.endpoint,
        maxAttempts: options.maxAttempts,
        logger: SILENT,
        requestHandler: { httpAgent: { maxSockets }, httpsAgent: { maxSockets }, logger: SILENT },
      }),
    }));
    // A failed import is reported by every call that awaits it.
    this.ready.catch(() => {});
  }

  async close(): Promise<void> {
    const ready = await this.ready.catch(() => undefined);
    ready?.client.destroy();
  }
}

async function invoke(conn: LambdaConnection, functionName: string, payload: Uint8Array | undefined, maxBodyBytes: number, abortSignal: AbortSignal): Promise<BufferedResponse> {
  let out: InvokeCommandOutput;
  try {
    const { sdk, client } = await conn.ready;
    const command = new sdk.InvokeCommand({ FunctionName: functionName, InvocationType: 'RequestResponse', LogType: 'None', Payload: payload });
    command.middlewareStack.add(bodyLimit(maxBodyBytes), { step: 'deserialize', priority: 'low', name: 'porticoBodyLimit' });
    out = await client.send(command, { abortSignal });
  } catch (err) {
    throw invokeError(err, functionName);
  }
  // RequestResponse answers 200; KrakenD refuses anything else.
  if (out.StatusCode !== 200) throw new GatewayError(500, `aws lambda: bad status code ${out.StatusCode} from ${functionName}`, { code: LAMBDA_CODES.status });
  const p = out.Payload;
  const body = p === undefined ? Buffer.alloc(0) : Buffer.from(p.buffer, p.byteOffset, p.byteLength);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (out.ExecutedVersion !== undefined) headers['x-amz-executed-version'] = out.ExecutedVersion;
  if (out.FunctionError !== undefined) headers['x-amz-function-error'] = out.FunctionError;
  return { status: 200, headers, body, url: `lambda:${functionName}` };
}

function invokeError(err: unknown, functionName: string): GatewayError {
  if (err instanceof GatewayError) return err;
  const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const status = e.$metadata?.httpStatusCode;
  const text = `${e.name ?? 'Error'}: ${e.message ?? String(err)}`;
  if (status !== undefined) return new GatewayError(500, `aws lambda: invoking ${functionName}: ${status} ${text}`, { cause: err, code: LAMBDA_CODES.api });
  if (e.name === 'CredentialsProviderError') return new GatewayError(500, `aws lambda: no credentials: ${e.message}`, { cause: err, code: LAMBDA_CODES.credentials });
  // No "region", and none in the environment or the shared config file.
  if (e.message === 'Region is missing') return new GatewayError(500, 'aws lambda: no region (set "region", or AWS_REGION)', { cause: err, code: LAMBDA_CODES.region });
  return new GatewayError(500, `aws lambda: invoking ${functionName}: ${text}`, { cause: err, code: LAMBDA_CODES.unreachable });
}

/**
 * Cuts the API's answer off past the backend body limit while the SDK reads it
 * (the SDK has no limit of its own): a larger answer fails the call.
 */
function bodyLimit(limit: number) {
  return <I, O>(next: (args: I) => Promise<O>) =>
    async (args: I): Promise<O> => {
      const out = await next(args);
      const res = (out as { response?: { headers?: Record<string, string>; body?: unknown } }).response;
      if (res === undefined || !(res.body instanceof Readable)) return out;
      if (Number(res.headers?.['content-length']) > limit) {
        res.body.destroy();
        throw bodyTooLarge(limit);
      }
      let size = 0;
      const counted = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          size += chunk.length;
          done(size > limit ? bodyTooLarge(limit) : null, chunk);
        },
      });
      res.body = pipeline(res.body, counted, () => {});
      return out;
    };
}
