// A real HTTP server on loopback speaking the AWS Lambda Invoke REST API
// (POST /2015-03-31/functions/{name}/invocations), for backend/lambda tests.
// Every request's SigV4 signature is verified with the known test credentials
// (@smithy/signature-v4 recomputes it over the headers the client signed and
// the body received); a bad one gets AWS's 403. Functions are small JS
// handlers registered per name: a returned value is the payload, a thrown
// Error a function error (200 + X-Amz-Function-Error: Unhandled), a thrown
// LambdaApiError an error of the API itself (its status and type), a returned
// ChunkedPayload a payload sent in chunks without Content-Length.

import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignatureV4 } from '@smithy/signature-v4';

export interface TestCredentials {
  accessKeyId: string;
  secretAccessKey: string;
}

export interface LambdaContext {
  functionName: string;
  qualifier: string | undefined;
  awsRequestId: string;
}

export type LambdaHandler = (event: unknown, context: LambdaContext) => unknown;

/** Thrown by a handler: the API answers this error instead of running the function (throttling, a service fault...). */
export class LambdaApiError extends Error {
  readonly status: number;
  readonly type: string;
  constructor(status: number, type: string, message: string) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

/** Returned by a handler: these payload pieces are written one by one, chunked, with no Content-Length. */
export class ChunkedPayload {
  readonly chunks: string[];
  constructor(chunks: string[]) {
    this.chunks = chunks;
  }
}

export interface Invocation {
  functionName: string;
  qualifier: string | undefined;
  /** The payload as received. */
  payload: string;
  invocationType: string;
  logType: string | undefined;
  accessKeyId: string;
  /** The region of the signature's credential scope. */
  region: string;
}

export interface TestLambda {
  url: string;
  port: number;
  /** Verified invocations, in order (refused ones are not here). */
  readonly invocations: Invocation[];
  /** Why requests were refused (bad signature, unknown key...). */
  readonly refused: string[];
  register(name: string, handler: LambdaHandler): void;
  close(): Promise<void>;
}

const INVOKE = /^\/2015-03-31\/functions\/([^/]+)\/invocations$/;
/** How far a request's X-Amz-Date may be from now (AWS allows 15 minutes). */
const MAX_SKEW_MS = 15 * 60 * 1000;

/** SHA-256 and HMAC-SHA256 for the signer, from node:crypto (the SDK's own hash package is not installed). */
class NodeSha256 {
  readonly #hash;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.#hash = secret === undefined ? createHash('sha256') : createHmac('sha256', toBuffer(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.#hash.update(toBuffer(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.#hash.digest());
  }
  reset(): void {
    throw new Error('not used by the signer');
  }
}

function toBuffer(d: string | ArrayBuffer | ArrayBufferView): Buffer {
  if (typeof d === 'string') return Buffer.from(d, 'utf8');
  if (ArrayBuffer.isView(d)) return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
  return Buffer.from(d);
}

