// modifier/jmespath: config checks (syntax, functions, arguments, no-op
// answers, at their JSON path; `portico check`), then a real gateway and real
// backends: endpoint and backend level, merged data, collections, KrakenD's
// wrappers for arrays and scalars, the place in the stack (after proxy.static,
// around validation/cel), failures on the data (500 at endpoint level, a
// failed backend at backend level), and the library loaded only when used.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { asData, JMESPATH_FAILED } from '../../src/namespaces/modifier-jmespath.ts';
import { errorAt, issueAt, load } from '../config/support.ts';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { loadTestConfig, startGateway, type TestGateway } from '../helpers/gateway.ts';
import { get } from '../helpers/http.ts';
import { logsDuring } from '../helpers/log-lines.ts';
import { runCli, runScript, writeConfigFile } from '../helpers/process.ts';

const NS = 'modifier/jmespath';
const AT = `$.endpoints[0].extra_config["${NS}"]`;
const jm = (expr: string) => ({ [NS]: { expr } });
const withExpr = (value: unknown, endpoint: Record<string, unknown> = {}) => ({
  version: 3,
  host: ['http://127.0.0.1:9'],
  endpoints: [{ endpoint: '/e', backend: [{ url_pattern: '/b' }], extra_config: { [NS]: value }, ...endpoint }],
});

