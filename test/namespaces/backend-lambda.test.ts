// backend/lambda: a `portico run` process invokes functions through the Lambda
// Invoke API of a real loopback server (test/helpers/lambda-server.ts) that
// verifies each request's SigV4 signature with the test credentials, which the
// gateway gets the standard AWS ways (environment variables, the shared
// credentials file).

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfigText } from '../../src/config/load.ts';
import { freePort } from '../helpers/etcd.ts';
import { startGateway } from '../helpers/gateway.ts';
import { get, request } from '../helpers/http.ts';
import { tempDir } from '../helpers/lifecycle-support.ts';
import { ChunkedPayload, LambdaApiError, startLambdaServer, type TestLambda } from '../helpers/lambda-server.ts';
import { LogLines, logsDuring } from '../helpers/log-lines.ts';
import { runCli, startCli, writeConfigFile, type Running } from '../helpers/process.ts';

const ENV_KEY = { accessKeyId: 'AKIAPORTICOENV000001', secretAccessKey: 'env-secret-Zq8vN2kXw4' };
const FILE_KEY = { accessKeyId: 'AKIAPORTICOFILE00002', secretAccessKey: 'file-secret-Hh5tR9mLp1' };
const NS = 'backend/lambda';
const AT = `$.endpoints[0].backend[0].extra_config["${NS}"]`;

// Nothing AWS from the machine running the tests, for this process and the gateways it
// starts (they inherit it): no keys, no files in the home directory, no instance metadata.
for (const name of Object.keys(process.env)) if (name.startsWith('AWS_')) delete process.env[name];
const NOWHERE = tempDir('lambda-env');
Object.assign(process.env, { AWS_SHARED_CREDENTIALS_FILE: join(NOWHERE, 'none'), AWS_CONFIG_FILE: join(NOWHERE, 'none'), AWS_EC2_METADATA_DISABLED: 'true' });

const lambdaBackend = (options: Record<string, unknown>, more: Record<string, unknown> = {}) => ({ host: ['http://unused.invalid'], url_pattern: '/', ...more, extra_config: { [NS]: options } });

