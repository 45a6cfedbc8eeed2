// One backend call: pick a host, build the URL and headers, send the request
// through the shared upstream client (upstream.ts), check the status, decode and
// manipulate the body. Everything that depends only on config is compiled here.

import type { BackendConfig, EndpointConfig } from '../config/types.ts';
import { maskUrlPassword } from '../config/secret-fields.ts';
import { compileDecoder } from '../transform/decode.ts';
import { compileBackendTransform } from '../transform/manipulate.ts';
import { decodeContent } from './backend-body.ts';
import { BackendStatusError, GatewayError, invalidStatusText, TimeoutError } from './errors.ts';
import { compileGraphql } from './graphql.ts';
import { compileHeaderForwarder } from './headers.ts';
import { compileMartian } from './martian.ts';
import { compileQueryFilter } from './query.ts';
import type { BackendCall, BufferedResponse, Data, Passthrough, Proxy, ProxyRequest, ProxyResponse } from './types.ts';
import type { Upstream } from './upstream.ts';
import { compileUrlTemplate } from './url-template.ts';

/**
 * How a backend namespace reaches a backend that is not an HTTP server (an AMQP
 * broker, a Lambda function, a pub/sub topic). It gets the call as Portico built
 * it for HTTP (forwarded headers, body, the rendered url_pattern and filtered
 * query in `path`) and the client's request, and answers like an HTTP backend
 * would: the status decides success (200/201) and the body is decoded with the
 * backend's `encoding`. Failures are thrown (a GatewayError with a code, or any
 * error: then a 500 BACKEND_UNREACHABLE). It must honour `req.signal` and the
 * backend body limit.
 */
export type BackendTransport = (call: BackendCall, req: ProxyRequest, maxBodyBytes: number) => Promise<BufferedResponse>;

export interface BackendDeps {
  upstream: Upstream;
  maxBackendBodyBytes: number;
  userAgent: string;
  /** The transport of a backend that is not reached over HTTP (see BackendTransport), if it has one. */
  transport(ep: EndpointConfig, b: BackendConfig): BackendTransport | undefined;
  /** Every successful answer carries its status and headers (ProxyResponse.meta), not only those of backends with namespaces. */
  withMeta?: boolean;
}

const SUCCESS = new Set([200, 201]);