describe('modifier/jmespath: config', () => {
  it('the options are the expression, plain data; comment keys are fine; backend level too', () => {
    const ep = loadTestConfig(withExpr({ '@comment': 'names', expr: 'students[*].name' })).endpoints[0]!;
    const o = ep.namespaces.find((u) => u.name === NS)!.options;
    assert.deepEqual(o, { expr: 'students[*].name' });
    assert.deepEqual(structuredClone(o), o);
    assert.deepEqual(load(withExpr({ '@comment': 'names', expr: 'students[*].name' })).warnings, []);
    const be = loadTestConfig({ host: ['http://127.0.0.1:9'], endpoints: [{ endpoint: '/e', backend: [{ url_pattern: '/b', extra_config: jm('a') }] }] });
    assert.deepEqual(be.endpoints[0]!.backends[0]!.namespaces.find((u) => u.name === NS)!.options, { expr: 'a' });
  });

  it('a syntax error is reported at expr with the parser reason', () => {
    let e = errorAt(withExpr({ expr: 'students[?age > `18`' }), `${AT}.expr`);
    assert.match(e.expected, /JMESPath expression/);
    assert.match(e.found, /"students\[\?age > `18`"/);
    assert.match(e.found, /Expected Rbracket/);
    e = errorAt(withExpr({ expr: '' }), `${AT}.expr`);
    assert.match(e.found, /Invalid token/);
    e = errorAt(withExpr({ expr: '`{bad`' }), `${AT}.expr`);
    assert.match(e.found, /JSON/);
    // jmespath parses "a." as "a" then nothing: it would fail on every request
    assert.match(errorAt(withExpr({ expr: 'a.b.' }), `${AT}.expr`).found, /incomplete expression/);
    assert.match(errorAt(withExpr({ expr: '{x: a[*].}' }), `${AT}.expr`).found, /incomplete expression/);
  });

  it('function calls are checked: unknown names (with a hint), argument counts, &expressions', () => {
    assert.match(errorAt(withExpr({ expr: 'upper(name)' }), `${AT}.expr`).found, /unknown function upper\(\); the functions are abs, avg/);
    assert.match(errorAt(withExpr({ expr: 'lenght(students)' }), `${AT}.expr`).found, /unknown function lenght\(\) \(did you mean length\(\)\?\)/);
    assert.match(errorAt(withExpr({ expr: 'length(a, b)' }), `${AT}.expr`).found, /length\(\) takes 1 argument, not 2/);
    assert.match(errorAt(withExpr({ expr: 'merge()' }), `${AT}.expr`).found, /merge\(\) takes at least 1 argument, not 0/);
    assert.match(errorAt(withExpr({ expr: 'sort_by(students, age)' }), `${AT}.expr`).found, /sort_by\(\) takes an &expression as argument 2/);
    assert.match(errorAt(withExpr({ expr: 'length(&a)' }), `${AT}.expr`).found, /length\(\) takes a value, not an &expression, as argument 1/);
    assert.match(errorAt(withExpr({ expr: '&a' }), `${AT}.expr`).found, /only an argument of map, max_by, min_by, sort_by/);
    // nested calls and every place an expression can hide are walked
    assert.match(errorAt(withExpr({ expr: 'a[?contains(nope(b), `1`)].c' }), `${AT}.expr`).found, /unknown function nope\(\)/);
    assert.deepEqual(load(withExpr({ expr: 'map(&to_string(@), sort_by(a, &b)[*].c) | join(`", "`, @)' })).errors, []);
    assert.deepEqual(load(withExpr({ expr: 'a[1:5:2].{x: max_by(b, &c), y: not_null(d, e, `0`)}' })).errors, []);
  });

  it('expr is required and a string; unknown keys are warnings', () => {
    assert.match(errorAt(withExpr({}), `${AT}.expr`).expected, /JMESPath expression such as/);
    assert.match(errorAt(withExpr({ expr: 1 }), `${AT}.expr`).expected, /string/);
    assert.match(errorAt(withExpr('a'), AT).expected, /\{"expr": "\.\.\."\}/);
    const r = load(withExpr({ expr: 'a', exp: 'b' }));
    assert.deepEqual(r.errors, []);
    assert.match(issueAt(r.warnings, `${AT}.exp`).expected, /did you mean "expr"/);
  });

  it('a no-op answer cannot be changed: refused at endpoint and backend level', () => {
    let e = errorAt(withExpr({ expr: 'a' }, { output_encoding: 'no-op' }), AT);
    assert.match(e.expected, /an endpoint whose answer Portico decodes/);
    e = errorAt(
      { version: 3, host: ['http://127.0.0.1:9'], endpoints: [{ endpoint: '/e', backend: [{ url_pattern: '/b', encoding: 'no-op', extra_config: jm('a') }] }] },
      `$.endpoints[0].backend[0].extra_config["${NS}"]`,
    );
    assert.match(e.found, /on a backend whose answer is "no-op"/);
  });

  it('at service level it is an error (a policy where it would not apply)', () => {
    const r = load({ version: 3, host: ['http://127.0.0.1:9'], extra_config: jm('a'), endpoints: [{ endpoint: '/e', backend: [{ url_pattern: '/b' }] }] });
    assert.match(issueAt(r.errors, `$.extra_config["${NS}"]`).found, /it belongs at endpoint or backend level/);
  });

  it('portico check: a bad expression fails with its JSON path', async () => {
    const { file } = writeConfigFile(withExpr({ expr: 'students[?age > `18`].nme | uppr(@)' }));
    const r = await runCli(['check', '-c', file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /\$\.endpoints\[0\]\.extra_config\["modifier\/jmespath"\]\.expr: .*unknown function uppr\(\)/);
  });

  it('wrappers: an object is the data, an array goes under collection, anything else under content', () => {
    const o = { a: 1 };
    assert.equal(asData(o), o);
    assert.deepEqual(asData([1, 2]), { collection: [1, 2] });
    assert.deepEqual(asData('x'), { content: 'x' });
    assert.deepEqual(asData(0), { content: 0 });
    assert.deepEqual(asData(false), { content: false });
    assert.deepEqual(asData(null), { content: null });
  });

  it('the jmespath package is loaded only by a configuration that uses the namespace', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portico-jmespath-'));
    const script = join(dir, 'probe.ts');
    const src = (p: string) => JSON.stringify(fileURLToPath(new URL(`../../src/${p}`, import.meta.url)));
    writeFileSync(
      script,
      `import { createRequire } from 'node:module';
import { loadConfigText } from ${src('config/load.ts')};
const loaded = () => Object.keys(createRequire(import.meta.url).cache).some((k) => /[\\\\/]node_modules[\\\\/]jmespath[\\\\/]/.test(k));
const config = (extra) => JSON.stringify({ version: 3, host: ['http://127.0.0.1:9'], endpoints: [{ endpoint: '/e', extra_config: extra, backend: [{ url_pattern: '/b' }] }] });
const without = loadConfigText(config({ 'validation/cel': [{ check_expr: 'true' }] }), 'a.json', { env: {} });
console.log(without.errors.length, loaded());
const withIt = loadConfigText(config({ 'modifier/jmespath': { expr: 'a' } }), 'b.json', { env: {} });
console.log(withIt.errors.length, loaded());
`,
    );
    const r = await runScript(script, [], process.env);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), ['0 false', '0 true']);
  });
});