describe('backend/lambda through a gateway process', () => {
  let lambda: TestLambda;
  let gw: Running;
  let logs: LogLines;
  let base: string;
  let downPort: number;
  let dir: string;
  let releaseSlow: () => void = () => {};
  const slowGate = new Promise<void>((r) => (releaseSlow = r));

  const config = (endpoint: string) => {
    const at = { region: 'us-east-1', endpoint };
    return {
      version: 3,
      extra_config: { 'portico/server': { max_backend_body_bytes: 65536 }, 'telemetry/logging': { level: 'DEBUG', stdout: true } },
      endpoints: [
        { endpoint: '/greet/{first_name}/{Last}', backend: [lambdaBackend({ ...at, function_name: 'greet' })] },
        { endpoint: '/orders', method: 'POST', backend: [lambdaBackend({ ...at, function_name: 'orders' })] },
        { endpoint: '/fn/{name}/{id}', backend: [lambdaBackend({ ...at, function_param_name: 'Name' })] },
        { endpoint: '/call/{function}', backend: [lambdaBackend(at)] },
        { endpoint: '/fail', backend: [lambdaBackend({ ...at, function_name: 'fails' })] },
        { endpoint: '/missing', backend: [lambdaBackend({ ...at, function_name: 'nosuch' })] },
        { endpoint: '/down', backend: [lambdaBackend({ region: 'us-east-1', endpoint: `http://127.0.0.1:${downPort}`, function_name: 'greet' })] },
        { endpoint: '/slow', timeout: '300ms', backend: [lambdaBackend({ ...at, function_name: 'slow' })] },
        { endpoint: '/big', backend: [lambdaBackend({ ...at, function_name: 'big' })] },
        { endpoint: '/big-chunked', backend: [lambdaBackend({ ...at, function_name: 'big-chunked' })] },
        { endpoint: '/chunked', backend: [lambdaBackend({ ...at, function_name: 'chunked' })] },
        { endpoint: '/retried', backend: [lambdaBackend({ ...at, function_name: 'flaky', max_retries: 2 })] },
        { endpoint: '/not-retried', backend: [lambdaBackend({ ...at, function_name: 'flaky-once' })] },
        { endpoint: '/env-region/{x}', backend: [lambdaBackend({ endpoint, function_name: 'greet' })] },
        {
          endpoint: '/apigw/{id}',
          method: 'PUT',
          input_query_strings: ['q'],
          input_headers: ['X-Trace'],
          backend: [lambdaBackend({ ...at, function_name: 'echo', aws_api_gateway_format: { enabled: true } }, { url_pattern: '/items/{id}' })],
        },
        { endpoint: '/raw', output_encoding: 'no-op', backend: [lambdaBackend({ ...at, function_name: 'echo' }, { encoding: 'no-op' })] },
        { endpoint: '/shaped', backend: [lambdaBackend({ ...at, function_name: 'echo' }, { allow: ['a'], mapping: { a: 'alpha' } })] },
      ],
    };
  };

  before(async () => {
    dir = tempDir('portico-lambda-');
    downPort = await freePort();
    lambda = await startLambdaServer({ credentials: [ENV_KEY, FILE_KEY] });
    lambda.register('greet', (e) => {
      const { first_name, last } = e as Record<string, string>;
      return { message: `Hello ${first_name} ${last}!` };
    });
    lambda.register('orders', (e) => ({ received: e }));
    lambda.register('echo', (e) => (typeof e === 'object' && e !== null && 'version' in e ? e : { a: 1, b: 2 }));
    lambda.register('fails', () => {
      throw new Error('kaput');
    });
    lambda.register('slow', async () => {
      await slowGate;
      return { late: true };
    });
    lambda.register('big', () => ({ blob: 'x'.repeat(100_000) }));
    lambda.register('big-chunked', () => new ChunkedPayload(['{"blob":"', ...Array.from({ length: 10 }, () => 'x'.repeat(10_000)), '"}']));
    lambda.register('chunked', () => new ChunkedPayload(['{"blob":"', 'x'.repeat(30_000), '", "n": ', '1}']));
    let flaky = 0;
    lambda.register('flaky', () => {
      if (++flaky <= 2) throw new LambdaApiError(500, 'ServiceException', 'try again');
      return { attempt: flaky };
    });
    lambda.register('flaky-once', () => {
      throw new LambdaApiError(500, 'ServiceException', 'try again');
    });
    const { file } = writeConfigFile(config(lambda.url));
    gw = await startCli(['run', '-c', file, '-p', '0'], { AWS_REGION: 'eu-west-1', AWS_ACCESS_KEY_ID: ENV_KEY.accessKeyId, AWS_SECRET_ACCESS_KEY: ENV_KEY.secretAccessKey });
    logs = new LogLines(gw);
    base = `http://127.0.0.1:${gw.port}`;
  });

  after(async () => {
    releaseSlow();
    gw.child.kill('SIGTERM');
    await gw.exited;
    await lambda.close();
  });

  const last = () => lambda.invocations.at(-1)!;

  it('GET: the payload is the endpoint parameters (keys lower-cased), the answer is decoded as JSON', async () => {
    const r = await get(base, '/greet/ada/lovelace?dropped=1');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { message: 'Hello ada lovelace!' });
    const inv = last();
    assert.equal(inv.functionName, 'greet');
    assert.equal(inv.payload, '{"first_name":"ada","last":"lovelace"}\n');
    assert.equal(inv.invocationType, 'RequestResponse');
    assert.equal(inv.logType, 'None');
    assert.equal(inv.accessKeyId, ENV_KEY.accessKeyId, 'signed with the credentials from the environment');
    assert.equal(inv.region, 'us-east-1');
  });

  it('POST: the request body is the payload, byte for byte', async () => {
    const body = '{"item":"tea","qty":2,"note":"ünïcode"}';
    const r = await request(base, '/orders', { method: 'POST', body, headers: { 'content-type': 'application/json' } });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { received: { item: 'tea', qty: 2, note: 'ünïcode' } });
    assert.equal(last().payload, body);
  });

  it('POST with a body that is not JSON: the API refuses it (400), the endpoint fails with 500', async () => {
    const before = lambda.invocations.length;
    const r = await request(base, '/orders', { method: 'POST', body: 'not json' });
    assert.equal(r.status, 500);
    assert.equal(lambda.invocations.length, before);
  });

  it('function_param_name (KrakenD spelling "Name" for {name}) and the default {function} pick the function', async () => {
    let r = await get(base, '/fn/greet/7');
    assert.equal(r.status, 200);
    assert.equal(last().functionName, 'greet');
    assert.equal(last().payload, '{"id":"7","name":"greet"}\n', 'the function parameter is in the payload too, as in KrakenD');
    r = await get(base, '/call/orders');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { received: { function: 'orders' } });
    const before = lambda.invocations.length;
    r = await get(base, '/call/not%20a%20name');
    assert.equal(r.status, 500, 'a parameter that is no function name fails the backend');
    assert.equal(lambda.invocations.length, before, 'and never reaches the API');
    assert.equal((await logs.next(0, ['aws lambda: "not a name"'])).code, 'LAMBDA_FUNCTION_NAME');
  });

  it("a function error is the answer, with status 200, as in KrakenD (its payload is the function's error object)", async () => {
    const r = await get(base, '/fail');
    assert.equal(r.status, 200);
    const body = r.json();
    assert.equal(body.errorType, 'Error');
    assert.equal(body.errorMessage, 'kaput');
  });

  it('an unknown function (404 from the API): 500, logged with the API error, the gateway keeps serving', async () => {
    const from = logs.records.length;
    const r = await get(base, '/missing');
    assert.equal(r.status, 500);
    assert.equal(r.body, '');
    const rec = await logs.next(from, ['aws lambda: invoking nosuch']);
    assert.equal(rec.code, 'LAMBDA_API_ERROR');
    assert.match(String(rec.msg), /404 ResourceNotFoundException/);
    assert.equal((await get(base, '/greet/a/b')).status, 200);
  });

  it('the Lambda API down: 500 at once (max_retries 0: one attempt), the gateway keeps serving', async () => {
    const from = logs.records.length;
    const t0 = Date.now();
    const r = await get(base, '/down');
    assert.equal(r.status, 500);
    assert.ok(Date.now() - t0 < 2000, `answered in ${Date.now() - t0} ms`);
    assert.equal((await logs.next(from, ['aws lambda: invoking greet'])).code, 'BACKEND_UNREACHABLE');
    assert.equal((await get(base, '/greet/a/b')).status, 200);
  });

  it('the endpoint timeout while the function runs: the timeout answer (500) at the deadline', async () => {
    const from = logs.records.length;
    const t0 = Date.now();
    const r = await get(base, '/slow');
    const took = Date.now() - t0;
    assert.equal(r.status, 500);
    assert.ok(took >= 250 && took < 1500, `answered in ${took} ms`);
    assert.equal((await logs.next(from, ['context deadline exceeded'])).code, 'TIMEOUT');
    releaseSlow();
  });

  it('an answer over max_backend_body_bytes fails the backend, with or without Content-Length', async () => {
    for (const path of ['/big', '/big-chunked']) {
      const from = logs.records.length;
      const r = await get(base, path);
      assert.equal(r.status, 500, path);
      assert.equal((await logs.next(from, ['backend response body larger'])).code, 'BACKEND_BODY_TOO_LARGE', path);
    }
    const r = await get(base, '/chunked');
    assert.equal(r.status, 200, 'a chunked answer under the limit arrives whole');
    assert.deepEqual(r.json(), { blob: 'x'.repeat(30_000), n: 1 });
  });

  it('max_retries: API errors are retried that many times; by default (0) not at all', async () => {
    let before = lambda.invocations.length;
    let r = await get(base, '/retried');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { attempt: 3 });
    assert.equal(lambda.invocations.length - before, 3);
    before = lambda.invocations.length;
    r = await get(base, '/not-retried');
    assert.equal(r.status, 500);
    assert.equal(lambda.invocations.length - before, 1);
  });

  it('without "region", the SDK chain gives it (AWS_REGION)', async () => {
    const r = await get(base, '/env-region/1');
    assert.equal(r.status, 200);
    assert.equal(last().region, 'eu-west-1');
  });

  it('aws_api_gateway_format: the call as an API Gateway proxy event', async () => {
    const r = await request(base, '/apigw/5?q=1&other=2', { method: 'PUT', body: 'hello', headers: { 'x-trace': 'abc', 'x-other': 'no' } });
    assert.equal(r.status, 200);
    const event = JSON.parse(last().payload);
    assert.equal(event.version, '1.0');
    assert.equal(event.httpMethod, 'PUT');
    assert.equal(event.path, '/items/5');
    assert.deepEqual(event.pathParameters, { Id: '5' });
    assert.deepEqual(event.queryStringParameters, { q: '1' });
    assert.deepEqual(event.multiValueQueryStringParameters, { q: ['1'] });
    assert.equal(event.headers['X-Trace'], 'abc');
    assert.equal(event.headers['X-Other'], undefined);
    assert.equal(event.body, 'hello');
    assert.equal(event.requestContext.protocol, 'http');
  });

  it('encoding no-op: the payload passes through untouched; otherwise allow and mapping apply', async () => {
    let r = await get(base, '/raw');
    assert.equal(r.status, 200);
    assert.equal(r.body, '{"a":1,"b":2}');
    assert.equal(r.headers['content-type'], 'application/json');
    r = await get(base, '/shaped');
    assert.deepEqual(r.json(), { alpha: 1 });
  });

  it('credentials never appear in the logs (debug level, access log on), and every request was signed right', async () => {
    const from = logs.records.length;
    assert.equal((await get(base, '/greet/a/b')).status, 200);
    assert.equal((await get(base, '/missing')).status, 500);
    await logs.next(from, ['aws lambda: invoking nosuch']);
    const out = gw.output();
    assert.ok(logs.records.length - from >= 3, 'access and error lines were logged');
    assert.ok(!out.includes(ENV_KEY.secretAccessKey), 'no secret key');
    assert.ok(!out.includes(ENV_KEY.accessKeyId), 'no access key id');
    assert.deepEqual(lambda.refused, []);
  });

  it('the shared credentials file is used when the environment has no keys; no region anywhere: 500 LAMBDA_REGION', async () => {
    const credentials = join(dir, 'credentials');
    writeFileSync(credentials, `[default]\naws_access_key_id = ${FILE_KEY.accessKeyId}\naws_secret_access_key = ${FILE_KEY.secretAccessKey}\n`);
    const { file } = writeConfigFile({
      version: 3,
      endpoints: [
        { endpoint: '/greet/{first_name}/{last}', backend: [lambdaBackend({ region: 'us-east-1', endpoint: lambda.url, function_name: 'greet' })] },
        { endpoint: '/no-region', backend: [lambdaBackend({ endpoint: lambda.url, function_name: 'greet' })] },
      ],
    });
    const other = await startCli(['run', '-c', file, '-p', '0'], { AWS_SHARED_CREDENTIALS_FILE: credentials });
    try {
      const otherLogs = new LogLines(other);
      const r = await get(`http://127.0.0.1:${other.port}`, '/greet/x/y');
      assert.equal(r.status, 200);
      assert.equal(last().accessKeyId, FILE_KEY.accessKeyId);
      const before = lambda.invocations.length;
      assert.equal((await get(`http://127.0.0.1:${other.port}`, '/no-region')).status, 500);
      assert.equal((await otherLogs.next(0, ['aws lambda: no region'])).code, 'LAMBDA_REGION');
      assert.equal(lambda.invocations.length, before);
      assert.ok(!other.output().includes(FILE_KEY.secretAccessKey));
    } finally {
      other.child.kill('SIGTERM');
      await other.exited;
    }
  });
});