export function compileBackendProxy(ep: EndpointConfig, b: BackendConfig, deps: BackendDeps): Proxy {
  const transport = deps.transport(ep, b);
  // A host may carry a base path (http://api/v2): the pool is per origin, the path prefixes url_pattern.
  // A transport's host (amqp://user:password@broker) is no HTTP origin: it names the call in traces and errors, password masked.
  const hosts = transport === undefined ? b.host.map(splitHost) : b.host.map((h) => ({ origin: maskUrlPassword(h).replace(/\/$/, ''), basePath: '' }));
  let next = 0;
  const template = compileUrlTemplate(b.urlPattern);
  const filterQuery = compileQueryFilter(ep.inputQueryStrings, b.inputQueryStrings);
  const forwardHeaders = compileHeaderForwarder(ep.inputHeaders, b.inputHeaders, deps.userAgent);
  // backend/graphql: the call carries a GraphQL request, with the method it says.
  const graphql = b.graphql === undefined ? undefined : compileGraphql(b.graphql);
  const method = b.graphql?.method ?? b.method;
  // modifier/martian: static changes to the call as sent and to the answer before it is decoded.
  const martian = b.martian === undefined ? undefined : compileMartian(b.martian);
  const noop = b.encoding === 'no-op';
  const decode = noop ? undefined : compileDecoder(b.encoding, b.isCollection);
  const transform = noop ? undefined : compileBackendTransform(b);
  const errorDetailsKey = b.returnErrorDetails ? `error_${b.returnErrorDetails}` : undefined;
  const { upstream, maxBackendBodyBytes } = deps;
  const separator = template.hasQuery ? '&' : '?';
  // Backend middlewares (qos/http-cache) and shadow comparison may need the answer's status and headers; nothing else does.
  const withMeta = b.namespaces.length > 0 || deps.withMeta === true;

  return async function callBackend(req: ProxyRequest): Promise<ProxyResponse> {
    const host = hosts.length === 1 ? hosts[0] : hosts[next++ % hosts.length];
    const origin = host.origin;
    let query = filterQuery(req.rawQuery);
    let body = req.body;
    const headers = forwardHeaders(req);
    if (graphql !== undefined) {
      const g = graphql(req);
      body = g.body;
      if (g.query !== '') query = query === '' ? g.query : query + '&' + g.query;
      // The client's body is replaced: none of its own content headers apply.
      delete headers['content-encoding'];
      if (body !== undefined) headers['content-type'] = 'application/json';
      else delete headers['content-type'];
    }
    const path = host.basePath + (query === '' ? template.render(req) : template.render(req) + separator + query);
    const options: BackendCall = { origin, path, method, headers, body };
    // modifier/lua-backend: its pre script sees and may change the call about to be sent.
    if (req.prepareCall !== undefined) await req.prepareCall(options);
    const sent = martian?.modifyRequest(options);
    const url = options.origin + options.path;
    const traced = req.callTrace;
    if (traced !== undefined) traced.url = url;

    if (noop) {
      let pt: Passthrough;
      try {
        pt = transport === undefined ? await upstream.streamed(options, req.signal) : bufferedPassthrough(await transport(options, req, maxBackendBodyBytes));
      } catch (err) {
        throw upstreamError(req, err, url);
      }
      if (sent !== undefined) pt = martian!.modifyStreamed(pt, sent);
      return { data: {}, complete: false, passthrough: pt };
    }

    let res: BufferedResponse;
    // What the backend answered, when modifier/martian changed it (middlewares such as the HTTP cache and traces see this one).
    let answered: BufferedResponse | undefined;
    let raw: Buffer;
    try {
      res = transport === undefined ? await upstream.buffered(options, req.signal, maxBackendBodyBytes) : await transport(options, req, maxBackendBodyBytes);
      if (sent !== undefined) {
        answered = res;
        res = martian!.modifyBuffered(res, sent);
      }
      raw = await decodeContent(res.body, res.headers['content-encoding'], maxBackendBodyBytes);
    } catch (err) {
      throw upstreamError(req, err, url);
    }

    if (traced !== undefined) traced.status = (answered ?? res).status;
    if (!SUCCESS.has(res.status)) {
      const contentType = res.headers['content-type'] as string | undefined;
      const text = raw.toString('utf8');
      if (errorDetailsKey) {
        const detail = { http_status_code: res.status, http_body: text, http_body_encoding: contentType ?? '' };
        return { data: { [errorDetailsKey]: detail }, complete: false };
      }
      if (b.returnErrorCode) throw new GatewayError(res.status, invalidStatusText(res.status, b, res.url), { body: text, contentType, code: 'BACKEND_STATUS' });
      throw new BackendStatusError(res.status, text, b, res.url);
    }

    let data: Data;
    try {
      data = decode!(raw);
    } catch (err) {
      throw new GatewayError(500, `decoding ${url}: ${(err as Error).message}`, { cause: err, code: 'BACKEND_DECODE' });
    }
    if (transform) data = transform(data);
    if (withMeta) {
      const backend = answered ?? res;
      return { data, complete: true, meta: { status: backend.status, headers: backend.headers, bodyBytes: raw.length } };
    }
    return { data, complete: true };
  };
}

/** A transport's whole answer, passed through as a no-op backend's stream would be. */
function bufferedPassthrough(res: BufferedResponse): Passthrough {
  const headers: (string | string[])[] = [];
  for (const [name, value] of Object.entries(res.headers)) if (value !== undefined) headers.push(name, value);
  return { status: res.status, headers, pipe: (out) => void out.end(res.body), discard: () => {} };
}

export interface HostParts {
  origin: string;
  basePath: string;
}

export function splitHost(host: string): HostParts {
  const u = new URL(host);
  const basePath = u.pathname === '/' ? '' : u.pathname.replace(/\/$/, '');
  return { origin: u.origin, basePath };
}

function upstreamError(req: ProxyRequest, err: unknown, url: string): GatewayError {
  if (err instanceof GatewayError) return err;
  if (req.signal.aborted) return new TimeoutError();
  const message = err instanceof Error ? err.message : String(err);
  return new GatewayError(500, `calling ${url}: ${message}`, { cause: err, code: 'BACKEND_UNREACHABLE' });
}