describe('modifier/jmespath: over HTTP', () => {
  let data: TestBackend;
  let gw: TestGateway;
  let quiet: TestGateway;

  const STUDENTS = [
    { name: 'Bill', age: 23 },
    { name: 'Mary', age: 16 },
    { name: 'Jessica', age: 19 },
  ];
  const PRODUCTS = [
    { name: 'pear', price: 12, stock: 0 },
    { name: 'apple', price: 30, stock: 4 },
    { name: 'fig', price: 5, stock: 9 },
    { name: 'kiwi', price: 11, stock: 2 },
  ];

  const endpoints = (host: string) => {
    const b = (url_pattern: string, more: Record<string, unknown> = {}) => ({ host: [host], url_pattern, ...more });
    return [
      // KrakenD's own example: an array result is wrapped under collection...
      { endpoint: '/adults', extra_config: jm('students[?age > `18`].name'), backend: [b('/students')] },
      // ...which json-collection renders as the array itself
      { endpoint: '/adults-list', output_encoding: 'json-collection', extra_config: jm('students[?age > `18`].name'), backend: [b('/students')] },
      // the merged data of every backend
      { endpoint: '/merged', extra_config: jm('{names: s.students[*].name, owner: m.owner, total: m.count}'), backend: [b('/students', { group: 's' }), b('/meta', { group: 'm' })] },
      // a collection backend: filter, sort, project
      {
        endpoint: '/cheap-first',
        output_encoding: 'json-collection',
        extra_config: jm('sort_by(collection[?price > `10`], &price)[*].{n: name, p: price}'),
        backend: [b('/products', { is_collection: true })],
      },
      { endpoint: '/in-stock', extra_config: jm('{names: collection[?stock > `0`].name | sort(@), value: sum(collection[*].price), top: max_by(collection, &price).name}'), backend: [b('/products', { is_collection: true })] },
      // scalars go under content
      { endpoint: '/count', extra_config: jm('length(students)'), backend: [b('/students')] },
      { endpoint: '/joined', extra_config: jm("join(', ', students[*].name)"), backend: [b('/students')] },
      { endpoint: '/has-mary', extra_config: jm("contains(students[*].name, 'Mary')"), backend: [b('/students')] },
      { endpoint: '/nothing', extra_config: jm('missing.key'), backend: [b('/students')] },
      // proxy.static is merged before the expression runs (it is inside)
      {
        endpoint: '/static',
        extra_config: { ...jm('{v: version, first: students[0].name}'), proxy: { static: { strategy: 'always', data: { version: 'v1' } } } },
        backend: [b('/students')],
      },
      // validation/cel's resp_data sees the data before the expression (cel is inside)
      { endpoint: '/cel-inside', extra_config: { ...jm('students[0].name'), 'validation/cel': [{ check_expr: 'size(resp_data.students) == 3' }] }, backend: [b('/students')] },
      // backend level: after that backend's group; the other backend untouched
      {
        endpoint: '/backend-object',
        backend: [b('/students', { group: 's', extra_config: jm('s.students[?age < `18`] | [0]') }), b('/meta', { group: 'm' })],
      },
      { endpoint: '/backend-array', backend: [b('/students', { extra_config: jm('students[*].name') }), b('/meta')] },
      { endpoint: '/backend-scalar', backend: [b('/students', { extra_config: jm('length(students)') })] },
      // failures on the data
      { endpoint: '/bad-endpoint', extra_config: jm('abs(students)'), backend: [b('/students')] },
      { endpoint: '/bad-backend', backend: [b('/students', { extra_config: jm('abs(students)') }), b('/meta')] },
      { endpoint: '/bad-backend-only', backend: [b('/students', { extra_config: jm('sort(students)') })] },
      // a failed backend's error details pass untouched
      {
        endpoint: '/details',
        backend: [b('/down', { extra_config: { ...jm('students'), 'backend/http': { return_error_details: 'down' } } }), b('/meta')],
      },
    ];
  };

  before(async () => {
    data = await startBackend((req, res) => {
      switch (req.url) {
        case '/students': return json(res, { students: STUDENTS });
        case '/meta': return json(res, { owner: 'school', count: 3 });
        case '/products': return json(res, PRODUCTS);
        case '/down': return json(res, { error: 'down for maintenance' }, 503);
        default: return json(res, { error: 'not found' }, 404);
      }
    });
    gw = await startGateway({ host: [data.url], extra_config: { router: { return_error_msg: true } }, endpoints: endpoints(data.url) });
    quiet = await startGateway({ host: [data.url], endpoints: endpoints(data.url) });
  });
  after(async () => {
    await gw.close();
    await quiet.close();
    await data.close();
  });

  const body = async (path: string) => {
    const r = await get(gw.url, path);
    assert.equal(r.status, 200, `${path}: ${r.body}`);
    return r.json();
  };

  it("endpoint level: KrakenD's example; an array result is wrapped under collection, json-collection renders it bare", async () => {
    assert.deepEqual(await body('/adults'), { collection: ['Bill', 'Jessica'] });
    const r = await get(gw.url, '/adults-list');
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-portico-completed'], 'true');
    assert.deepEqual(r.json(), ['Bill', 'Jessica']);
  });

  it('endpoint level: the expression reads the merged data of every backend', async () => {
    assert.deepEqual(await body('/merged'), { names: ['Bill', 'Mary', 'Jessica'], owner: 'school', total: 3 });
  });

  it('collections: filters, sort_by, projections, sum, max_by over the collection key', async () => {
    assert.deepEqual(await body('/cheap-first'), [{ n: 'kiwi', p: 11 }, { n: 'pear', p: 12 }, { n: 'apple', p: 30 }]);
    assert.deepEqual(await body('/in-stock'), { names: ['apple', 'fig', 'kiwi'], value: 58, top: 'apple' });
  });

  it('a scalar result goes under content (null too)', async () => {
    assert.deepEqual(await body('/count'), { content: 3 });
    assert.deepEqual(await body('/joined'), { content: 'Bill, Mary, Jessica' });
    assert.deepEqual(await body('/has-mary'), { content: true });
    assert.deepEqual(await body('/nothing'), { content: null });
  });

  it('its place in the stack: it sees proxy.static data; validation/cel sees the data before it', async () => {
    assert.deepEqual(await body('/static'), { v: 'v1', first: 'Bill' });
    assert.deepEqual(await body('/cel-inside'), { content: 'Bill' });
  });

  it("backend level: applied to that backend's data after its group, before the merge", async () => {
    assert.deepEqual(await body('/backend-object'), { name: 'Mary', age: 16, m: { owner: 'school', count: 3 } });
    assert.deepEqual(await body('/backend-array'), { collection: ['Bill', 'Mary', 'Jessica'], owner: 'school', count: 3 });
    assert.deepEqual(await body('/backend-scalar'), { content: 3 });
  });

  it('a failure on the data at endpoint level is a 500 logged with its code; the reason is shown only with return_error_msg', async () => {
    let r!: Awaited<ReturnType<typeof get>>;
    let q!: Awaited<ReturnType<typeof get>>;
    const { records } = await logsDuring(async () => {
      r = await get(gw.url, '/bad-endpoint');
      q = await get(quiet.url, '/bad-endpoint');
    });
    assert.equal(r.status, 500);
    assert.equal(r.headers['x-portico-completed'], 'false');
    assert.equal(r.body, 'modifier/jmespath: TypeError: abs() expected argument 1 to be type number but received type array instead.');
    assert.equal(q.status, 500);
    assert.equal(q.body, '');
    const logged = records.filter((l) => l.code === JMESPATH_FAILED);
    assert.deepEqual(logged.map((l) => [l.level, l.endpoint]), [['error', '/bad-endpoint'], ['error', '/bad-endpoint']]);
  });

  it('a failure on the data at backend level fails that backend: partial answer, or 500 when it is the only one', async () => {
    let r!: Awaited<ReturnType<typeof get>>;
    let only!: Awaited<ReturnType<typeof get>>;
    const { records } = await logsDuring(async () => {
      r = await get(gw.url, '/bad-backend');
      only = await get(gw.url, '/bad-backend-only');
    });
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-portico-completed'], 'false');
    assert.deepEqual(r.json(), { owner: 'school', count: 3 });
    assert.equal(only.status, 500);
    assert.match(only.body, /^modifier\/jmespath: TypeError: sort\(\) expected argument 1/);
    const logged = records.filter((l) => l.code === JMESPATH_FAILED);
    assert.deepEqual(logged.map((l) => [l.endpoint, l.partial ?? false]), [['/bad-backend', true], ['/bad-backend-only', false]]);
  });

  it("a failed backend's error details are not run through the expression", async () => {
    const r = await get(gw.url, '/details');
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-portico-completed'], 'false');
    const d = r.json();
    assert.equal(d.error_down.http_status_code, 503);
    assert.equal(d.owner, 'school');
  });
});