describe('backend/lambda: the test Lambda API verifies signatures', () => {
  it('a request signed with the wrong secret is refused with 403 InvalidSignatureException', async () => {
    const lambda = await startLambdaServer({ credentials: [ENV_KEY] });
    lambda.register('f', () => ({}));
    const { LambdaClient, InvokeCommand } = await import('@aws-sdk/client-lambda');
    const client = (secretAccessKey: string) => new LambdaClient({ region: 'us-east-1', endpoint: lambda.url, maxAttempts: 1, credentials: { accessKeyId: ENV_KEY.accessKeyId, secretAccessKey } });
    const good = client(ENV_KEY.secretAccessKey);
    const bad = client('not-the-secret');
    try {
      const ok = await good.send(new InvokeCommand({ FunctionName: 'f', Payload: Buffer.from('{}') }));
      assert.equal(ok.StatusCode, 200);
      await assert.rejects(bad.send(new InvokeCommand({ FunctionName: 'f', Payload: Buffer.from('{}') })), (e: Error & { $metadata: { httpStatusCode: number } }) => {
        assert.equal(e.name, 'InvalidSignatureException');
        assert.equal(e.$metadata.httpStatusCode, 403);
        return true;
      });
      assert.equal(lambda.invocations.length, 1);
      assert.equal(lambda.refused.length, 1);
    } finally {
      good.destroy();
      bad.destroy();
      await lambda.close();
    }
  });
});

