// validation/cel: CEL checks at endpoint and backend level through a real
// gateway, real backends and a real JWKS server. Config checks (syntax and
// type errors at their place, when each expression runs, RE2 patterns), every
// variable family at each level, KrakenD's statuses and texts when a check is
// false, and `portico check` on a bad expression.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CEL_CODES } from '../../src/namespaces/validation-cel.ts';
import { errorAt, issueAt, load } from '../config/support.ts';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { loadTestConfig, startGateway, type TestGateway } from '../helpers/gateway.ts';
import { get, request } from '../helpers/http.ts';
import { makeKey, signToken, startJwksServer, type JwksServer, type TestKey } from '../helpers/jwks-server.ts';
import { logsDuring } from '../helpers/log-lines.ts';
import { runCli, writeConfigFile } from '../helpers/process.ts';

const NS = 'validation/cel';
const AT = `$.endpoints[0].extra_config["${NS}"]`;

const checks = (...exprs: string[]) => ({ [NS]: exprs.map((check_expr) => ({ check_expr })) });
const withChecks = (value: unknown, endpoint = '/e/{nick}') => ({
  version: 3,
  host: ['http://127.0.0.1:9'],
  endpoints: [{ endpoint, backend: [{ url_pattern: '/b' }], extra_config: { [NS]: value } }],
});
const phases = (...exprs: string[]) =>
  (loadTestConfig(withChecks(exprs.map((check_expr) => ({ check_expr })))).endpoints[0]!.namespaces[0]!.options as { checks: { phase: string }[] }).checks.map((c) => c.phase);

