// auth/basic: htpasswd file and inline users (bcrypt), service-level settings
// inherited by `"auth/basic": {}` endpoints or replaced by a non-empty one,
// WWW-Authenticate on every 401, the verification cache and bcrypt workers,
// config and compile errors, and hostile requests, through real HTTP.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import bcrypt from 'bcryptjs';
import { BASIC_CHALLENGE, BcryptPool, decodeBasic, MAX_WAITING_VERIFICATIONS, readHtpasswd } from '../../src/namespaces/auth-basic.ts';
import { stateKey } from '../../src/namespaces/state.ts';
import { resetLogThrottle, setLogLevel } from '../../src/telemetry/log.ts';
import { errorAt, issueAt, load } from '../config/support.ts';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { loadTestConfig, startGateway, type TestGateway } from '../helpers/gateway.ts';
import { get } from '../helpers/http.ts';
import { logsDuring } from '../helpers/log-lines.ts';

const NS = 'auth/basic';
const hash = (pw: string, cost = 4) => bcrypt.hashSync(pw, cost);
/** Apache's htpasswd -B writes $2y$: the same algorithm as $2b$. */
const apache = (h: string) => h.replace(/^\$2b\$/, '$2y$');
const basic = (user: string, password: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}` });
const rawBasic = (bytes: Buffer | string) => ({ authorization: `Basic ${Buffer.from(bytes).toString('base64')}` });

const LONG = 'p'.repeat(72);
const UNICODE_USER = 'josé';
const UNICODE_PW = 'pässwörd ✓ 密码';

describe('auth/basic', () => {
  let dir: string;
  let htpasswd: string;
  let backend: TestBackend;
  let gw: TestGateway;

  const endpoints = (host: string) => [
    { endpoint: '/inherit', backend: [{ host: [host], url_pattern: '/inherit' }], extra_config: { [NS]: {} } },
    { endpoint: '/own', backend: [{ host: [host], url_pattern: '/own' }], extra_config: { [NS]: { users: { dave: hash('dave-pw') } } } },
    { endpoint: '/comment', backend: [{ host: [host], url_pattern: '/comment' }], extra_config: { [NS]: { '@comment': 'inherits' } } },
    { endpoint: '/public', backend: [{ host: [host], url_pattern: '/public' }] },
  ];
  const config = () => ({
    extra_config: { [NS]: { htpasswd_path: htpasswd, users: { carol: hash('carol-pw'), bob: hash('bob-inline') } } },
    endpoints: endpoints(backend.url),
  });

  before(async () => {
    setLogLevel('warn'); // refusals are logged at info: keep the test output readable
    dir = mkdtempSync(join(tmpdir(), 'portico-basic-'));
    htpasswd = join(dir, '.htpasswd');
    writeFileSync(
      htpasswd,
      [
        '# users of the test',
        `alice:${apache(hash('alice-pw'))}`,
        '',
        `bob:${hash('bob-pw')}`,
        `${UNICODE_USER}:${hash(UNICODE_PW)}`,
        `long:${hash(LONG)}\r`,
        `slow:${hash('slow-pw', 10)}`,
      ].join('\n'),
    );
    backend = await startBackend((req, res) => json(res, { path: req.url }));
    gw = await startGateway(config());
  });
  after(async () => {
    setLogLevel('info');
    resetLogThrottle();
    await gw.close();
    await backend.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Asserts a refusal: status, the Basic challenge, empty body, no backend call. */
  async function refused(path: string, headers: Record<string, string> | undefined): Promise<void> {
    const before = backend.requests.length;
    const r = await get(gw.url, path, headers);
    assert.equal(r.status, 401, `${path} ${JSON.stringify(headers)}`);
    assert.equal(r.headers['www-authenticate'], BASIC_CHALLENGE);
    assert.equal(r.body, '');
    assert.equal(backend.requests.length, before, 'the backend must not be called');
  }

  const ok = async (path: string, headers: Record<string, string>) => assert.equal((await get(gw.url, path, headers)).status, 200, `${path} ${JSON.stringify(headers)}`);

  /** The value of a live policy-state entry (and a release for the reference taken). */
  function stateValue<T>(prefix: string): { value: T; release: () => Promise<void> } {
    const key = gw.state.keys().find((k) => k.startsWith(prefix));
    assert.ok(key, `no state entry ${prefix}`);
    const scope = gw.state.scope();
    const value = scope.get<T>(key, () => assert.fail('the entry should exist'));
    return { value, release: () => scope.release() };
  }

  /** Counts the bcrypt verifications the gateway starts. */
  function countVerifications(): { count: () => number; restore: () => Promise<void> } {
    const { value: pool, release } = stateValue<BcryptPool>(stateKey(NS, 'bcrypt-workers'));
    let n = 0;
    const original = pool.verify;
    pool.verify = (password: string, h: string) => {
      n++;
      return original.call(pool, password, h);
    };
    return {
      count: () => n,
      restore: async () => {
        pool.verify = original;
        await release();
      },
    };
  }

  it('users from the htpasswd file ($2y$ and $2b$) and inline users pass', async () => {
    await ok('/inherit', basic('alice', 'alice-pw'));
    await ok('/inherit', basic('carol', 'carol-pw'));
  });

  it('inline users overwrite the same user of the htpasswd file', async () => {
    await ok('/inherit', basic('bob', 'bob-inline'));
    await refused('/inherit', basic('bob', 'bob-pw'));
  });

  it('an endpoint with its own settings replaces the whole service-level object', async () => {
    await ok('/own', basic('dave', 'dave-pw'));
    await refused('/own', basic('alice', 'alice-pw'));
    await refused('/own', basic('carol', 'carol-pw'));
    await refused('/inherit', basic('dave', 'dave-pw'));
  });

  it('an endpoint object holding only comments inherits the service level', async () => {
    await ok('/comment', basic('alice', 'alice-pw'));
  });

  it('endpoints without auth/basic stay public', async () => {
    assert.equal((await get(gw.url, '/public')).status, 200);
  });

  it('hostile: missing credentials and other schemes', async () => {
    await refused('/inherit', undefined);
    await refused('/inherit', { authorization: '' });
    await refused('/inherit', { authorization: 'Basic' });
    await refused('/inherit', { authorization: 'Basic ' });
    await refused('/inherit', { authorization: `Bearer ${Buffer.from('alice:alice-pw').toString('base64')}` });
    await refused('/inherit', { authorization: `Basic${Buffer.from('alice:alice-pw').toString('base64')}` });
  });

  it('the scheme name is case-insensitive (RFC 9110)', async () => {
    await ok('/inherit', { authorization: `basic ${Buffer.from('alice:alice-pw').toString('base64')}` });
    await ok('/inherit', { authorization: `BASIC ${Buffer.from('alice:alice-pw').toString('base64')}` });
  });

  it('hostile: malformed credentials (no colon, invalid base64, bad padding, empty user, not UTF-8)', async () => {
    await refused('/inherit', rawBasic('alice'));
    await refused('/inherit', { authorization: 'Basic !!!!' });
    await refused('/inherit', { authorization: `Basic ${Buffer.from('alice:alice-pw').toString('base64').replace(/=+$/, '')}x` });
    await refused('/inherit', { authorization: `Basic ${Buffer.from('alice:alice-pw').toString('base64')}==` });
    await refused('/inherit', { authorization: `Basic ${Buffer.from('alice:alice-pw').toString('base64url').replace(/=+$/, '')}` });
    await refused('/inherit', rawBasic(':alice-pw'));
    await refused('/inherit', rawBasic(':'));
    await refused('/inherit', rawBasic(Buffer.from([0x61, 0x6c, 0x69, 0x63, 0x65, 0x3a, 0xff, 0xfe])));
  });

  it('hostile: unknown user, wrong password, wrong case, 8 KB password', async () => {
    await refused('/inherit', basic('mallory', 'alice-pw'));
    await refused('/inherit', basic('Alice', 'alice-pw'));
    await refused('/inherit', basic('alice', 'alice-pW'));
    await refused('/inherit', basic('alice', 'alice-pw '));
    await refused('/inherit', basic('alice', ''));
    await refused('/inherit', basic('alice', 'x'.repeat(8 * 1024)));
  });

  it('unicode user names and passwords (UTF-8)', async () => {
    await ok('/inherit', basic(UNICODE_USER, UNICODE_PW));
    await refused('/inherit', basic(UNICODE_USER, UNICODE_PW.normalize('NFD')));
    await refused('/inherit', basic('jose', UNICODE_PW));
    // the same characters sent as Latin-1 bytes are other bytes, hence not UTF-8: refused
    await refused('/inherit', rawBasic(Buffer.from(`${UNICODE_USER}:pässwörd`, 'latin1')));
  });

  it('passwords longer than the 72 bytes bcrypt checks are refused, not truncated', async () => {
    await ok('/inherit', basic('long', LONG));
    await refused('/inherit', basic('long', LONG + 'extra'));
  });

  it('a successful verification is cached; failures are not; concurrent checks share one bcrypt', async () => {
    const spy = countVerifications();
    try {
      await ok('/inherit', basic('slow', 'slow-pw'));
      assert.equal(spy.count(), 1);
      await ok('/inherit', basic('slow', 'slow-pw'));
      await ok('/comment', basic('slow', 'slow-pw'));
      assert.equal(spy.count(), 1, 'cached: no second bcrypt');
      await refused('/inherit', basic('slow', 'wrong'));
      await refused('/inherit', basic('slow', 'wrong'));
      assert.equal(spy.count(), 3, 'failures are verified every time');
      // cost 10 (~65 ms): the five arrive while the first verification runs
      const all = await Promise.all(Array.from({ length: 5 }, () => get(gw.url, '/inherit', basic('slow', 'not-it'))));
      assert.deepEqual(all.map((r) => r.status), [401, 401, 401, 401, 401]);
      assert.ok(spy.count() < 8, `concurrent identical checks share their bcrypt (${spy.count() - 3} for 5)`);
    } finally {
      await spy.restore();
    }
    const { value: memory, release } = stateValue<{ verified: { size: number } }>(stateKey(NS, 'verified').slice(0, -1));
    assert.ok(memory.verified.size >= 1);
    await release();
  });

  it('too many verifications waiting: 503 with Retry-After, the backend untouched', async () => {
    const { value: pool, release } = stateValue<BcryptPool>(stateKey(NS, 'bcrypt-workers'));
    const original = pool.verify;
    pool.verify = () => undefined;
    const write = process.stderr.write;
    process.stderr.write = (() => true) as typeof process.stderr.write; // the 503 is logged as an error
    try {
      const before = backend.requests.length;
      const r = await get(gw.url, '/inherit', basic('alice', 'not-cached-pw'));
      assert.equal(r.status, 503);
      assert.equal(r.headers['retry-after'], '1');
      assert.equal(r.body, '');
      assert.equal(backend.requests.length, before);
    } finally {
      process.stderr.write = write;
      pool.verify = original;
      await release();
    }
  });

  it('rejections log neither passwords nor user names', async () => {
    const { text } = await logsDuring(async () => {
      await refused('/inherit', basic('alice', 'Wr0ng-Secret-Pw'));
      await refused('/inherit', basic('mallory-user', 'An0ther-Secret'));
      await refused('/inherit', rawBasic('no-colon-secret'));
    });
    assert.match(text, /AUTH_BASIC_INVALID/);
    assert.match(text, /AUTH_BASIC_MALFORMED/);
    for (const s of ['Wr0ng-Secret-Pw', 'An0ther-Secret', 'mallory-user', 'no-colon-secret', Buffer.from('no-colon-secret').toString('base64')]) {
      assert.ok(!text.includes(s), `${s} was logged`);
    }
  });

  it('a reload to a missing htpasswd file is refused and the running config keeps serving', async () => {
    const bad = { ...config(), extra_config: { [NS]: { htpasswd_path: join(dir, 'missing') } } };
    await assert.rejects(gw.reload(bad), /auth\/basic at \$\.extra_config\["auth\/basic"\]\.htpasswd_path: ".*missing" \(.*\) cannot be read: no such file/);
    await ok('/inherit', basic('alice', 'alice-pw'));
  });

  describe('bcrypt workers', () => {
    it('verify answers from worker threads', async () => {
      const pool = new BcryptPool();
      try {
        const h = hash('pw');
        assert.deepEqual(await Promise.all([pool.verify('pw', h), pool.verify('pW', h), pool.verify('pw', 'not a hash')]), [true, false, false]);
      } finally {
        await pool.close();
      }
    });

    it(`refuses to queue more than ${MAX_WAITING_VERIFICATIONS} waiting verifications; close() rejects the pending ones`, async () => {
      const pool = new BcryptPool();
      const h = hash('pw', 12);
      const started: Promise<boolean>[] = [];
      let refusedAt = -1;
      for (let i = 0; i < MAX_WAITING_VERIFICATIONS + 10; i++) {
        const p = pool.verify('wrong', h);
        if (p === undefined) {
          refusedAt = i;
          break;
        }
        started.push(p);
      }
      assert.ok(refusedAt > MAX_WAITING_VERIFICATIONS - 1 && refusedAt <= MAX_WAITING_VERIFICATIONS + 4, `refused at ${refusedAt}`);
      const settled = Promise.allSettled(started);
      await pool.close();
      const outcomes = await settled;
      assert.ok(outcomes.some((o) => o.status === 'rejected'));
    });
  });

  describe('credentials parsing', () => {
    it('decodeBasic splits at the first colon and refuses what is not user:password', () => {
      const enc = (s: string) => Buffer.from(s).toString('base64');
      assert.deepEqual(decodeBasic(enc('a:b:c')), { user: 'a', password: 'b:c', pair: 'a:b:c' });
      assert.deepEqual(decodeBasic(enc('a:')), { user: 'a', password: '', pair: 'a:' });
      assert.equal(typeof decodeBasic(enc(':b')), 'string');
      assert.equal(typeof decodeBasic(enc('ab')), 'string');
      assert.equal(typeof decodeBasic('YWI'), 'string');
      assert.equal(typeof decodeBasic('Y W=='), 'string');
    });

    it('readHtpasswd refuses unreadable files, malformed lines, other hash formats and repeated users, never quoting a hash', () => {
      const file = (name: string, text: string) => {
        const p = join(dir, name);
        writeFileSync(p, text);
        return p;
      };
      assert.throws(() => readHtpasswd(join(dir, 'nope'), '$.x'), /"[^"]*nope" \(.*\) cannot be read: no such file/);
      assert.throws(() => readHtpasswd(dir, '$.x'), /cannot be read: a directory/);
      assert.throws(() => readHtpasswd(file('f1', `alice:${hash('a')}\njust-a-name\n`), '$.x'), /line 2 is not "user:hash"/);
      assert.throws(() => readHtpasswd(file('f2', `:${hash('a')}\n`), '$.x'), /line 1 is not "user:hash"/);
      const formats: [string, RegExp][] = [
        ['$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/', /Apache MD5/],
        ['{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=', /SHA-1 \(\{SHA\}\)/],
        ['$1$salt$qJH7.N4xYta3aEG/dfqo/0', /MD5-crypt/],
        ['$6$salt$IxDD3jeSOb5eB1CX5LBsqZFVkJdido3OUILO5Ifz5iwMuTS4XMS130MTSuDDl3aCI6WouIL9AjRbLCelDCy.g.', /SHA-crypt/],
        ['rqXexS6ZhobKA', /DES or a plain-text password/],
        ['$2x$10$abcdefghijklmnopqrstuuZ0pjz8fZ.2ZB5YwiwBDSnLmWNpSzWmm', /malformed or unsupported bcrypt/],
      ];
      for (const [h, why] of formats) {
        const p = file('f3', `ok:${hash('a')}\nbob:${h}\n`);
        assert.throws(
          () => readHtpasswd(p, '$.x'),
          (e: Error) => why.test(e.message) && /line 2 \(user "bob"\)/.test(e.message) && !e.message.includes(h),
          h,
        );
      }
      assert.throws(() => readHtpasswd(file('f4', `a:${hash('a')}\na:${hash('b')}\n`), '$.x'), /line 2 declares user "a" again \(first on line 1\)/);
      const h = '$2b$04$' + 'a'.repeat(53);
      assert.deepEqual(readHtpasswd(file('f5', `\uFEFF# c\n\n  \na:${h}\r\n`), '$.x'), [['a', h]]);
    });

    it('an empty credential set fails the compile', async () => {
      const empty = join(dir, 'empty');
      writeFileSync(empty, '# nobody\n');
      await assert.rejects(
        startGateway({ extra_config: { [NS]: { htpasswd_path: empty } }, endpoints: [{ endpoint: '/e', backend: [{ host: ['http://b'], url_pattern: '/' }], extra_config: { [NS]: {} } }] }),
        /no users/,
      );
    });

    it('a bad service-level file fails the compile even when no endpoint inherits it', async () => {
      await assert.rejects(startGateway({ extra_config: { [NS]: { htpasswd_path: join(dir, 'missing') } }, endpoints: [] }), /cannot be read: no such file/);
    });
  });

  describe('parsed options', () => {
    it('survive structuredClone unchanged', () => {
      const cfg = loadTestConfig({ host: ['http://b'], ...config() });
      assert.deepEqual(structuredClone(cfg.namespaces), cfg.namespaces);
      for (const ep of cfg.endpoints) assert.deepEqual(structuredClone(ep.namespaces), ep.namespaces);
      assert.deepEqual(cfg.endpoints[0]!.namespaces, [{ name: NS, options: { at: '$.endpoints[0].extra_config["auth/basic"]', inherit: true } }]);
      const own = cfg.endpoints[1]!.namespaces[0]!.options as { inherit: boolean; users: [string, string][] };
      assert.equal(own.inherit, false);
      assert.deepEqual(own.users.map(([u]) => u), ['dave']);
    });
  });

  describe('config checks', () => {
    const cfg = (service: unknown, endpoint: unknown = {}) => ({
      version: 3,
      host: ['http://b'],
      ...(service === undefined ? {} : { extra_config: { [NS]: service } }),
      endpoints: [{ endpoint: '/e', backend: [{ url_pattern: '/b' }], extra_config: { [NS]: endpoint } }],
    });
    const svc = '$.extra_config["auth/basic"]';
    const ep = '$.endpoints[0].extra_config["auth/basic"]';

    it('an endpoint {} without service-level credentials is an error', () => {
      assert.match(errorAt(cfg(undefined), ep).expected, /"htpasswd_path" and\/or "users"/);
    });

    it('a service level without htpasswd_path or users is an error', () => {
      errorAt(cfg({}, { users: { a: hash('a') } }), svc);
    });

    it('htpasswd_path must be a non-empty string', () => {
      errorAt(cfg({ htpasswd_path: '' }), `${svc}.htpasswd_path`);
      errorAt(cfg({ htpasswd_path: 42 }), `${svc}.htpasswd_path`);
    });

    it('users must map user names without ":" to bcrypt hashes; other formats are refused without showing the hash', () => {
      errorAt(cfg({ users: ['a'] }), `${svc}.users`);
      errorAt(cfg({ users: { 'a:b': hash('a') } }), `${svc}.users["a:b"]`);
      errorAt(cfg({ users: { '': hash('a') } }), `${svc}.users[""]`);
      errorAt(cfg({ users: { a: 1 } }), `${svc}.users.a`);
      const apr = '$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/';
      const issue = errorAt(cfg({ users: { a: apr } }), `${svc}.users.a`);
      assert.match(issue.found, /Apache MD5 \(\$apr1\$\) hash, not supported \(only bcrypt\)/);
      assert.ok(!issue.found.includes(apr));
      errorAt(cfg(undefined, { users: { a: 'plain-password' } }), `${ep}.users.a`);
    });

    it('unknown keys are warnings with a hint; the namespace is refused at backend level', () => {
      assert.match(issueAt(load(cfg({ htpasswd_pth: '/x', users: { a: hash('a') } })).warnings, `${svc}.htpasswd_pth`).expected, /did you mean "htpasswd_path"/);
      const r = load({ version: 3, host: ['http://b'], endpoints: [{ endpoint: '/e', backend: [{ url_pattern: '/b', extra_config: { [NS]: {} } }] }] });
      assert.match(issueAt(r.errors, '$.endpoints[0].backend[0].extra_config["auth/basic"]').found, /would not be enforced here/);
    });

    it('a missing htpasswd file is not a parse error (the file belongs to the data plane)', () => {
      assert.deepEqual(load(cfg({ htpasswd_path: '/nonexistent/.htpasswd' })).errors, []);
    });
  });
});