describe('backend/lambda: configuration', () => {
  const load = (ns: unknown, endpoint = '/x/{id}') =>
    loadConfigText(JSON.stringify({ version: 3, endpoints: [{ endpoint, backend: [{ host: ['http://unused'], url_pattern: '/', extra_config: { [NS]: ns } }] }] }), 'c.json', { env: {} });
  const errorPaths = (ns: unknown, endpoint?: string) => load(ns, endpoint).errors.map((e) => e.path);

  it('accepts what KrakenD documents', () => {
    for (const ns of [
      { function_name: 'my-function', region: 'us-east-1' },
      { function_name: 'my-function:v1', region: 'eu-west-2', max_retries: -1 },
      { function_name: '123456789012:function:my-function' },
      { function_name: 'arn:aws:lambda:us-gov-west-1:123456789012:function:f:$LATEST', endpoint: 'localhost:4566' },
      { function_param_name: 'Id', region: 'ap-southeast-1', max_retries: 3, endpoint: 'http://127.0.0.1:4566' },
    ]) {
      assert.deepEqual(load(ns).errors, [], JSON.stringify(ns));
    }
    assert.deepEqual(load({}, '/f/{function}').errors, [], 'the default {function} parameter');
  });

  it('refuses what cannot work, at its JSON path', () => {
    assert.deepEqual(errorPaths({ region: 'us-east-1' }), [`${AT}.function_name`], 'no function name, no {function} to default to');
    assert.deepEqual(errorPaths({ function_param_name: 'nope' }), [`${AT}.function_param_name`]);
    assert.deepEqual(errorPaths({ function_name: 'bad name!' }), [`${AT}.function_name`]);
    assert.deepEqual(errorPaths({ function_name: '' }), [`${AT}.function_name`]);
    assert.deepEqual(errorPaths({ function_name: 'f', region: 'moon-base' }), [`${AT}.region`]);
    assert.deepEqual(errorPaths({ function_name: 'f', region: 'US-EAST-1' }), [`${AT}.region`]);
    assert.deepEqual(errorPaths({ function_name: 'f', max_retries: -2 }), [`${AT}.max_retries`]);
    assert.deepEqual(errorPaths({ function_name: 'f', endpoint: 'ftp://x' }), [`${AT}.endpoint`]);
    assert.deepEqual(errorPaths({ function_name: 'f', endpoint: 'http://user:pw@x' }), [`${AT}.endpoint`]);
    assert.deepEqual(errorPaths({ function_name: 'f', aws_api_gateway_format: { enabled: 'yes' } }), [`${AT}.aws_api_gateway_format.enabled`]);
    assert.deepEqual(errorPaths('f'), [AT]);
  });

  it('warns about both names (function_name wins, as in KrakenD) and unknown keys', () => {
    const r = load({ function_name: 'f', function_param_name: 'Id', regoin: 'us-east-1' });
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.warnings.map((w) => w.path).sort(), [`${AT}.function_param_name`, `${AT}.regoin`]);
  });

  it('portico check: a missing function name and a bad region fail with their JSON paths', async () => {
    const { file } = writeConfigFile({
      version: 3,
      endpoints: [
        { endpoint: '/a', backend: [lambdaBackend({ region: 'us-east-1' })] },
        { endpoint: '/b', backend: [lambdaBackend({ function_name: 'f', region: 'nowhere' })] },
      ],
    });
    const r = await runCli(['check', '-c', file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /\$\.endpoints\[0\]\.backend\[0\]\.extra_config\["backend\/lambda"\]\.function_name/);
    assert.match(r.stderr, /\$\.endpoints\[1\]\.backend\[0\]\.extra_config\["backend\/lambda"\]\.region/);
  });
});