export async function startLambdaServer(opts: { credentials: TestCredentials[]; account?: string }): Promise<TestLambda> {
  const secrets = new Map(opts.credentials.map((c) => [c.accessKeyId, c.secretAccessKey]));
  const account = opts.account ?? '123456789012';
  const handlers = new Map<string, LambdaHandler>();
  const invocations: Invocation[] = [];
  const refused: string[] = [];
  let seq = 0;

  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const requestId = `req-${++seq}`;
    const url = new URL(req.url!, 'http://lambda');
    const m = INVOKE.exec(url.pathname);
    if (req.method !== 'POST' || !m) return apiError(res, requestId, 404, 'UnknownOperationException', 'Unknown operation');

    const signed = await verifySignature(req, url, body, secrets);
    if ('refused' in signed) {
      refused.push(signed.refused);
      return apiError(res, requestId, 403, signed.type, signed.refused);
    }

    const { name, qualifier } = parseFunctionName(decodeURIComponent(m[1]), url.searchParams.get('Qualifier') ?? undefined);
    const handler = handlers.get(name);
    const invocationType = String(req.headers['x-amz-invocation-type'] ?? 'RequestResponse');
    const logType = req.headers['x-amz-log-type'] as string | undefined;
    if (!handler) return apiError(res, requestId, 404, 'ResourceNotFoundException', `Function not found: arn:aws:lambda:${signed.region}:${account}:function:${name}`);
    let event: unknown = {};
    if (body.length > 0) {
      try {
        event = JSON.parse(body.toString('utf8'));
      } catch {
        return apiError(res, requestId, 400, 'InvalidRequestContentException', 'Could not parse request body into json: Could not parse payload into json');
      }
    }
    invocations.push({ functionName: name, qualifier, payload: body.toString('utf8'), invocationType, logType, accessKeyId: signed.accessKeyId, region: signed.region });
    if (invocationType === 'DryRun') return answer(res, requestId, 204, '');

    const headers: Record<string, string> = { 'x-amz-executed-version': qualifier ?? '$LATEST' };
    let result: unknown;
    try {
      result = await handler(event, { functionName: name, qualifier, awsRequestId: requestId });
    } catch (err) {
      if (err instanceof LambdaApiError) return apiError(res, requestId, err.status, err.type, err.message);
      const e = err as Error;
      const failure = JSON.stringify({ errorType: e.name, errorMessage: e.message, trace: (e.stack ?? '').split('\n') });
      return answer(res, requestId, 200, failure, { ...headers, 'x-amz-function-error': 'Unhandled' });
    }
    if (invocationType === 'Event') return answer(res, requestId, 202, '');
    if (result instanceof ChunkedPayload) {
      res.writeHead(200, { 'content-type': 'application/json', 'x-amzn-requestid': requestId, ...headers });
      for (const chunk of result.chunks) if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
      return void res.end();
    }
    answer(res, requestId, 200, JSON.stringify(result === undefined ? null : result), headers);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    invocations,
    refused,
    register: (name, handler) => void handlers.set(name, handler),
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A name, name:qualifier, account:function:name[:qualifier] or a full ARN, and the ?Qualifier= one. */
function parseFunctionName(text: string, queryQualifier: string | undefined): { name: string; qualifier: string | undefined } {
  const i = text.indexOf('function:');
  const rest = i < 0 ? text : text.slice(i + 'function:'.length);
  const [name, qualifier] = rest.split(':');
  return { name, qualifier: qualifier ?? queryQualifier };
}

type Verified = { accessKeyId: string; region: string } | { refused: string; type: string };

const AUTHORIZATION = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/;

/** Recompute the request's SigV4 signature with the secret of its access key. */
async function verifySignature(req: IncomingMessage, url: URL, body: Buffer, secrets: Map<string, string>): Promise<Verified> {
  const m = AUTHORIZATION.exec(String(req.headers.authorization ?? ''));
  if (!m) return { refused: 'missing or malformed Authorization header', type: 'IncompleteSignatureException' };
  const [, accessKeyId, day, region, service, signedList, signature] = m;
  const secretAccessKey = secrets.get(accessKeyId);
  if (secretAccessKey === undefined) return { refused: 'The security token included in the request is invalid.', type: 'UnrecognizedClientException' };
  if (service !== 'lambda') return { refused: `credential scope names service ${service}, not lambda`, type: 'InvalidSignatureException' };
  const amzDate = String(req.headers['x-amz-date'] ?? '');
  const when = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(amzDate);
  if (!when || amzDate.slice(0, 8) !== day) return { refused: 'X-Amz-Date missing or not the credential scope date', type: 'IncompleteSignatureException' };
  const signingDate = new Date(Date.UTC(+when[1], +when[2] - 1, +when[3], +when[4], +when[5], +when[6]));
  if (Math.abs(Date.now() - signingDate.getTime()) > MAX_SKEW_MS) return { refused: 'Signature expired', type: 'InvalidSignatureException' };
  const contentSha = req.headers['x-amz-content-sha256'];
  if (typeof contentSha === 'string' && contentSha !== createHash('sha256').update(body).digest('hex')) {
    return { refused: 'X-Amz-Content-Sha256 does not match the body', type: 'InvalidSignatureException' };
  }

  const signedNames = signedList.split(';');
  const headers: Record<string, string> = {};
  for (const name of signedNames) {
    const v = req.headers[name];
    if (v === undefined) return { refused: `signed header ${name} is missing`, type: 'InvalidSignatureException' };
    headers[name] = Array.isArray(v) ? v.join(',') : v;
  }
  const query: Record<string, string> = {};
  for (const [k, v] of url.searchParams) query[k] = v;
  const signer = new SignatureV4({ credentials: { accessKeyId, secretAccessKey }, region, service, sha256: NodeSha256, applyChecksum: false });
  const hostHeader = String(req.headers.host ?? '');
  const signedRequest = await signer.sign(
    { method: req.method!, protocol: 'http:', hostname: hostHeader.split(':')[0], port: Number(hostHeader.split(':')[1]) || undefined, path: url.pathname, query, headers, body },
    { signingDate },
  );
  const expected = /Signature=([0-9a-f]{64})$/.exec(String(signedRequest.headers.authorization))?.[1] ?? '';
  const expectedSigned = /SignedHeaders=([^,]+),/.exec(String(signedRequest.headers.authorization))?.[1];
  if (expectedSigned !== signedList || !timingSafeEqual(Buffer.from(expected), Buffer.from(signature))) {
    return { refused: 'The request signature we calculated does not match the signature you provided.', type: 'InvalidSignatureException' };
  }
  return { accessKeyId, region };
}

function answer(res: ServerResponse, requestId: string, status: number, text: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'x-amzn-requestid': requestId, ...headers });
  res.end(text);
}

/** An error of the API, as Lambda answers it (the SDK reads the type from x-amzn-ErrorType). */
function apiError(res: ServerResponse, requestId: string, status: number, type: string, message: string): void {
  answer(res, requestId, status, JSON.stringify({ Type: status < 500 ? 'User' : 'Service', message }), { 'x-amzn-errortype': type });
}