describe('validation/cel: config', () => {
  it('when each expression runs follows the variables it uses; the options are plain data', () => {
    const o = loadTestConfig(withChecks([{ check_expr: "req_method == 'GET'" }])).endpoints[0]!.namespaces[0]!.options;
    assert.deepEqual(structuredClone(o), o);
    assert.deepEqual(o, { checks: [{ expr: "req_method == 'GET'", phase: 'pre' }] });
    assert.deepEqual(
      phases("req_params.Nick == 'k'", "resp_data.a == 1", "has(JWT.sub)", "(timestamp(now).getDayOfWeek() + 6) % 7 <= 4", "resp_completed && req_method == 'GET'", "'x' in JWT && req_path != ''"),
      ['pre', 'post', 'jwt', 'pre', 'post', 'pre'],
    );
  });

  it('reports syntax and type errors at the expression, with the reason', () => {
    let e = errorAt(withChecks([{ check_expr: "req_method == 'GET' &&" }]), `${AT}[0].check_expr`);
    assert.match(e.found, /Unexpected token/);
    e = errorAt(withChecks([{ check_expr: 'true' }, { check_expr: 'req_methd == "GET"' }]), `${AT}[1].check_expr`);
    assert.match(e.found, /Unknown variable: req_methd/);
    assert.match(errorAt(withChecks([{ check_expr: 'req_method + 1' }]), `${AT}[0].check_expr`).found, /no such overload/);
    assert.match(errorAt(withChecks([{ check_expr: 'req_params' }]), `${AT}[0].check_expr`).expected, /a bool/);
    assert.match(errorAt(withChecks({ check_expr: 'true' }), AT).expected, /a list of checks/);
    assert.match(errorAt(withChecks([{}]), `${AT}[0].check_expr`).expected, /CEL expression/);
    assert.match(errorAt(withChecks([{ check_expr: 1 }]), `${AT}[0].check_expr`).expected, /string/);
  });

  it('matches(): a literal RE2 pattern JavaScript reads alike; the rest is refused or warned about', () => {
    assert.deepEqual(load(withChecks([{ check_expr: "req_params.Nick.matches('^k[a-z]+$')" }])).warnings, []);
    assert.match(errorAt(withChecks([{ check_expr: "req_params.Nick.matches('a(?=b)')" }]), `${AT}[0].check_expr`).found, /lookahead/);
    assert.match(errorAt(withChecks([{ check_expr: "req_params.Nick.matches('(?i)k')" }]), `${AT}[0].check_expr`).found, /not a JavaScript regular expression/);
    assert.match(errorAt(withChecks([{ check_expr: 'req_params.Nick.matches(req_params.Nick)' }]), `${AT}[0].check_expr`).expected, /string literal/);
    let r = load(withChecks([{ check_expr: "req_params.Nick.matches('^\\\\s*k')" }]));
    assert.deepEqual(r.errors, []);
    assert.match(issueAt(r.warnings, `${AT}[0].check_expr`).found, /read it differently/);
    r = load(withChecks([{ check_expr: "req_params.Nick.matches('^(a+)+$')" }]));
    assert.match(issueAt(r.warnings, `${AT}[0].check_expr`).found, /exponential/);
  });

  it('warns about nested comprehensions, empty expressions, mod_expr and an empty list', () => {
    let r = load(withChecks([{ check_expr: 'resp_data.items.all(a, resp_data.items.exists(b, a == b))' }]));
    assert.deepEqual(r.errors, []);
    assert.match(issueAt(r.warnings, `${AT}[0].check_expr`).found, /square/);
    r = load(withChecks([{ check_expr: '' }, { check_expr: 'true', mod_expr: 'x' }]));
    assert.deepEqual(r.errors, []);
    assert.match(issueAt(r.warnings, `${AT}[0].check_expr`).found, /ignored/);
    assert.match(issueAt(r.warnings, `${AT}[1].mod_expr`).found, /ignored/);
    r = load(withChecks([]));
    assert.match(issueAt(r.warnings, AT).found, /checks nothing/);
  });

  it('portico check: a bad expression fails with its JSON path', async () => {
    const { file } = writeConfigFile(withChecks([{ check_expr: "req_params.Nick.matches('k.*')" }, { check_expr: "req_headers['X'] = 'y'" }]));
    const r = await runCli(['check', '-c', file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /\$\.endpoints\[0\]\.extra_config\["validation\/cel"\]\[1\]\.check_expr/);
  });
});

describe('validation/cel: over HTTP', () => {
  let echo: TestBackend;
  let data: TestBackend;
  let idp: JwksServer;
  let key: TestKey;
  let plain: TestGateway;
  let verbose: TestGateway;

  const endpoints = (dataUrl: string, jwksUrl: string) => [
    // req_params (first letter capitalized, as in KrakenD)
    { endpoint: '/nick/{nick}', extra_config: checks("req_params.Nick.matches('^k')"), backend: [{ url_pattern: '/echo/{nick}' }] },
    { endpoint: '/method', method: 'POST', extra_config: checks("req_method == 'POST'", "req_method != 'GET'"), backend: [{ url_pattern: '/echo' }] },
    { endpoint: '/get-only-post', extra_config: checks("req_method == 'POST'"), backend: [{ url_pattern: '/echo' }] },
    { endpoint: '/path/{x}', extra_config: checks("req_path == '/path/a b'"), backend: [{ url_pattern: '/echo' }] },
    // req_headers: only those the backend gets (input_headers), plus X-Forwarded-For and User-Agent
    {
      endpoint: '/headers',
      input_headers: ['X-Flag'],
      extra_config: checks("'on' in req_headers['X-Flag']", "'127.0.0.1' in req_headers['X-Forwarded-For']", "!('X-Secret' in req_headers)", "req_headers['User-Agent'][0].startsWith('Portico')"),
      backend: [{ url_pattern: '/echo' }],
    },
    // req_querystring: only input_query_strings
    { endpoint: '/query', input_query_strings: ['foo'], extra_config: checks("req_querystring.foo[0] == 'A'", '!has(req_querystring.bar)'), backend: [{ url_pattern: '/echo' }] },
    { endpoint: '/now', extra_config: checks("timestamp(now) > timestamp('2024-01-01T00:00:00Z')", "now.endsWith('Z')"), backend: [{ url_pattern: '/echo' }] },
    // resp_* at endpoint level: after the backends, on the merged data
    { endpoint: '/resp-ok', extra_config: checks('resp_data.n > 2 && resp_completed', 'resp_metadata_status == 0'), backend: [{ host: [dataUrl], url_pattern: '/data' }] },
    { endpoint: '/resp-bad', extra_config: checks('resp_data.n > 5'), backend: [{ host: [dataUrl], url_pattern: '/data' }] },
    {
      endpoint: '/resp-partial',
      extra_config: checks('resp_completed'),
      backend: [{ host: [dataUrl], url_pattern: '/data' }, { host: [dataUrl], url_pattern: '/missing', group: 'm' }],
    },
    // resp_metadata_* are filled for no-op answers only, as in KrakenD
    {
      endpoint: '/noop',
      output_encoding: 'no-op',
      extra_config: checks("resp_metadata_status == 200 && req_method == 'GET'", "resp_metadata_headers['X-Data'][0] == 'yes'"),
      backend: [{ host: [dataUrl], url_pattern: '/data', encoding: 'no-op' }],
    },
    { endpoint: '/noop-bad', output_encoding: 'no-op', extra_config: checks('resp_metadata_status == 201'), backend: [{ host: [dataUrl], url_pattern: '/data', encoding: 'no-op' }] },
    // evaluators are numbered per phase: the second "before" check is #1
    { endpoint: '/numbered', input_query_strings: ['x'], extra_config: checks("req_method == 'GET'", 'resp_completed', 'has(req_querystring.x)'), backend: [{ url_pattern: '/echo' }] },
    // backend level: a false check fails that backend only
    {
      endpoint: '/backend-resp',
      backend: [
        { url_pattern: '/echo', group: 'echo' },
        { host: [dataUrl], url_pattern: '/data', group: 'github', extra_config: checks("'website' in resp_data.github") },
        { host: [dataUrl], url_pattern: '/data', group: 'other', extra_config: checks("'company' in resp_data.other") },
      ],
    },
    {
      endpoint: '/backend-req',
      input_query_strings: ['foo'],
      backend: [
        { url_pattern: '/echo', group: 'always' },
        { url_pattern: '/echo/only-with-foo', group: 'foo', extra_config: checks('has(req_querystring.foo)') },
      ],
    },
    { endpoint: '/backend-single', backend: [{ url_pattern: '/echo', extra_config: checks("req_method == 'POST'") }] },
    // sequential: req_params.Resp0_x holds the earlier answer's value
    {
      endpoint: '/seq',
      extra_config: { proxy: { sequential: true } },
      backend: [
        { host: [dataUrl], url_pattern: '/data' },
        { url_pattern: '/echo/seq?site={resp0_website}', group: 'second', extra_config: checks("req_params.Resp0_website == 'https://example.com'") },
        { url_pattern: '/echo/never?n={resp0_n}', group: 'third', extra_config: checks("req_params.Resp0_n == '5'") },
      ],
    },
    // JWT: the claims of a token auth/validator accepted
    {
      endpoint: '/jwt',
      extra_config: { 'auth/validator': { alg: 'RS256', jwk_url: jwksUrl, disable_jwk_security: true, cache: true }, ...checks("has(JWT.sub) && JWT.sub == 'alice'") },
      backend: [{ url_pattern: '/echo' }],
    },
    {
      endpoint: '/jwt-mixed',
      extra_config: { 'auth/validator': { alg: 'RS256', jwk_url: jwksUrl, disable_jwk_security: true, cache: true }, ...checks("JWT.tier == 'gold' && req_method == 'GET'") },
      backend: [{ url_pattern: '/echo' }],
    },
    {
      endpoint: '/jwt-backend',
      extra_config: { 'auth/validator': { alg: 'RS256', jwk_url: jwksUrl, disable_jwk_security: true, cache: true } },
      backend: [{ url_pattern: '/echo', group: 'all' }, { url_pattern: '/echo/admin', group: 'admin', extra_config: checks("'admin' in JWT.roles") }],
    },
    { endpoint: '/jwt-without-validator', extra_config: checks('has(JWT.sub)'), backend: [{ url_pattern: '/echo' }] },
  ];

  before(async () => {
    echo = await startBackend((req, res) => json(res, { path: req.url, headers: req.headers }));
    data = await startBackend((req, res) => {
      if (req.url === '/missing') return json(res, { error: 'nope' }, 404);
      json(res, { n: 4, website: 'https://example.com' }, 200, { 'x-data': 'yes' });
    });
    key = await makeKey('RS256', 'cel-1');
    idp = await startJwksServer({ keys: [key.publicJwk] });
    plain = await startGateway({ host: [echo.url], endpoints: endpoints(data.url, idp.url) });
    verbose = await startGateway({ host: [echo.url], extra_config: { router: { return_error_msg: true } }, endpoints: endpoints(data.url, idp.url) });
  });
  after(async () => {
    await plain.close();
    await verbose.close();
    await echo.close();
    await data.close();
    await idp.close();
  });

  const echoCalls = () => echo.requests.length;

  it('req_params: a false check before the backends aborts with 500 and no backend call', async () => {
    assert.equal((await get(plain.url, '/nick/kate')).status, 200);
    const calls = echoCalls();
    const r = await get(plain.url, '/nick/ray');
    assert.equal(r.status, 500);
    assert.equal(r.body, '');
    assert.equal(r.headers['x-portico-completed'], 'false');
    assert.equal(echoCalls(), calls, 'the backend was not called');
  });

  it('with return_error_msg the text is KrakenD\'s "request aborted by evaluator #N"', async () => {
    const r = await get(verbose.url, '/nick/ray');
    assert.equal(r.status, 500);
    assert.equal(r.headers['content-type'], 'text/plain; charset=utf-8');
    assert.equal(r.body, 'request aborted by evaluator #0');
    // Evaluators are numbered within their phase: the third check is the second one run before the backends.
    assert.equal((await get(verbose.url, '/numbered')).body, 'request aborted by evaluator #1');
    assert.equal((await get(verbose.url, '/numbered?x=1')).status, 200);
  });

  it('req_method and req_path', async () => {
    assert.equal((await request(plain.url, '/method', { method: 'POST' })).status, 200);
    assert.equal((await get(plain.url, '/get-only-post')).status, 500);
    assert.equal((await get(plain.url, '/path/a%20b')).status, 200, 'the path is decoded, as Go gives it');
    assert.equal((await get(plain.url, '/path/c')).status, 500);
  });

  it('req_headers: the headers the backend gets, with Go\'s canonical names', async () => {
    assert.equal((await get(plain.url, '/headers', { 'x-flag': 'on', 'x-secret': 's' })).status, 200);
    assert.equal((await get(plain.url, '/headers', { 'x-flag': 'off' })).status, 500);
    assert.equal((await get(plain.url, '/headers')).status, 500, 'a missing key fails the check');
  });

  it('req_querystring: the input_query_strings, every value a list', async () => {
    assert.equal((await get(plain.url, '/query?foo=A&foo=B&bar=1')).status, 200);
    assert.equal((await get(plain.url, '/query?foo=B')).status, 500);
    assert.equal((await get(plain.url, '/query')).status, 500);
  });

  it('now: the current time as an RFC 3339 string', async () => {
    assert.equal((await get(plain.url, '/now')).status, 200);
  });

  it('resp_* at endpoint level: checked after the backends; a false one is a 500 instead of the data', async () => {
    let r = await get(plain.url, '/resp-ok');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { n: 4, website: 'https://example.com' });
    const calls = data.requests.length;
    r = await get(verbose.url, '/resp-bad');
    assert.equal(r.status, 500);
    assert.equal(r.body, 'request aborted by evaluator #0');
    assert.equal(data.requests.length, calls + 1, 'the backend was called, the answer withheld');
    assert.equal((await get(plain.url, '/resp-partial')).status, 500, 'resp_completed is false when a backend failed');
  });

  it('resp_metadata_*: the status and headers of a no-op answer', async () => {
    const r = await get(plain.url, '/noop');
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-data'], 'yes');
    assert.deepEqual(JSON.parse(r.body), { n: 4, website: 'https://example.com' });
    assert.equal((await get(plain.url, '/noop-bad')).status, 500);
  });

  it('backend level, resp_*: a false check fails that backend, the endpoint answers partially', async () => {
    const r = await get(plain.url, '/backend-resp');
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-portico-completed'], 'false');
    const body = r.json();
    assert.deepEqual(body.github, { n: 4, website: 'https://example.com' });
    assert.equal(body.other, undefined);
    assert.equal(body.echo.path, '/echo');
  });

  it('backend level, req_*: the backend is not called when its check is false', async () => {
    const calls = () => echo.requests.filter((q) => q.url.startsWith('/echo/only-with-foo')).length;
    const before = calls();
    let r = await get(plain.url, '/backend-req');
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-portico-completed'], 'false');
    assert.deepEqual(Object.keys(r.json()), ['always']);
    assert.equal(calls(), before);
    r = await get(plain.url, '/backend-req?foo=1');
    assert.equal(r.headers['x-portico-completed'], 'true');
    assert.deepEqual(Object.keys(r.json()).sort(), ['always', 'foo']);
    assert.equal(calls(), before + 1);
    // The only backend failing its check fails the endpoint, with KrakenD's text.
    r = await get(verbose.url, '/backend-single');
    assert.equal(r.status, 500);
    assert.equal(r.body, 'request aborted by evaluator #0');
  });

  it('sequential: req_params.Resp0_field holds the earlier answer\'s value', async () => {
    const r = await get(plain.url, '/seq');
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-portico-completed'], 'false', 'the third check is false');
    const body = r.json();
    assert.equal(body.second.path, '/echo/seq?site=https%3A%2F%2Fexample.com');
    assert.equal(body.third, undefined);
    assert.equal(echo.requests.filter((q) => q.url.startsWith('/echo/never')).length, 0);
  });

  it('JWT at endpoint level: the rejecter of a valid token answers 401 with an empty body, even with return_error_msg', async () => {
    const bearer = async (claims: Record<string, unknown>) => ({ authorization: `Bearer ${await signToken(key, claims)}` });
    assert.equal((await get(verbose.url, '/jwt', await bearer({ sub: 'alice' }))).status, 200);
    const r = await get(verbose.url, '/jwt', await bearer({ sub: 'bob' }));
    assert.equal(r.status, 401);
    assert.equal(r.body, '');
    assert.equal((await get(verbose.url, '/jwt')).status, 401, 'no token: auth/validator refuses first');
    // With req_* too, the check runs before the backends with both.
    assert.equal((await get(plain.url, '/jwt-mixed', await bearer({ tier: 'gold' }))).status, 200);
    assert.equal((await get(plain.url, '/jwt-mixed', await bearer({ tier: 'iron' }))).status, 500);
    // Without auth/validator there are no claims: the check fails closed.
    assert.equal((await get(plain.url, '/jwt-without-validator')).status, 401);
  });

  it('JWT at backend level: only the backend whose check fails is left out', async () => {
    const admin = { authorization: `Bearer ${await signToken(key, { sub: 'a', roles: ['admin'] })}` };
    const user = { authorization: `Bearer ${await signToken(key, { sub: 'u', roles: ['user'] })}` };
    let r = await get(plain.url, '/jwt-backend', admin);
    assert.equal(r.headers['x-portico-completed'], 'true');
    assert.deepEqual(Object.keys(r.json()).sort(), ['admin', 'all']);
    r = await get(plain.url, '/jwt-backend', user);
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-portico-completed'], 'false');
    assert.deepEqual(Object.keys(r.json()), ['all']);
  });

  it('refusals are logged as policy refusals with a stable code, naming the check', async () => {
    const { records } = await logsDuring(async () => {
      await get(plain.url, '/nick/ray');
      await get(plain.url, '/jwt-without-validator');
    });
    const refusals = records.filter((r) => r.namespace === NS);
    assert.deepEqual(refusals.map((r) => r.code), [CEL_CODES.rejected, CEL_CODES.token]);
    assert.match(String(refusals[0]!.msg), /endpoint \/nick\/\{nick\}: request aborted by evaluator #0 \(before the backends\)/);
  });
});