describe('backend/lambda in-process', () => {
  it('no credentials anywhere: 500 LAMBDA_CREDENTIALS at once, and the message says so', async () => {
    const gw = await startGateway({
      extra_config: { router: { return_error_msg: true } },
      endpoints: [{ endpoint: '/f', backend: [lambdaBackend({ function_name: 'f', region: 'us-east-1', endpoint: 'http://127.0.0.1:1' })] }],
    });
    try {
      const t0 = Date.now();
      const { records } = await logsDuring(async () => {
        const r = await get(gw.url, '/f');
        assert.equal(r.status, 500);
        assert.match(r.body, /^aws lambda: no credentials/);
      });
      assert.ok(Date.now() - t0 < 3000, `answered in ${Date.now() - t0} ms`);
      assert.equal(records.find((l) => String(l.msg).startsWith('aws lambda: no credentials'))?.code, 'LAMBDA_CREDENTIALS');
    } finally {
      await gw.close();
    }
  });

  it('an unchanged configuration keeps its client across a reload; one without it disposes of it', async () => {
    // "ignore" (a host KrakenD's examples write) becomes http://ignore: it is never called.
    const withLambda = { endpoints: [{ endpoint: '/f', backend: [lambdaBackend({ function_name: 'f', region: 'us-east-1', endpoint: 'http://127.0.0.1:1' }, { host: ['ignore'] })] }] };
    const gw = await startGateway(withLambda);
    try {
      const lambdaKeys = () => gw.state.keys().filter((k) => k.startsWith(NS));
      assert.equal(lambdaKeys().length, 1);
      const key = lambdaKeys()[0];
      await gw.reload(withLambda);
      assert.deepEqual(lambdaKeys(), [key]);
      await gw.reload({ endpoints: [{ endpoint: '/f', backend: [{ host: ['http://127.0.0.1:1'], url_pattern: '/' }] }] });
      const deadline = Date.now() + 5000;
      while (lambdaKeys().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(lambdaKeys(), []);
    } finally {
      await gw.close();
    }
  });
});
