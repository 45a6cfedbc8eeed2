// Two tiny demo services for the quickstart: "users" on :9101 and "orders" on :9102.
// The users service also serves /v2/users/{id}, a "rewrite" for the migration
// walkthrough (examples/migrating): the same users plus `served_by` and
// `updated_at`, and one deliberate difference (user 2's city).

import { createServer, type Server } from 'node:http';

const users = [
  { id: 1, name: 'Ada Lovelace', email: 'ada@example.com', password_hash: 'x1', address: { city: 'London', street: '12 St James Sq' } },
  { id: 2, name: 'Grace Hopper', email: 'grace@example.com', password_hash: 'x2', address: { city: 'Arlington', street: '1 Navy Way' } },
];
const orders = [
  { id: 101, user: 1, total: 42.5, items: 3 },
  { id: 102, user: 1, total: 9.99, items: 1 },
  { id: 103, user: 2, total: 120, items: 7 },
];
const products: Record<string, unknown> = { 'sku-1': { sku: 'sku-1', title: 'Analytical Engine', price: 1843 } };

function json(res: import('node:http').ServerResponse, status: number, body: unknown) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function startDemoBackends(host = '127.0.0.1', usersPort = 9101, ordersPort = 9102): Promise<Server[]> {
  const usersService = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const m = /^\/users\/(\d+)$/.exec(url.pathname);
    if (m) {
      const u = users.find((x) => x.id === Number(m[1]));
      return u ? json(res, 200, u) : json(res, 404, { error: 'no such user' });
    }
    const v2 = /^\/v2\/users\/(\d+)$/.exec(url.pathname);
    if (v2) {
      const u = users.find((x) => x.id === Number(v2[1]));
      if (!u) return json(res, 404, { error: 'no such user' });
      const address = u.id === 2 ? { ...u.address, city: 'Arlington, VA' } : u.address;
      return json(res, 200, { ...u, address, served_by: 'v2', updated_at: new Date().toISOString() });
    }
    if (url.pathname === '/users') {
      const limit = Number(url.searchParams.get('limit') ?? users.length);
      return json(res, 200, users.slice(0, limit).map(({ id, name }) => ({ id, name })));
    }
    json(res, 404, { error: 'not found' });
  });
  const ordersService = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/orders') {
      const user = Number(url.searchParams.get('user'));
      return json(res, 200, { data: { user, orders: orders.filter((o) => o.user === user) } });
    }
    const p = /^\/products\/([\w-]+)$/.exec(url.pathname);
    if (p && products[p[1]]) {
      res.setHeader('x-catalog', 'demo');
      return json(res, 200, products[p[1]]);
    }
    json(res, 404, { error: 'not found' });
  });
  const listen = (s: Server, port: number) =>
    new Promise<Server>((resolve, reject) => {
      s.once('error', reject);
      s.listen(port, host, () => resolve(s));
    });
  return Promise.all([listen(usersService, usersPort), listen(ordersService, ordersPort)]);
}
